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
