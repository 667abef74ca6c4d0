/// An EBML element ID as it is written: the length marker bits are part of the value, so the
/// Segment's `0x18538067` is the four bytes `18 53 80 67`.
public struct EBMLID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// 1 to 4: the ID's bytes as written.
    public var byteCount: Int { max(1, (32 - rawValue.leadingZeroBitCount + 7) / 8) }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        for shift in stride(from: (byteCount - 1) * 8, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: rawValue >> UInt32(shift)))
        }
    }

    public var description: String { "0x" + String(rawValue, radix: 16, uppercase: true) }
}

/// EBML (RFC 8794), the binary framing Matroska and WebM are made of: each element is an ID, a
/// variable-length size (a VINT) and that many bytes of data.
public enum EBML {
    /// The size of an element whose end is not known yet: it ends where its parent ends or where an
    /// element starts that cannot be its child. Eight bytes, so it can be patched to a real size in place.
    public static let unknownSize: [UInt8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]

    /// The largest value a VINT of `length` bytes holds; all value bits set is reserved for "unknown".
    static func maxValue(length: Int) -> UInt64 { (UInt64(1) << UInt64(7 * length)) - 2 }

    /// Bytes in the shortest VINT that holds `value`.
    public static func sizeLength(_ value: UInt64) -> Int {
        var length = 1
        while length < 8, value > maxValue(length: length) { length += 1 }
        return length
    }

    /// `value` as a VINT: the shortest one, or exactly `length` bytes for a field that is patched later.
    public static func size(_ value: UInt64, length: Int? = nil) -> [UInt8] {
        var out: [UInt8] = []
        writeSize(value, length: length, into: &out)
        return out
    }

    static func writeSize(_ value: UInt64, length: Int? = nil, into out: inout [UInt8]) {
        let length = max(length ?? 0, sizeLength(value))
        precondition(length <= 8 && value <= maxValue(length: length), "EBML size \(value) does not fit in \(length) bytes")
        let marked = value | (UInt64(1) << UInt64(7 * length))
        for shift in stride(from: (length - 1) * 8, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: marked >> UInt64(shift)))
        }
    }

    /// An unsigned integer in the fewest big-endian bytes; zero is one byte.
    public static func uint(_ value: UInt64) -> [UInt8] {
        let length = max(1, (64 - value.leadingZeroBitCount + 7) / 8)
        return bigEndian(value, length: length)
    }

    /// A float as 8 big-endian bytes (IEEE 754 double).
    public static func float(_ value: Double) -> [UInt8] { bigEndian(value.bitPattern, length: 8) }

    static func bigEndian(_ value: UInt64, length: Int) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * (length - 1 - $0))) }
    }

    /// An element's ID and size, read from the start of its bytes.
    public struct ElementHeader: Sendable, Equatable {
        public var id: EBMLID
        /// nil: unknown size.
        public var size: UInt64?
        /// Bytes of ID plus size: where the data starts, from the element's start.
        public var headerLength: Int

        public init(id: EBMLID, size: UInt64?, headerLength: Int) {
            self.id = id
            self.size = size
            self.headerLength = headerLength
        }
    }

    /// The element header at `offset` in `bytes`; nil when the bytes end inside it or it is not
    /// valid EBML (an ID longer than 4 bytes, a size longer than 8).
    public static func readHeader(_ bytes: [UInt8], at offset: Int) -> ElementHeader? {
        guard offset >= 0, offset < bytes.count else { return nil }
        let first = bytes[offset]
        guard first != 0 else { return nil }
        let idLength = first.leadingZeroBitCount + 1
        guard idLength <= 4, offset + idLength <= bytes.count else { return nil }
        var id: UInt32 = 0
        for i in 0..<idLength { id = id << 8 | UInt32(bytes[offset + i]) }
        guard let (size, sizeLength) = readSize(bytes, at: offset + idLength) else { return nil }
        return ElementHeader(id: EBMLID(id), size: size, headerLength: idLength + sizeLength)
    }

    /// A VINT size at `offset`: its value (nil for unknown) and its length; nil when cut off or invalid.
    public static func readSize(_ bytes: [UInt8], at offset: Int) -> (value: UInt64?, length: Int)? {
        guard offset >= 0, offset < bytes.count else { return nil }
        let first = bytes[offset]
        guard first != 0 else { return nil }
        let length = first.leadingZeroBitCount + 1
        guard offset + length <= bytes.count else { return nil }
        var value = UInt64(first) & ((UInt64(1) << UInt64(8 - length)) - 1)
        for i in 1..<length { value = value << 8 | UInt64(bytes[offset + i]) }
        let unknown = value == (UInt64(1) << UInt64(7 * length)) - 1
        return (unknown ? nil : value, length)
    }

    /// A big-endian unsigned integer of 0 to 8 bytes.
    public static func readUInt(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        guard bytes.count <= 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// A 4- or 8-byte big-endian float.
    public static func readFloat(_ bytes: ArraySlice<UInt8>) -> Double? {
        switch bytes.count {
        case 4: Double(Float(bitPattern: UInt32(truncatingIfNeeded: readUInt(bytes)!)))
        case 8: Double(bitPattern: readUInt(bytes)!)
        default: nil
        }
    }
}

