/// RFC 4571 framing, as ICE-TCP (RFC 6544 §3) carries STUN, DTLS and SRTP over a TCP
/// connection: each packet is preceded by its length as 16 bits, network order.
///
/// The reader side collects whatever the stream delivered and hands out whole frames; it holds at
/// most one partial frame (under 64 KiB) plus one read, so a peer cannot make it grow.
public struct StreamFramer: Sendable {
    /// The largest payload a 16-bit length can describe.
    public static let maximumFrame = 65_535

    private var queue = ByteQueue()

    public init() {}

    /// Bytes received and not yet handed out as frames.
    public var buffered: Int { queue.count }

    /// Adds bytes read from the stream.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) { queue.append(bytes) }

    /// Calls `body` with the next whole frame's payload and returns its result, or nil until
    /// more bytes arrive. The payload is only valid inside `body`.
    public mutating func nextFrame<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard queue.count >= 2 else { return nil }
        let length = Int(queue[0]) << 8 | Int(queue[1])
        guard queue.count - 2 >= length else { return nil }
        let result = queue.withBytes(2..<(2 + length), body)
        queue.consume(2 + length)
        return result
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

/// Bytes received from a stream and not yet consumed: appended at the end, consumed from the
/// front without moving the rest each time (the storage is compacted when the front is empty or
/// large).
public struct ByteQueue: Sendable {
    private var storage: [UInt8] = []
    private var start = 0

    public init() {}

    public var count: Int { storage.count - start }
    public var isEmpty: Bool { count == 0 }

    /// The byte at `offset` from the front.
    public subscript(offset: Int) -> UInt8 { storage[start + offset] }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0, start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65_536 {
            storage.removeFirst(start)
            start = 0
        }
        storage.append(contentsOf: bytes)
    }

    /// Bytes `range` (offsets from the front), copied.
    public func bytes(_ range: Range<Int>) -> ArraySlice<UInt8> {
        storage[(start + range.lowerBound)..<(start + range.upperBound)]
    }

    /// Calls `body` with bytes `range` (offsets from the front), borrowed for the call.
    public func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[(start + range.lowerBound)..<(start + range.upperBound)])) }
    }

    /// Drops `n` bytes from the front.
    public mutating func consume(_ n: Int) {
        start += min(n, count)
    }
}
