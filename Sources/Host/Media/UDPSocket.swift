import RTC
#if canImport(Glibc)
import Glibc
#endif

/// Why the media socket could not be opened, for the start-up message.
struct MediaSocketError: Error, CustomStringConvertible {
    var description: String
}

/// Opens one of the media ports on `address`:`port` (0: any) with `open`, which is told whether
/// the socket is dual-stack ("::" takes IPv4 too); a failure names the configuration key.
/// "::" (the default) on a kernel without IPv6 falls back to "0.0.0.0". Returns the descriptor,
/// the port it got, and whether it is dual-stack.
func openMediaSocket(_ address: String, _ port: Int, _ failure: String, key: String,
                     _ open: (TransportAddress, Bool) throws(SocketError) -> Int32) throws(MediaSocketError) -> (Int32, UInt16, dual: Bool)
{
    guard let local = TransportAddress(address, port) else {
        throw MediaSocketError(description: "media.bind: \"\(address)\" is not an IP address")
    }
    do {
        let fd = try open(local, isDualStack(address))
        return (fd, localAddress(fd)?.port ?? UInt16(port), isDualStack(address))
    } catch where isDualStack(address) && error.code == EAFNOSUPPORT {
        return try openMediaSocket("0.0.0.0", port, failure, key: key, open)
    } catch {
        throw MediaSocketError(description: "\(failure) \(address):\(port) (\(key)): \(error)")
    }
}

/// "::" is bound dual-stack: one socket for IPv4 and IPv6 peers.
func isDualStack(_ bind: String) -> Bool { IPAddress(bind) == .v6(0, 0) }

/// A non-blocking UDP socket: the one port every peer's ICE, DTLS, SRTP and SRTCP share, IPv4,
/// IPv6 or both ("::"). The corresponding C calls are socket, bind, recvfrom and sendto (RTC's
/// socket helpers).
final class UDPSocket {
    let fd: Int32
    let port: UInt16

    init(bind address: String, port: Int) throws(MediaSocketError) {
        let dual: Bool
        (fd, self.port, dual) = try openMediaSocket(address, port, "cannot bind UDP", key: "media.udp_port") { (a, dual) throws(SocketError) in
            try udpSocket(a, bufferBytes: 4 << 20, dualStack: dual)
        }
        batch.mapsIPv4 = dual
    }

    deinit { close(fd) }

    /// Reads one datagram into `buffer`; nil when nothing is waiting.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> (length: Int, from: TransportAddress)? {
        receiveDatagram(fd, into: buffer)
    }

    /// Datagrams waiting for one sendmmsg: what a fan-out produces goes out in one call.
    /// 256 slots: a video frame's packets times a room's subscribers fit in a few calls. A slot
    /// holds any packet the media path builds (1,500 bytes of RTP, extensions and the SRTP tag).
    private let batch = DatagramBatch(capacity: 256, slotSize: 2_048)

    /// Queues one datagram; false when it cannot be sent at all (larger than a slot).
    @discardableResult
    func send(_ bytes: UnsafeRawBufferPointer, to address: TransportAddress) -> Bool {
        batch.append(bytes, to: address, on: fd)
    }

    /// The next datagram's buffer, to build a packet in place; `commit` queues it.
    func reserve() -> UnsafeMutableRawBufferPointer { batch.reserve(on: fd) }

    func commit(_ length: Int, to address: TransportAddress) { batch.commit(length, to: address) }

    /// Sends what is queued; returns how many datagrams the kernel refused.
    func flush() -> Int {
        batch.count == 0 ? 0 : batch.flush(fd)
    }
}

/// The machine's addresses that are up and a peer could reach, for a socket bound to `bind`:
/// IPv4 ones for "0.0.0.0", IPv6 ones (not link-local) for another IPv6 address, both for "::"
/// (IPv4 first: the one most peers will use).
func interfaceAddresses(bind: String) -> [IPAddress] {
    let all = machineAddresses().filter(\.isRoutableHostAddress)
    let dual = isDualStack(bind)
    let v6 = IPAddress(bind).map { !$0.isIPv4 } ?? false
    return all.filter { $0.isIPv4 && (dual || !v6) } + all.filter { !$0.isIPv4 && v6 }
}
