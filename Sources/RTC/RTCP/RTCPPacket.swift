/// One RTCP packet (RFC 3550 §6), as found in a compound datagram or alone (reduced-size, RFC 5506).
///
/// Packets Atrium acts on are typed; everything else (APP, XR, other feedback formats) is kept as
/// `raw` with its bytes, so relaying it loses nothing.
public enum RTCPPacket: Sendable, Equatable {
    case senderReport(SenderReport)
    case receiverReport(ReceiverReport)
    case sourceDescription(SourceDescription)
    case goodbye(Goodbye)
    case genericNACK(GenericNACK)
    case transportFeedback(TransportFeedback)
    case pictureLossIndication(PictureLossIndication)
    case fullIntraRequest(FullIntraRequest)
    case remb(REMB)
    case raw(RawRTCPPacket)

    /// The length of the common header: V, P, count or format, packet type, length.
    public static let headerLength = 4
}

/// The RTCP packet types (the second header byte).
public struct RTCPPacketType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let senderReport = RTCPPacketType(rawValue: 200)
    public static let receiverReport = RTCPPacketType(rawValue: 201)
    public static let sourceDescription = RTCPPacketType(rawValue: 202)
    public static let goodbye = RTCPPacketType(rawValue: 203)
    public static let application = RTCPPacketType(rawValue: 204)
    /// RTPFB (RFC 4585): transport-layer feedback such as NACK and transport-wide CC.
    public static let transportLayerFeedback = RTCPPacketType(rawValue: 205)
    /// PSFB (RFC 4585): payload-specific feedback such as PLI, FIR and REMB.
    public static let payloadSpecificFeedback = RTCPPacketType(rawValue: 206)
    public static let extendedReport = RTCPPacketType(rawValue: 207)

    public var description: String { String(rawValue) }
}

/// An RTCP packet kept as bytes: its type, the 5-bit count or format field, and the payload after
/// the 4-byte header (without padding).
public struct RawRTCPPacket: Sendable, Equatable {
    public var packetType: RTCPPacketType
    /// The 5-bit field after the padding bit: report count, FMT or APP subtype.
    public var count: UInt8
    public var payload: [UInt8]

    public init(packetType: RTCPPacketType, count: UInt8, payload: [UInt8]) {
        self.packetType = packetType
        self.count = count
        self.payload = payload
    }
}

/// Why bytes are not acceptable RTCP, or why a packet cannot be written.
public struct RTCPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure; new kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case truncated, unsupportedVersion, lengthOverrun, badPadding, malformed, notEncodable
        }
        private var base: Base
        private init(_ base: Base) { self.base = base }

        /// Fewer bytes than a header or than the packet's own fields need.
        public static let truncated = Code(.truncated)
        /// A version other than 2.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// A length field that runs past the end of the datagram.
        public static let lengthOverrun = Code(.lengthOverrun)
        /// The padding bit is set but the padding count is zero or larger than the packet.
        public static let badPadding = Code(.badPadding)
        /// Fields that contradict each other or the packet length.
        public static let malformed = Code(.malformed)
        /// A value that the wire format cannot carry (too many items, a delta out of range).
        public static let notEncodable = Code(.notEncodable)

        public var description: String {
            switch base {
            case .truncated: "truncated"
            case .unsupportedVersion: "unsupported version"
            case .lengthOverrun: "length overrun"
            case .badPadding: "bad padding"
            case .malformed: "malformed"
            case .notEncodable: "not encodable"
            }
        }
    }

    public var code: Code
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "RTCP \(code): \(reason)" }
}

// MARK: - Compound parsing and writing

extension RTCPPacket {
    /// Parses a compound RTCP datagram (or a single reduced-size packet) into its packets.
    /// Every length, count and padding field is checked; a bad packet anywhere fails the whole
    /// datagram, since what follows a bad length cannot be trusted.
    public static func parseCompound(_ datagram: UnsafeRawBufferPointer) throws(RTCPError) -> [RTCPPacket] {
        var packets: [RTCPPacket] = []
        var frames = RTCPFrames(datagram)
        while let frame = try frames.next() {
            do throws(RTCPError) {
                packets.append(try parse(frame))
            } catch {
                throw RTCPError(error.code, "packet \(packets.count) (type \(frame.packetType.rawValue)) at byte \(frame.offset): \(error.reason)")
            }
        }
        return packets
    }

