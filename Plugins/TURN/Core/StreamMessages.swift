import RTC

/// Splits a TURN byte stream (TCP or TLS, RFC 8656 §12.5) into messages: a STUN message is its
/// 20-byte header plus the length it states; ChannelData is 4 bytes plus its length, padded to a
/// multiple of 4 on streams. Anything else means the stream is not TURN, and it ends.
public struct TURNStreamFramer: Sendable {
    private var queue = ByteQueue()

    public init() {}

    public enum Next { case message(ArraySlice<UInt8>), needMore, invalid }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) { queue.append(bytes) }

    /// Everything not yet framed, which is no longer framed: the connection became an RFC 6062
    /// client data connection, and bytes that came behind its ConnectionBind are the client's data.
    public mutating func takeRemaining() -> [UInt8] {
        let rest = Array(queue.bytes(0..<queue.count))
        queue.consume(queue.count)
        return rest
    }

    public mutating func next() -> Next {
        guard queue.count >= 4 else { return .needMore }
        let length = Int(queue[2]) << 8 | Int(queue[3])
        let total: Int
        let consumed: Int
        switch queue[0] & 0xC0 {
        case 0x00:
            total = 20 + length
            consumed = total
        case 0x40:
            total = 4 + length
            consumed = (total + 3) & ~3
        default:
            return .invalid
        }
        guard queue.count >= consumed else { return .needMore }
        let message = queue.bytes(0..<total)
        queue.consume(consumed)
        return .message(message)
    }
}
