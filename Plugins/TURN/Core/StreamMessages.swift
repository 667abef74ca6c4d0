/// Splits a TURN byte stream (TCP or TLS, RFC 8656 §12.5) into messages: a STUN message is its
/// 20-byte header plus the length it states; ChannelData is 4 bytes plus its length, padded to a
/// multiple of 4 on streams. Anything else means the stream is not TURN, and it ends.
public struct TURNStreamFramer: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public enum Next { case message(ArraySlice<UInt8>), needMore, invalid }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65_536 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func next() -> Next {
        let available = buffer.count - start
        guard available >= 4 else { return .needMore }
        let first = buffer[start]
        let length = Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        let total: Int
        let consumed: Int
        switch first & 0xC0 {
        case 0x00:
            total = 20 + length
            consumed = total
        case 0x40:
            total = 4 + length
            consumed = (total + 3) & ~3
        default:
            return .invalid
        }
        guard available >= consumed else { return .needMore }
        let message = buffer[start..<(start + total)]
        start += consumed
        return .message(message)
    }
}
