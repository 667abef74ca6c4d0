/// RFC 4571 framing, as ICE-TCP (RFC 6544 §3) carries STUN, DTLS and SRTP over a TCP
/// connection: each packet is preceded by its length as 16 bits, network order.
///
/// The reader side collects whatever the stream delivered and hands out whole frames; it holds at
/// most one partial frame (under 64 KiB) plus one read, so a peer cannot make it grow.
public struct StreamFramer: Sendable {
    /// The largest payload a 16-bit length can describe.
    public static let maximumFrame = 65_535

    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    /// Bytes received and not yet handed out as frames.
    public var buffered: Int { buffer.count - start }

    /// Adds bytes read from the stream.
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

    /// Calls `body` with the next whole frame's payload and returns its result, or nil until
    /// more bytes arrive. The payload is only valid inside `body`.
    public mutating func nextFrame<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard buffer.count - start >= 2 else { return nil }
        let length = Int(buffer[start]) << 8 | Int(buffer[start + 1])
        guard buffer.count - start - 2 >= length else { return nil }
        let from = start + 2
        start = from + length
        return buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[from..<(from + length)])) }
    }

    /// The 2-byte header that precedes a payload of `length` bytes (nil if it does not fit).
    public static func header(length: Int) -> (UInt8, UInt8)? {
        guard (0...maximumFrame).contains(length) else { return nil }
        return (UInt8(length >> 8), UInt8(length & 0xFF))
    }

    /// `payload` framed: header then bytes.
    public static func frame(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let (high, low) = header(length: payload.count) else { return nil }
        var out: [UInt8] = [high, low]
        out.reserveCapacity(payload.count + 2)
        out.append(contentsOf: payload)
        return out
    }
}
