/// An RTP payload format of a media section: its `rtpmap`, `fmtp` and `rtcp-fb` lines joined by payload type.
public struct Codec: Sendable, Hashable {
    public var payloadType: UInt8
    /// The encoding name as written: `opus`, `VP8`, `H264`, `rtx`, `red`, `ulpfec`, …
    public var name: String
    public var clockRate: UInt32
    /// For audio, the channel count when stated.
    public var channels: Int?
    /// The `a=fmtp` parameters as written, or nil when there is no `a=fmtp` line.
    public var parameters: String?
    /// The feedback mechanisms for this payload type, `*` lines included (with this payload type).
    public var feedback: [RTCPFeedback]
    /// For an `rtx` codec, the payload type it retransmits (`apt=`).
    public var associatedPayloadType: UInt8?
    /// For a media codec, the payload type of the `rtx` codec that retransmits it.
    public var retransmissionPayloadType: UInt8?

    public init(
        payloadType: UInt8, name: String, clockRate: UInt32, channels: Int? = nil, parameters: String? = nil,
        feedback: [RTCPFeedback] = [], associatedPayloadType: UInt8? = nil, retransmissionPayloadType: UInt8? = nil
    ) {
        self.payloadType = payloadType
        self.name = name
        self.clockRate = clockRate
        self.channels = channels
        self.parameters = parameters
        self.feedback = feedback
        self.associatedPayloadType = associatedPayloadType
        self.retransmissionPayloadType = retransmissionPayloadType
    }

    /// Whether this is an RTX retransmission format (RFC 4588), not a media codec.
    public var isRetransmission: Bool { name.lowercased() == "rtx" }

    /// Whether the name is `name`, compared case-insensitively as SDP requires.
    public func hasName(_ name: String) -> Bool { self.name.lowercased() == name.lowercased() }

    /// The value of format parameter `name` (case-insensitive), or nil.
    public func parameter(_ name: String) -> String? {
        parameters.flatMap { FormatParameters(payloadType: payloadType, parameters: $0).value(of: name) }
    }

    /// Whether the feedback includes `type` with `parameter` (`nack`/nil, `nack`/`pli`, `ccm`/`fir`, …).
    public func supportsFeedback(_ type: String, _ parameter: String? = nil) -> Bool {
        feedback.contains { $0.type == type && $0.parameter == parameter }
    }

    /// The static payload types of RFC 3551 that need no `a=rtpmap`.
    static let staticPayloadTypes: [UInt8: (name: String, clockRate: UInt32, channels: Int?)] = [
        0: ("PCMU", 8000, nil), 3: ("GSM", 8000, nil), 4: ("G723", 8000, nil), 5: ("DVI4", 8000, nil),
        6: ("DVI4", 16000, nil), 7: ("LPC", 8000, nil), 8: ("PCMA", 8000, nil), 9: ("G722", 8000, nil),
        10: ("L16", 44100, 2), 11: ("L16", 44100, nil), 12: ("QCELP", 8000, nil), 13: ("CN", 8000, nil),
        14: ("MPA", 90000, nil), 15: ("G728", 8000, nil), 16: ("DVI4", 11025, nil), 17: ("DVI4", 22050, nil),
        18: ("G729", 8000, nil), 25: ("CelB", 90000, nil), 26: ("JPEG", 90000, nil), 28: ("nv", 90000, nil),
        31: ("H261", 90000, nil), 32: ("MPV", 90000, nil), 33: ("MP2T", 90000, nil), 34: ("H263", 90000, nil),
    ]
}

