/// The video codecs whose RTP payloads a forwarder or recorder looks into.
public enum VideoCodec: String, Sendable, Hashable {
    case vp8, vp9, h264, av1

    /// The codec of an `a=rtpmap` encoding name (`VP8`, `H264`, …), or nil for one this file does not read.
    public init?(encodingName: String) {
        self.init(rawValue: encodingName.lowercased())
    }
}

/// What the start of a video RTP payload says about the frame it carries: enough for a forwarder to
/// switch layers on a keyframe and drop temporal layers, without decoding anything.
/// The corresponding formats are RFC 7741 (VP8), RFC 9628 (VP9), RFC 6184 (H.264) and the AV1 RTP
/// payload specification (AOMedia, 2021).
public enum VideoPayload {
    /// Whether `payload` holds the start of a keyframe (an intra frame a decoder can start from).
    /// For VP9 only the base spatial layer counts; for H.264 an IDR slice or a sequence parameter set.
    public static func isKeyframe(_ codec: VideoCodec, _ payload: UnsafeRawBufferPointer) -> Bool {
        switch codec {
        case .vp8: VP8Descriptor(payload)?.isKeyframe ?? false
        case .vp9: vp9Keyframe(payload)
        case .h264: h264Keyframe(payload)
        case .av1: payload.count >= 1 && payload[0] & 0x08 != 0  // N: the first packet of a coded video sequence
        }
    }

    static func vp9Keyframe(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 1 else { return false }
        let b0 = p[0]
        // P (inter-picture predicted) clear and B (start of a frame) set.
        guard b0 & 0x40 == 0, b0 & 0x08 != 0 else { return false }
        guard b0 & 0x20 != 0 else { return true }  // no layer indices: one spatial layer
        var o = 1
        if b0 & 0x80 != 0 {  // I: picture id, 7 or 15 bits
            guard p.count > o else { return false }
            o += p[o] & 0x80 != 0 ? 2 : 1
        }
        guard p.count > o else { return false }
        return (p[o] >> 1) & 0x07 == 0  // SID 0
    }

    static func h264Keyframe(_ p: UnsafeRawBufferPointer) -> Bool {
        guard p.count >= 1 else { return false }
        func isKey(_ nalType: UInt8) -> Bool { nalType == 5 || nalType == 7 }
        let type = p[0] & 0x1F
        switch type {
        case 1...23:
            return isKey(type)
        case 24:  // STAP-A: 16-bit sizes, each followed by a NAL unit
            var o = 1
            while o + 2 < p.count {
                let size = Int(p[o]) << 8 | Int(p[o + 1])
                guard size > 0, o + 2 + size <= p.count else { return false }
                if isKey(p[o + 2] & 0x1F) { return true }
                o += 2 + size
            }
            return false
        case 28:  // FU-A: the start fragment names the NAL type
            return p.count >= 2 && p[1] & 0x80 != 0 && isKey(p[1] & 0x1F)
        default:
            return false
        }
    }
}

/// The VP8 payload descriptor (RFC 7741 §4.2) of one packet: where its picture id and TL0PICIDX are
/// (to rewrite them in place), its temporal layer, and whether it starts a keyframe.
public struct VP8Descriptor: Sendable, Equatable {
    /// Offset of the picture id, and whether it is the 15-bit form; nil without a picture id.
    public var pictureIDOffset: Int?
    public var pictureIDIs15Bit = false
    public var pictureID: UInt16 = 0
    /// Offset of TL0PICIDX, nil without one.
    public var tl0PicIdxOffset: Int?
    public var tl0PicIdx: UInt8 = 0
    /// The temporal layer (TID), 0 when absent.
    public var temporalID: UInt8 = 0
    /// Y: the frame depends only on base-layer frames, so a receiver can switch up here.
    public var layerSync = false
    /// S with partition index 0: the first packet of a frame.
    public var startsFrame = false
    public var isKeyframe = false
    /// Length of the descriptor; the VP8 payload follows.
    public var length = 1

    /// Parses the descriptor at the start of `p`; nil when it is truncated.
    public init?(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 1 else { return nil }
        let b0 = p[0]
        var o = 1
        if b0 & 0x80 != 0 {  // X: an extension byte follows
            guard p.count > o else { return nil }
            let x = p[o]
            o += 1
            if x & 0x80 != 0 {  // I
                guard p.count > o else { return nil }
                pictureIDOffset = o
                if p[o] & 0x80 != 0 {
                    guard p.count > o + 1 else { return nil }
                    pictureIDIs15Bit = true
                    pictureID = UInt16(p[o] & 0x7F) << 8 | UInt16(p[o + 1])
                    o += 2
                } else {
                    pictureID = UInt16(p[o] & 0x7F)
                    o += 1
                }
            }
            if x & 0x40 != 0 {  // L
                guard p.count > o else { return nil }
                tl0PicIdxOffset = o
                tl0PicIdx = p[o]
                o += 1
            }
            if x & 0x30 != 0 {  // T or K
                guard p.count > o else { return nil }
                if x & 0x20 != 0 {
                    temporalID = p[o] >> 6
                    layerSync = p[o] & 0x20 != 0
                }
                o += 1
            }
        }
        length = o
        startsFrame = b0 & 0x10 != 0 && b0 & 0x07 == 0
        // The VP8 payload header's P bit is 0 on a keyframe (RFC 6386 §9.1).
        isKeyframe = startsFrame && p.count > o && p[o] & 0x01 == 0
    }

    /// Writes a picture id and TL0PICIDX into the descriptor at the start of `p`, in the widths the
    /// packet already has (a 7-bit picture id keeps 7 bits).
    public func rewrite(_ p: UnsafeMutableRawBufferPointer, pictureID newPictureID: UInt16, tl0PicIdx newTL0: UInt8) {
        if let o = pictureIDOffset {
            if pictureIDIs15Bit {
                p[o] = 0x80 | UInt8((newPictureID >> 8) & 0x7F)
                p[o + 1] = UInt8(newPictureID & 0xFF)
            } else {
                p[o] = UInt8(newPictureID & 0x7F)
            }
        }
        if let o = tl0PicIdxOffset { p[o] = newTL0 }
    }
}