/// An EBML element written whole, with its children: the headers, Info, Tracks, Cues and SeekHead.
/// (Blocks, the bulk of a file, go straight to the file without building one.)
public indirect enum EBMLElement: Sendable, Equatable {
    /// An unsigned integer in the fewest bytes.
    case uint(EBMLID, UInt64)
    /// A date: nanoseconds since 2001-01-01T00:00:00 UTC, always 8 bytes.
    case date(EBMLID, nanosecondsSince2001: Int64)
    /// A float, always 8 bytes.
    case float(EBMLID, Double)
    /// An ASCII or UTF-8 string, not terminated.
    case string(EBMLID, String)
    case binary(EBMLID, [UInt8])
    case master(EBMLID, [EBMLElement])
    /// A Void element taking exactly this many bytes in all (at least 2): space kept for a later patch.
    case void(totalLength: Int)

    public static let voidID = EBMLID(0xEC)

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    /// Appends the element; `sizeLength` makes the size field at least that long (to fill a space exactly).
    public func encode(into out: inout [UInt8], sizeLength: Int? = nil) {
        switch self {
        case .void(let total):
            precondition(total >= 2, "a Void takes at least 2 bytes")
            // A one-byte size holds up to 126; past that the 8-byte form keeps the arithmetic simple.
            let length = total - 2 <= 126 ? 1 : 8
            Self.voidID.write(into: &out)
            EBML.writeSize(UInt64(total - 1 - length), length: length, into: &out)
            out.append(contentsOf: repeatElement(0, count: total - 1 - length))
        case .master(let id, let children):
            var body: [UInt8] = []
            for child in children { child.encode(into: &body) }
            id.write(into: &out)
            EBML.writeSize(UInt64(body.count), length: sizeLength, into: &out)
            out.append(contentsOf: body)
        default:
            let (id, data) = leaf
            id.write(into: &out)
            EBML.writeSize(UInt64(data.count), length: sizeLength, into: &out)
            out.append(contentsOf: data)
        }
    }

    private var leaf: (EBMLID, [UInt8]) {
        switch self {
        case .uint(let id, let value): (id, EBML.uint(value))
        case .date(let id, let nanoseconds): (id, EBML.bigEndian(UInt64(bitPattern: nanoseconds), length: 8))
        case .float(let id, let value): (id, EBML.float(value))
        case .string(let id, let value): (id, Array(value.utf8))
        case .binary(let id, let value): (id, value)
        case .master, .void: preconditionFailure("not a leaf")
        }
    }

    /// The element followed by a Void, together exactly `length` bytes; nil when the element is longer.
    /// A gap of one byte, too small for a Void, goes into a longer size field instead.
    public func filling(_ length: Int) -> [UInt8]? {
        var out = encoded
        if out.count + 1 == length, let header = EBML.readHeader(out, at: 0) {
            let sizeLength = header.headerLength - header.id.byteCount
            guard sizeLength < 8 else { return nil }
            out.removeAll()
            encode(into: &out, sizeLength: sizeLength + 1)
        }
        guard out.count <= length else { return nil }
        if out.count < length { EBMLElement.void(totalLength: length - out.count).encode(into: &out) }
        return out
    }
}
