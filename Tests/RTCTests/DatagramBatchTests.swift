import RTC
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatagramBatchTests {
    /// Sends through a batch to a loopback socket and reads back what arrived.
    @Test func queuedDatagramsArriveInOrderAndAFullBatchSendsItself() throws {
        let receiver = try udpSocket(TransportAddress(ip: .v4(0x7F00_0001), port: 0))
        let sender = try udpSocket(TransportAddress(ip: .v4(0x7F00_0001), port: 0))
        defer { close(receiver); close(sender) }
        let to = try #require(localAddress(receiver))
        let batch = DatagramBatch(capacity: 2, slotSize: 16)
        for i: UInt8 in 1...3 {
            let ok = [UInt8](repeating: i, count: Int(i)).withUnsafeBytes { batch.append($0, to: to, on: sender) }
            #expect(ok)
        }
        #expect(batch.count == 1)  // the first two went out when the third arrived
        #expect(batch.flush(sender) == 0)
        #expect(batch.count == 0)
        let tooBig = [UInt8](repeating: 0, count: 17).withUnsafeBytes { batch.append($0, to: to, on: sender) }
        #expect(!tooBig)
        var got: [[UInt8]] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        for _ in 0..<50 where got.count < 3 {
            if let (n, _) = receiveDatagram(receiver, into: buffer) { got.append(Array(buffer[0..<n])) } else { usleep(2_000) }
        }
        #expect(got == [[1], [2, 2], [3, 3, 3]])
    }
}

/// One dual-stack IPv6 socket for IPv4 and IPv6 peers: IPv4 peers are seen and answered as the
/// IPv4 addresses they are, never as ::ffff:a.b.c.d.
@Suite struct DualStackTests {
    @Test func anIPv6SocketTalksToIPv4AndIPv6PeersUnderTheirOwnAddresses() throws {
        let server = try udpSocket(TransportAddress(ip: .v6(0, 0), port: 0), dualStack: true)
        let v4Peer = try udpSocket(TransportAddress(ip: .v4(0x7F00_0001), port: 0))
        let v6Peer = try udpSocket(TransportAddress(ip: .v6(0, 1), port: 0))
        defer { close(server); close(v4Peer); close(v6Peer) }
        let port = try #require(localAddress(server)).port
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        func receive(_ fd: Int32) -> (Int, TransportAddress)? {
            for _ in 0..<100 {
                if let got = receiveDatagram(fd, into: buffer) { return got }
                usleep(1_000)
            }
            return nil
        }
        let batch = DatagramBatch(capacity: 4, slotSize: 16)
        batch.mapsIPv4 = true
        for (peer, to) in [(v4Peer, TransportAddress(ip: .v4(0x7F00_0001), port: port)), (v6Peer, TransportAddress(ip: .v6(0, 1), port: port))] {
            #expect([UInt8]([7]).withUnsafeBytes { sendDatagram(peer, $0, to: to) })
            let (_, from) = try #require(receive(server))
            #expect(from == localAddress(peer).map { TransportAddress(ip: $0.ip.unmapped, port: $0.port) })
            #expect(from.ip.isIPv4 == (peer == v4Peer))
            _ = [UInt8]([8]).withUnsafeBytes { batch.append($0, to: from, on: server) }
            #expect(batch.flush(server) == 0, "an IPv4 address goes out IPv4-mapped on the IPv6 socket")
            #expect(receive(peer)?.0 == 1)
        }
    }

    /// ICE-TCP's listener the same way: one dual-stack socket accepts IPv4 and IPv6 peers.
    @Test func aDualStackListenerAcceptsBothFamiliesUnderTheirOwnAddresses() throws {
        let listener = try tcpListener(TransportAddress(ip: .v6(0, 0), port: 0), dualStack: true)
        defer { close(listener) }
        let port = try #require(localAddress(listener)).port
        for (family, loopback) in [(AF_INET, TransportAddress(ip: .v4(0x7F00_0001), port: port)), (AF_INET6, TransportAddress(ip: .v6(0, 1), port: port))] {
            let client = socket(family, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(client) }
            #expect(SocketAddress.with(loopback) { connect(client, $0, $1) } == 0)
            var accepted: (fd: Int32, remote: TransportAddress)?
            for _ in 0..<100 where accepted == nil {
                accepted = acceptConnection(listener)
                if accepted == nil { usleep(1_000) }
            }
            let (fd, remote) = try #require(accepted)
            close(fd)
            #expect(remote.ip.isIPv4 == (family == AF_INET), "\(remote)")
            #expect(remote.ip == loopback.ip)
        }
    }

    @Test func hostAddressesAPeerCanReach() {
        #expect(IPAddress("10.0.0.1")!.isRoutableHostAddress && IPAddress("2001:db8::1")!.isRoutableHostAddress)
        #expect(IPAddress("fd00:97::1")!.isRoutableHostAddress)
        for unreachable in ["0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1", "febf::1", "::ffff:10.0.0.1"] {
            #expect(!IPAddress(unreachable)!.isRoutableHostAddress, "\(unreachable)")
        }
        #expect(IPAddress("::ffff:10.0.0.1")!.unmapped == IPAddress("10.0.0.1"))
        #expect(IPAddress("2001:db8::1")!.unmapped == IPAddress("2001:db8::1"))
    }
}
