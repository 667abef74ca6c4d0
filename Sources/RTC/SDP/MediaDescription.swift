/// One media section: an `m=` line and the lines under it, up to the next `m=` (RFC 8866 §5.14).
public struct MediaDescription: Sendable, Hashable {
    public var kind: MediaKind
    /// 9 in JSEP descriptions (the real address is in candidates); 0 marks a rejected or stopped section.
    public var port: UInt16
    /// The `/<number of ports>` after the port, rare outside multicast.
    public var portCount: UInt16?
    /// `UDP/TLS/RTP/SAVPF` for audio and video, `UDP/DTLS/SCTP` for data channels.
    public var transportProtocol: String
    /// The formats: payload types for RTP, `webrtc-datachannel` for SCTP.
    public var formats: [String]
    /// `i=`.
    public var title: String?
    /// `c=` lines.
    public var connections: [ConnectionData]
    /// `b=` lines.
    public var bandwidths: [Bandwidth]
    /// `k=` (obsolete), kept as written.
    public var encryptionKey: String?
    /// The `a=` lines in order.
    public var attributes: [SDPAttribute]

    public init(
        kind: MediaKind, port: UInt16 = 9, portCount: UInt16? = nil, transportProtocol: String = "UDP/TLS/RTP/SAVPF",
        formats: [String] = [], title: String? = nil, connections: [ConnectionData] = [.placeholder],
        bandwidths: [Bandwidth] = [], encryptionKey: String? = nil, attributes: [SDPAttribute] = []
    ) {
        self.kind = kind
        self.port = port
        self.portCount = portCount
        self.transportProtocol = transportProtocol
        self.formats = formats
        self.title = title
        self.connections = connections
        self.bandwidths = bandwidths
        self.encryptionKey = encryptionKey
        self.attributes = attributes
    }

    /// Whether the section carries RTP (its protocol names an RTP profile), so its formats are payload types.
    public var isRTP: Bool { Self.isRTP(transportProtocol) }

    static func isRTP(_ transportProtocol: String) -> Bool {
        transportProtocol.uppercased().split(separator: "/").contains("RTP")
    }

    /// Whether the section was rejected or its transceiver stopped: port 0, unless the section is
    /// `bundle-only`.
    public var isRejected: Bool { port == 0 && !isBundleOnly }

    /// `a=bundle-only` (RFC 8843): an offered section that only goes on the BUNDLE transport, so it
    /// comes with port 0 without being rejected. Firefox offers every section after the first
    /// this way (bundlePolicy "max-bundle").
    public var isBundleOnly: Bool {
        attributes.contains { if case .other(let name, _) = $0 { name == "bundle-only" } else { false } }
    }

    /// The payload types listed in the `m=` line, in preference order.
    public var payloadTypes: [UInt8] { formats.compactMap { SDPLexer.payloadType(Substring($0)) } }

    /// The attributes that have no typed property, in order.
    public var otherAttributes: [SDPAttribute] {
        attributes.filter { if case .other = $0 { true } else { false } }
    }

    /// `a=mid`.
    public var mid: String? {
        get { attributes.first { if case .mid(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .mid = $0 { true } else { false } }, with: newValue.map { [.mid($0)] } ?? []) }
    }

    /// The direction attribute, or nil when absent (which means `sendrecv`, see `direction`).
    public var directionAttribute: Direction? {
        get { attributes.first { if case .direction(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .direction = $0 { true } else { false } }, with: newValue.map { [.direction($0)] } ?? []) }
    }

    /// The media direction; `sendrecv` when no direction attribute is given (RFC 8866 §6.7).
    public var direction: Direction {
        get { directionAttribute ?? .sendrecv }
        set { directionAttribute = newValue }
    }

    /// `a=rtcp-mux`.
    public var rtcpMux: Bool {
        get { attributes.contains(.rtcpMux) }
        set { attributes.setFlag(.rtcpMux, newValue) }
    }

    /// `a=rtcp-rsize`.
    public var rtcpReducedSize: Bool {
        get { attributes.contains(.rtcpRsize) }
        set { attributes.setFlag(.rtcpRsize, newValue) }
    }

    /// `a=rtpmap` lines.
    public var rtpMaps: [RTPMap] {
        get { attributes.all { if case .rtpmap(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .rtpmap = $0 { true } else { false } }, with: newValue.map { .rtpmap($0) }) }
    }

