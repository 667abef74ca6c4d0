/// The last packets sent on one stream, kept in plain (unencrypted) form so a NACK can be answered
/// by protecting and sending the packet again (RFC 4585 §6.2.1). A ring indexed by sequence number:
/// storing reuses each slot's storage once it has grown, so steady sending allocates nothing.
public struct RetransmissionBuffer: Sendable {
    private var slots: [[UInt8]]
    private var sequences: [Int32]
    private var sentAt: [UInt64]
    public let capacity: Int

    public init(capacity: Int = 512) {
        precondition(capacity > 0)
        self.capacity = capacity
        slots = Array(repeating: [], count: capacity)
        sequences = Array(repeating: -1, count: capacity)
        sentAt = Array(repeating: 0, count: capacity)
    }

    /// Keeps a copy of `packet` (plain RTP) under its sequence number.
    public mutating func store(_ packet: UnsafeRawBufferPointer, sequenceNumber: UInt16, now: UInt64) {
        let i = Int(sequenceNumber) % capacity
        slots[i].removeAll(keepingCapacity: true)
        slots[i].append(contentsOf: packet)
        sequences[i] = Int32(sequenceNumber)
        sentAt[i] = now
    }

    /// Calls `body` with the stored packet of `sequenceNumber` if it is still here and was sent no
    /// more than `maxAge` nanoseconds ago (older packets are useless to the receiver's jitter buffer).
    public func withPacket<R>(sequenceNumber: UInt16, now: UInt64, maxAge: UInt64 = 2_000_000_000,
                              _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let i = Int(sequenceNumber) % capacity
        guard sequences[i] == Int32(sequenceNumber), now >= sentAt[i], now - sentAt[i] <= maxAge else { return nil }
        return slots[i].withUnsafeBytes(body)
    }
}