    /// Parses a compound RTCP datagram held in an array.
    public static func parseCompound(_ datagram: [UInt8]) throws(RTCPError) -> [RTCPPacket] {
        let result = datagram.withUnsafeBytes { bytes in
            Result { () throws(RTCPError) in try parseCompound(bytes) }
        }
        return try result.get()
    }

    /// Writes packets one after the other as one compound datagram.
    public static func encodeCompound(_ packets: [RTCPPacket]) throws(RTCPError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(packets.count * 32)
        for packet in packets { try packet.encode(into: &out) }
        return out
    }

    /// The wire bytes of this packet alone.
    public func encode() throws(RTCPError) -> [UInt8] {
        var out: [UInt8] = []
        try encode(into: &out)
        return out
    }

    /// Appends the wire bytes of this packet to `out`; on error `out` is left as it was.
    public func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = out.count
        do throws(RTCPError) {
            switch self {
            case .senderReport(let p): try p.encode(into: &out)
            case .receiverReport(let p): try p.encode(into: &out)
            case .sourceDescription(let p): try p.encode(into: &out)
            case .goodbye(let p): try p.encode(into: &out)
            case .genericNACK(let p): try p.encode(into: &out)
            case .transportFeedback(let p): try p.encode(into: &out)
            case .pictureLossIndication(let p): try p.encode(into: &out)
            case .fullIntraRequest(let p): try p.encode(into: &out)
            case .remb(let p): try p.encode(into: &out)
            case .raw(let p): try p.encode(into: &out)
            }
        } catch {
            out.removeSubrange(start...)
            throw error
        }
    }

    static func parse(_ frame: RTCPFrame) throws(RTCPError) -> RTCPPacket {
        let body = frame.body
        switch (frame.packetType, frame.count) {
        case (.senderReport, _):
            return .senderReport(try SenderReport(count: frame.count, body: body))
        case (.receiverReport, _):
            return .receiverReport(try ReceiverReport(count: frame.count, body: body))
        case (.sourceDescription, _):
            return .sourceDescription(try SourceDescription(count: frame.count, body: body))
        case (.goodbye, _):
            return .goodbye(try Goodbye(count: frame.count, body: body))
        case (.transportLayerFeedback, GenericNACK.format):
            return .genericNACK(try GenericNACK(body: body))
        case (.transportLayerFeedback, TransportFeedback.format):
            return .transportFeedback(try TransportFeedback(body: body))
        case (.payloadSpecificFeedback, PictureLossIndication.format):
            return .pictureLossIndication(try PictureLossIndication(body: body))
        case (.payloadSpecificFeedback, FullIntraRequest.format):
            return .fullIntraRequest(try FullIntraRequest(body: body))
        case (.payloadSpecificFeedback, REMB.format) where REMB.isREMB(body):
            return .remb(try REMB(body: body))
        default:
            return .raw(RawRTCPPacket(packetType: frame.packetType, count: frame.count, payload: body.array(0, body.count)))
        }
    }
}