extension MediaDescription {
    /// The codecs in `m=` line order, each joined with its `fmtp` and `rtcp-fb` lines and RTX
    /// associations. A payload type with no `a=rtpmap` is included only if it is a static one (RFC 3551).
    public var codecs: [Codec] {
        var maps: [UInt8: RTPMap] = [:]
        var parameters: [UInt8: String] = [:]
        var feedback: [UInt8: [RTCPFeedback]] = [:]
        var wildcardFeedback: [RTCPFeedback] = []
        for attribute in attributes {
            switch attribute {
            case .rtpmap(let map): if maps[map.payloadType] == nil { maps[map.payloadType] = map }
            case .fmtp(let fmtp): if parameters[fmtp.payloadType] == nil { parameters[fmtp.payloadType] = fmtp.parameters }
            case .rtcpFeedback(let fb):
                if let pt = fb.payloadType { feedback[pt, default: []].append(fb) } else { wildcardFeedback.append(fb) }
            default: break
            }
        }
        var seen = Set<UInt8>()
        var codecs: [Codec] = []
        for pt in payloadTypes where seen.insert(pt).inserted {
            var codec: Codec
            if let map = maps[pt] {
                codec = Codec(payloadType: pt, name: map.encodingName, clockRate: map.clockRate, channels: map.channels)
            } else if let known = Codec.staticPayloadTypes[pt] {
                codec = Codec(payloadType: pt, name: known.name, clockRate: known.clockRate, channels: known.channels)
            } else {
                continue
            }
            codec.parameters = parameters[pt]
            codec.feedback = (feedback[pt] ?? []) + wildcardFeedback.map { RTCPFeedback(payloadType: pt, type: $0.type, parameter: $0.parameter) }
            if codec.isRetransmission, let apt = codec.parameter("apt").flatMap({ SDPLexer.payloadType(Substring($0)) }) {
                codec.associatedPayloadType = apt
            }
            codecs.append(codec)
        }
        for rtx in codecs where rtx.isRetransmission {
            guard let apt = rtx.associatedPayloadType, let index = codecs.firstIndex(where: { $0.payloadType == apt }),
                  codecs[index].retransmissionPayloadType == nil else { continue }
            codecs[index].retransmissionPayloadType = rtx.payloadType
        }
        return codecs
    }

    /// The codec with payload type `payloadType`, or nil.
    public func codec(payloadType: UInt8) -> Codec? {
        codecs.first { $0.payloadType == payloadType }
    }

    /// The codecs named `name` (case-insensitively), in preference order.
    public func codecs(named name: String) -> [Codec] {
        codecs.filter { $0.hasName(name) }
    }

    /// Adds a codec: its payload type to the `m=` line and its `rtpmap`, `rtcp-fb` and `fmtp` lines.
    /// `associatedPayloadType` of an RTX codec is written as `apt=` when its parameters lack one.
    public mutating func append(_ codec: Codec) {
        let pt = String(codec.payloadType)
        if !formats.contains(pt) { formats.append(pt) }
        attributes.append(.rtpmap(RTPMap(payloadType: codec.payloadType, encodingName: codec.name, clockRate: codec.clockRate, channels: codec.channels)))
        for fb in codec.feedback {
            attributes.append(.rtcpFeedback(RTCPFeedback(payloadType: codec.payloadType, type: fb.type, parameter: fb.parameter)))
        }
        var parameters = codec.parameters
        if let apt = codec.associatedPayloadType, codec.parameter("apt") == nil {
            parameters = parameters.map { "apt=\(apt);\($0)" } ?? "apt=\(apt)"
        }
        if let parameters { attributes.append(.fmtp(FormatParameters(payloadType: codec.payloadType, parameters: parameters))) }
    }

    /// Removes the codecs `shouldRemove` picks: their payload types from the `m=` line and their
    /// `rtpmap`, `fmtp` and payload-specific `rtcp-fb` lines.
    public mutating func removeCodecs(where shouldRemove: (Codec) -> Bool) {
        let removed = Set(codecs.filter(shouldRemove).map(\.payloadType))
        guard !removed.isEmpty else { return }
        formats.removeAll { SDPLexer.payloadType(Substring($0)).map(removed.contains) ?? false }
        attributes.removeAll { attribute in
            switch attribute {
            case .rtpmap(let map): removed.contains(map.payloadType)
            case .fmtp(let fmtp): removed.contains(fmtp.payloadType)
            case .rtcpFeedback(let fb): fb.payloadType.map(removed.contains) ?? false
            default: false
            }
        }
    }
}