    /// `a=fmtp` lines with a payload type.
    public var formatParameters: [FormatParameters] {
        get { attributes.all { if case .fmtp(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .fmtp = $0 { true } else { false } }, with: newValue.map { .fmtp($0) }) }
    }

    /// `a=rtcp-fb` lines, for one payload type or `*`.
    public var rtcpFeedback: [RTCPFeedback] {
        get { attributes.all { if case .rtcpFeedback(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .rtcpFeedback = $0 { true } else { false } }, with: newValue.map { .rtcpFeedback($0) }) }
    }

    /// `a=extmap` lines: the RTP header extensions and their ids.
    public var extensionMaps: [ExtensionMap] {
        get { attributes.all { if case .extmap(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .extmap = $0 { true } else { false } }, with: newValue.map { .extmap($0) }) }
    }

    /// The id of the header extension with `uri`, or nil when it is not negotiated.
    public func extensionID(uri: String) -> UInt16? {
        extensionMaps.first { $0.uri == uri }?.id
    }

    /// `a=msid` lines (usually one).
    public var msids: [MSID] {
        get { attributes.all { if case .msid(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .msid = $0 { true } else { false } }, with: newValue.map { .msid($0) }) }
    }

    /// `a=ssrc` lines.
    public var ssrcAttributes: [SSRCAttribute] {
        get { attributes.all { if case .ssrc(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .ssrc = $0 { true } else { false } }, with: newValue.map { .ssrc($0) }) }
    }

    /// The distinct SSRCs of `a=ssrc` lines, in order of first appearance.
    public var ssrcs: [UInt32] {
        var seen = Set<UInt32>()
        return ssrcAttributes.map(\.ssrc).filter { seen.insert($0).inserted }
    }

    /// `a=ssrc-group` lines.
    public var ssrcGroups: [SSRCGroup] {
        get { attributes.all { if case .ssrcGroup(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .ssrcGroup = $0 { true } else { false } }, with: newValue.map { .ssrcGroup($0) }) }
    }

    /// `a=rid` lines.
    public var rids: [RID] {
        get { attributes.all { if case .rid(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .rid = $0 { true } else { false } }, with: newValue.map { .rid($0) }) }
    }

    /// `a=simulcast`.
    public var simulcast: Simulcast? {
        get { attributes.first { if case .simulcast(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .simulcast = $0 { true } else { false } }, with: newValue.map { [.simulcast($0)] } ?? []) }
    }

    /// `a=candidate` lines.
    public var candidates: [Candidate] {
        get { attributes.all { if case .candidate(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .candidate = $0 { true } else { false } }, with: newValue.map { .candidate($0) }) }
    }

    /// `a=end-of-candidates`.
    public var endOfCandidates: Bool {
        get { attributes.contains(.endOfCandidates) }
        set { attributes.setFlag(.endOfCandidates, newValue) }
    }

    /// `a=sctp-port`: the SCTP port of a data channel section.
    public var sctpPort: UInt16? {
        get { attributes.first { if case .sctpPort(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .sctpPort = $0 { true } else { false } }, with: newValue.map { [.sctpPort($0)] } ?? []) }
    }

    /// `a=max-message-size`: the largest data channel message the writer accepts.
    public var maxMessageSize: UInt64? {
        get { attributes.first { if case .maxMessageSize(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .maxMessageSize = $0 { true } else { false } }, with: newValue.map { [.maxMessageSize($0)] } ?? []) }
    }

}

extension MediaDescription {
    /// The start of an answer to this offered section: same kind, protocol and mid, the answering
    /// direction, port 9 (0 when the offer rejected it) and no codecs yet. The plugin adds codecs
    /// (`append(_:)`) before the description is written; the host adds the transport attributes.
    public func answerSkeleton(canSend: Bool = true, canReceive: Bool = true) -> MediaDescription {
        var answer = MediaDescription(kind: kind, port: isRejected ? 0 : 9, transportProtocol: transportProtocol)
        if isRejected || !isRTP { answer.formats = formats }
        if let mid { answer.mid = mid }
        if isRTP { answer.direction = isRejected ? .inactive : direction.answering(canSend: canSend, canReceive: canReceive) }
        return answer
    }
}