extension RawRTCPPacket {
    func encode(into out: inout [UInt8]) throws(RTCPError) {
        guard count < 32 else { throw RTCPError(.notEncodable, "count \(count) does not fit in 5 bits") }
        let start = RTCPWriter.beginPacket(count: count, type: packetType, into: &out)
        out.append(contentsOf: payload)
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

// MARK: - Framing

/// One packet's place in a datagram, after the common header and padding were checked.
struct RTCPFrame {
    var packetType: RTCPPacketType
    var count: UInt8
    /// Byte offset of the packet in the datagram.
    var offset: Int
    /// The bytes after the 4-byte header, without padding.
    var body: RTCPReader
}

/// Walks the packets of a compound datagram, checking version, length and padding of each.
struct RTCPFrames {
    let datagram: RTCPReader
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { datagram = RTCPReader(bytes) }

    mutating func next() throws(RTCPError) -> RTCPFrame? {
        if offset == datagram.count {
            guard offset > 0 else { throw RTCPError(.truncated, "empty datagram") }
            return nil
        }
        let remaining = datagram.count - offset
        guard remaining >= RTCPPacket.headerLength else {
            throw RTCPError(.truncated, "\(remaining) bytes at byte \(offset) are shorter than a packet header")
        }
        let first = datagram.u8(offset)
        guard first >> 6 == 2 else { throw RTCPError(.unsupportedVersion, "version \(first >> 6) at byte \(offset)") }
        let length = (Int(datagram.u16(offset + 2)) + 1) * 4
        guard length <= remaining else {
            throw RTCPError(.lengthOverrun, "packet at byte \(offset) claims \(length) bytes, \(remaining) remain")
        }
        var bodyLength = length - RTCPPacket.headerLength
        if first & 0x20 != 0 {
            let padding = Int(datagram.u8(offset + length - 1))
            guard padding > 0, padding <= bodyLength else {
                throw RTCPError(.badPadding, "padding of \(padding) bytes in a packet of \(length) at byte \(offset)")
            }
            bodyLength -= padding
        }
        let frame = RTCPFrame(
            packetType: RTCPPacketType(rawValue: datagram.u8(offset + 1)), count: first & 0x1F, offset: offset,
            body: datagram.slice(offset + RTCPPacket.headerLength, bodyLength))
        offset += length
        return frame
    }
}

// MARK: - Reading and writing bytes

/// Bounds-checked big-endian reads over borrowed bytes. Every read is checked even in release
/// builds: the parsers validate lengths first, and a missed check must trap, not read out of bounds.
struct RTCPReader {
    let bytes: UnsafeRawBufferPointer

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var count: Int { bytes.count }

    func u8(_ offset: Int) -> UInt8 {
        precondition(offset >= 0 && offset < bytes.count, "RTCP read past the end")
        return bytes[offset]
    }

    func u16(_ offset: Int) -> UInt16 {
        precondition(offset >= 0 && offset + 2 <= bytes.count, "RTCP read past the end")
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    func u24(_ offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 3 <= bytes.count, "RTCP read past the end")
        return UInt32(bytes[offset]) << 16 | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2])
    }

    func u32(_ offset: Int) -> UInt32 {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "RTCP read past the end")
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) << 32 | UInt64(u32(offset + 4)) }

    func array(_ offset: Int, _ length: Int) -> [UInt8] { Array(slice(offset, length).bytes) }

    func slice(_ offset: Int, _ length: Int) -> RTCPReader {
        precondition(offset >= 0 && length >= 0 && offset + length <= bytes.count, "RTCP slice past the end")
        return RTCPReader(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
    }

    /// Throws `truncated` unless the bytes hold at least `needed`.
    func require(_ needed: Int, _ what: @autoclosure () -> String) throws(RTCPError) {
        guard count >= needed else { throw RTCPError(.truncated, "\(what()) needs \(needed) bytes, has \(count)") }
    }
}

/// Helpers that write the common header and close a packet with its length and any padding.
enum RTCPWriter {
    /// The largest packet the 16-bit length field can describe.
    static let maximumPacketLength = (Int(UInt16.max) + 1) * 4

    static func beginPacket(count: UInt8, type: RTCPPacketType, into out: inout [UInt8]) -> Int {
        let start = out.count
        out.append(0x80 | (count & 0x1F))
        out.append(type.rawValue)
        out.append(0)
        out.append(0)
        return start
    }

    /// Pads the packet to 32 bits (padding bit and count, RFC 3550 §6.4.1) and fills in its length.
    static func endPacket(start: Int, into out: inout [UInt8]) throws(RTCPError) {
        let unpadded = out.count - start
        if unpadded % 4 != 0 {
            let padding = 4 - unpadded % 4
            out.append(contentsOf: repeatElement(0, count: padding - 1))
            out.append(UInt8(padding))
            out[start] |= 0x20
        }
        let length = out.count - start
        guard length <= maximumPacketLength else {
            throw RTCPError(.notEncodable, "a packet of \(length) bytes is longer than the length field allows")
        }
        let words = UInt16(length / 4 - 1)
        out[start + 2] = UInt8(words >> 8)
        out[start + 3] = UInt8(words & 0xFF)
    }

    static func append24(_ v: UInt32, to out: inout [UInt8]) {
        out.append(UInt8((v >> 16) & 0xFF))
        out.append(UInt8((v >> 8) & 0xFF))
        out.append(UInt8(v & 0xFF))
    }

}
