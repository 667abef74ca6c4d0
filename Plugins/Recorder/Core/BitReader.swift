/// A most-significant-bit-first reader of codec headers (H.264 SPS, VP9 uncompressed header, AV1
/// sequence header). Reading past the end throws, so a truncated header is an error, never a trap.
struct BitReader {
    struct Overrun: Error {}

    private let bytes: ArraySlice<UInt8>
    private(set) var position = 0

    init<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        self.bytes = ArraySlice(bytes)
    }

    var bitsLeft: Int { bytes.count * 8 - position }

    mutating func bit() throws(Overrun) -> Bool {
        guard position < bytes.count * 8 else { throw Overrun() }
        let byte = bytes[bytes.startIndex + position >> 3]
        defer { position += 1 }
        return byte >> (7 - UInt8(position & 7)) & 1 == 1
    }

    /// `count` bits (at most 64) as an unsigned number.
    mutating func bits(_ count: Int) throws(Overrun) -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<count { value = value << 1 | (try bit() ? 1 : 0) }
        return value
    }

    mutating func int(_ count: Int) throws(Overrun) -> Int { Int(try bits(count)) }

    mutating func skip(_ count: Int) throws(Overrun) {
        guard count <= bitsLeft else { throw Overrun() }
        position += count
    }

    /// An unsigned exp-Golomb number, ue(v) (H.264 §9.1).
    mutating func ue() throws(Overrun) -> Int {
        var zeros = 0
        while try !bit() {
            zeros += 1
            guard zeros < 32 else { throw Overrun() }
        }
        return (1 << zeros) - 1 + (try int(zeros))
    }

    /// A signed exp-Golomb number, se(v) (H.264 §9.1.1).
    mutating func se() throws(Overrun) -> Int {
        let k = try ue()
        return k & 1 == 1 ? (k + 1) / 2 : -(k / 2)
    }

    /// AV1 uvlc() (AV1 §4.10.3).
    mutating func uvlc() throws(Overrun) -> UInt64 {
        var zeros = 0
        while try !bit() { zeros += 1 }
        guard zeros < 32 else { return UInt64(UInt32.max) }
        return try bits(zeros) + (UInt64(1) << zeros) - 1
    }
}

/// leb128 (AV1 §4.10.5), as AV1 OBU sizes and RTP element lengths are written.
enum LEB128 {
    /// The value at `offset` and the bytes it takes, or nil when truncated or longer than 8 bytes.
    static func read(_ bytes: [UInt8], at offset: Int) -> (value: Int, length: Int)? {
        var value = 0
        for i in 0..<8 {
            guard offset + i < bytes.count else { return nil }
            let b = bytes[offset + i]
            value |= Int(b & 0x7F) << (7 * i)
            if b & 0x80 == 0 { return (value, i + 1) }
        }
        return nil
    }

    static func append(_ value: Int, to out: inout [UInt8]) {
        var v = value
        repeat {
            let low = UInt8(v & 0x7F)
            v >>= 7
            out.append(v == 0 ? low : low | 0x80)
        } while v != 0
    }
}
