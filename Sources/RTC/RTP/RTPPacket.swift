/// Why bytes are not an RTP packet we accept.
public struct RTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: StaticString
    public init(_ reason: StaticString) { self.reason = reason }
    public var description: String { "RTP: \(reason)" }
    public static func == (l: Self, r: Self) -> Bool { "\(l.reason)" == "\(r.reason)" }
}

/// A validated view of an RTP packet (RFC 3550) in a buffer owned by someone else: field access
/// and in-place rewriting without copying or allocating. Valid only while that buffer is.
public struct RTPPacketView {
    public let buffer: UnsafeMutableRawBufferPointer
    /// Bytes of the packet (the buffer may be larger).
    public let length: Int
    /// Offset of the payload and its length (padding excluded).
    public let payloadOffset: Int
    public let payloadLength: Int
    /// Offset and length of the header extension block's data, and its profile (0xBEDE one-byte,
    /// 0x100x two-byte), or 0 when there is none.
    public let extensionOffset: Int
    public let extensionLength: Int
    public let extensionProfile: UInt16

    /// Validates `length` bytes of `buffer` as RTP: version 2, CSRCs, extension and padding inside
    /// the packet. The corresponding checks are RFC 3550 §5.1 and RFC 8285 §4.
    @inlinable
    public init(buffer: UnsafeMutableRawBufferPointer, length: Int) throws(RTPError) {
        guard length >= 12, length <= buffer.count else { throw RTPError("shorter than the 12-byte header") }
        let b0 = buffer[0]
        guard b0 >> 6 == 2 else { throw RTPError("version is not 2") }
        var offset = 12 + Int(b0 & 0x0F) * 4
        guard offset <= length else { throw RTPError("CSRC list overruns the packet") }
        var extOffset = 0
        var extLength = 0
        var profile: UInt16 = 0
        if b0 & 0x10 != 0 {
            guard offset + 4 <= length else { throw RTPError("extension header overruns the packet") }
            profile = UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1])
            extLength = (Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])) * 4
            extOffset = offset + 4
            offset = extOffset + extLength
            guard offset <= length else { throw RTPError("extension overruns the packet") }
        }
        var end = length
        if b0 & 0x20 != 0 {
            let padding = Int(buffer[length - 1])
            guard padding > 0, offset + padding <= length else { throw RTPError("bad padding length") }
            end -= padding
        }
        self.buffer = buffer
        self.length = length
        payloadOffset = offset
        payloadLength = end - offset
        extensionOffset = extOffset
        extensionLength = extLength
        extensionProfile = profile
    }

    @inlinable public var marker: Bool { buffer[1] & 0x80 != 0 }
    @inlinable public var payloadType: UInt8 { buffer[1] & 0x7F }
    @inlinable public var sequenceNumber: UInt16 { UInt16(buffer[2]) << 8 | UInt16(buffer[3]) }
    @inlinable public var timestamp: UInt32 { load32(4) }
    @inlinable public var ssrc: UInt32 { load32(8) }
    @inlinable public var csrcCount: Int { Int(buffer[0] & 0x0F) }

    @inlinable func load32(_ o: Int) -> UInt32 {
        UInt32(buffer[o]) << 24 | UInt32(buffer[o + 1]) << 16 | UInt32(buffer[o + 2]) << 8 | UInt32(buffer[o + 3])
    }

    /// Rewrites the fields a forwarder changes, in place (the SFU's SSRC/sequence/timestamp mapping).
    @inlinable
    public func rewrite(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32, payloadType: UInt8? = nil) {
        buffer.storeBigEndian(sequenceNumber, at: 2)
        buffer.storeBigEndian(timestamp, at: 4)
        buffer.storeBigEndian(ssrc, at: 8)
        if let payloadType { buffer[1] = (buffer[1] & 0x80) | (payloadType & 0x7F) }
    }

    /// The value of header extension `id` (RFC 8285 one-byte or two-byte form), or nil.
    /// Returns the offset and length in the buffer, to read or rewrite in place.
    @inlinable
    public func headerExtension(id: UInt8) -> (offset: Int, length: Int)? {
        guard extensionLength > 0, id > 0 else { return nil }
        var o = extensionOffset
        let end = extensionOffset + extensionLength
        if extensionProfile == 0xBEDE {
            while o < end {
                let b = buffer[o]
                if b == 0 {  // padding
                    o += 1
                    continue
                }
                let elementID = b >> 4
                if elementID == 15 { return nil }  // reserved: stop
                let len = Int(b & 0x0F) + 1
                guard o + 1 + len <= end else { return nil }
                if elementID == id { return (o + 1, len) }
                o += 1 + len
            }
        } else if extensionProfile & 0xFFF0 == 0x1000 {
            while o + 1 < end {
                let elementID = buffer[o]
                if elementID == 0 {
                    o += 1
                    continue
                }
                let len = Int(buffer[o + 1])
                guard o + 2 + len <= end else { return nil }
                if elementID == id { return (o + 2, len) }
                o += 2 + len
            }
        }
        return nil
    }

    /// A header extension's bytes as text (mid, rid, repaired-rid).
    public func headerExtensionString(id: UInt8) -> String? {
        guard let (o, n) = headerExtension(id: id) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[o..<(o + n)]), as: UTF8.self)
    }

    /// RFC 6464 audio level: (voice activity, level 0–127 dBov) from extension `id`.
    @inlinable
    public func audioLevel(id: UInt8) -> (voice: Bool, level: UInt8)? {
        guard let (o, n) = headerExtension(id: id), n >= 1 else { return nil }
        return (buffer[o] & 0x80 != 0, buffer[o] & 0x7F)
    }

    /// Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions) from `id`.
    @inlinable
    public func transportSequenceNumber(id: UInt8) -> UInt16? {
        guard let (o, n) = headerExtension(id: id), n >= 2 else { return nil }
        return UInt16(buffer[o]) << 8 | UInt16(buffer[o + 1])
    }

    /// abs-send-time (24-bit 6.18 fixed point seconds) from `id`.
    @inlinable
    public func absoluteSendTime(id: UInt8) -> UInt32? {
        guard let (o, n) = headerExtension(id: id), n >= 3 else { return nil }
        return UInt32(buffer[o]) << 16 | UInt32(buffer[o + 1]) << 8 | UInt32(buffer[o + 2])
    }
}

/// The header-extension URIs Atrium understands (RFC 8285 `a=extmap`).
public enum RTPHeaderExtensionURI {
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"
    public static let rid = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    public static let repairedRid = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    public static let absSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    public static let transportWideCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    public static let videoOrientation = "urn:3gpp:video-orientation"
}

/// Demultiplexing of one UDP port (RFC 7983): what kind of packet a first byte announces.
public enum PacketKind: Sendable {
    case stun, dtls, rtp, rtcp, unknown

    @inlinable
    public static func classify(_ bytes: UnsafeRawBufferPointer) -> PacketKind {
        guard let first = bytes.first else { return .unknown }
        switch first {
        case 0...3: return .stun
        case 20...63: return .dtls
        case 128...191:
            guard bytes.count >= 2 else { return .unknown }
            // RTCP packet types 192–223 (RFC 5761): with the marker bit folded into the payload type.
            let type = bytes[1]
            return (type >= 192 && type <= 223) ? .rtcp : .rtp
        default: return .unknown
        }
    }
}
