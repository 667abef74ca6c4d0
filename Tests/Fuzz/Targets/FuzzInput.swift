/// A fuzz input read front to back, for harnesses that drive a sequence of calls rather than one
/// parse: each read takes what is left when the input runs short, so every input is a valid script.
package struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package var isEmpty: Bool { position >= bytes.count }

    package mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    package mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    package mutating func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }

    /// Up to `count` bytes, fewer at the end of the input.
    package mutating func take(_ count: Int) -> UnsafeRawBufferPointer {
        let start = min(position, bytes.count)
        let end = start + min(max(0, count), bytes.count - start)
        defer { position = end }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// A record of the form length (2 bytes) then that many bytes.
    package mutating func record() -> UnsafeRawBufferPointer { take(Int(uint16())) }
}
