import RTC
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct DatagramReceiverTests {
    private static let loopback = TransportAddress(ip: .v4(0x7F00_0001), port: 0)

    /// Sends `datagrams` from `sender` to `receiver` and waits until the first is there (loopback
    /// queues them all at once).
    private func send(_ datagrams: [[UInt8]], from sender: Int32, to receiver: Int32) throws {
        let to = try #require(localAddress(receiver))
        for d in datagrams { _ = d.withUnsafeBytes { sendDatagram(sender, $0, to: to) } }
        var fds = [pollfd(fd: receiver, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 1_000) == 1)
    }

    @Test func oneCallReadsSeveralDatagramsWithTheirSender() throws {
        let receiver = try udpSocket(Self.loopback)
        let sender = try udpSocket(Self.loopback)
        defer { close(receiver); close(sender) }
        try send([[1], [2, 2], [3, 3, 3]], from: sender, to: receiver)
        let batch = DatagramReceiver(capacity: 2, slotSize: 16)
        #expect(batch.receive(receiver) == 2)  // capacity bounds one call
        #expect(Array(batch.datagram(0)) == [1])
        #expect(Array(batch.datagram(1)) == [2, 2])
        #expect(batch.sender(0) == localAddress(sender))
        #expect(batch.receive(receiver) == 1)
        #expect(Array(batch.datagram(0)) == [3, 3, 3])
        #expect(batch.receive(receiver) == 0)  // nothing waits: no block, no datagram
    }

    @Test func aPrefixReadKeepsTheStartAndTellsTheLengthOnTheWire() throws {
        let receiver = try udpSocket(Self.loopback)
        let sender = try udpSocket(Self.loopback)
        defer { close(receiver); close(sender) }
        try send([Array(0..<100), Array(0..<40), [9]], from: sender, to: receiver)
        let batch = DatagramReceiver(capacity: 8, slotSize: 64)
        #expect(batch.receive(receiver, prefix: 4) == 3)
        #expect(Array(batch.datagram(0)) == [0, 1, 2, 3])
        #expect(batch.wireLength(0) == 100)
        #expect(batch.wireLength(1) == 40)
        #expect(Array(batch.datagram(2)) == [9])
        // A datagram longer than a slot is cut to the slot, whatever the prefix.
        try send([Array(repeating: 7, count: 100)], from: sender, to: receiver)
        #expect(batch.receive(receiver) == 1)
        #expect(batch.datagram(0).count == 64)
        #expect(batch.wireLength(0) == 100)
    }
}

@Suite struct EventPollTests {
    @Test func onlyReadyDescriptorsAreReportedWithTheirTokens() throws {
        let loopback = TransportAddress(ip: .v4(0x7F00_0001), port: 0)
        let quiet = try udpSocket(loopback)
        let busy = try udpSocket(loopback)
        let sender = try udpSocket(loopback)
        defer { close(quiet); close(busy); close(sender) }
        let events = try EventPoll(capacity: 4)
        try events.add(quiet, token: 7)
        try events.add(busy, token: 42)
        #expect(events.wait(milliseconds: 0) == 0)
        let to = try #require(localAddress(busy))
        _ = [UInt8](repeating: 1, count: 3).withUnsafeBytes { sendDatagram(sender, $0, to: to) }
        #expect(events.wait(milliseconds: 1_000) == 1)
        #expect(events.token(0) == 42)
        // Level-triggered: still unread, still reported; once removed, not.
        #expect(events.wait(milliseconds: 0) == 1)
        events.remove(busy)
        #expect(events.wait(milliseconds: 0) == 0)
    }
}
