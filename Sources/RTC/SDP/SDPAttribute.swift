/// One `a=` line: parsed when WebRTC gives it a meaning, kept verbatim otherwise.
///
/// Session and media descriptions hold their attributes as one ordered list, so a description is
/// written back in the order it was read; the typed properties of `SessionDescription` and
/// `MediaDescription` read and replace entries of that list.
public enum SDPAttribute: Sendable, Hashable {
    /// `a=group:BUNDLE 0 1`.
    case group(MediaGroup)
    /// `a=msid-semantic: WMS *`.
    case msidSemantic(MSIDSemantic)
    /// `a=ice-lite`: the writer is an ICE-lite agent (RFC 8445 §2.5).
    case iceLite
    /// `a=ice-ufrag`.
    case iceUfrag(String)
    /// `a=ice-pwd`.
    case icePwd(String)
    /// `a=ice-options:trickle renomination`.
    case iceOptions([String])
    /// `a=fingerprint:sha-256 AB:CD:…`.
    case fingerprint(Fingerprint)
    /// `a=setup:actpass`.
    case setup(SetupRole)
    /// `a=extmap-allow-mixed`: one- and two-byte header extensions may be mixed (RFC 8285 §6).
    case extmapAllowMixed
    /// `a=mid:0`.
    case mid(String)
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`.
    case direction(Direction)
    /// `a=rtcp-mux`: RTP and RTCP share one port (RFC 5761).
    case rtcpMux
    /// `a=rtcp-rsize`: reduced-size RTCP is accepted (RFC 5506).
    case rtcpRsize
    /// `a=rtpmap:111 opus/48000/2`.
    case rtpmap(RTPMap)
    /// `a=fmtp:111 minptime=10;useinbandfec=1`.
    case fmtp(FormatParameters)
    /// `a=rtcp-fb:96 nack pli`.
    case rtcpFeedback(RTCPFeedback)
    /// `a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid`.
    case extmap(ExtensionMap)
    /// `a=msid:<stream> <track>`.
    case msid(MSID)
    /// `a=ssrc:1257881913 cname:…`.
    case ssrc(SSRCAttribute)
    /// `a=ssrc-group:FID 2687707739 1125979524`.
    case ssrcGroup(SSRCGroup)
    /// `a=rid:h send`.
    case rid(RID)
    /// `a=simulcast:send h;m;l`.
    case simulcast(Simulcast)
    /// `a=candidate:…`.
    case candidate(Candidate)
    /// `a=end-of-candidates`: no more candidates will be trickled (RFC 8840).
    case endOfCandidates
    /// `a=sctp-port:5000` (RFC 8841).
    case sctpPort(UInt16)
    /// `a=max-message-size:262144` (RFC 8841); 0 means no limit.
    case maxMessageSize(UInt64)
    /// Any other attribute, or a known one written in a form WebRTC does not use, kept as written.
    case other(name: String, value: String?)

    /// The attribute name, the text between `a=` and the first colon.
    public var name: String {
        switch self {
        case .group: "group"
        case .msidSemantic: "msid-semantic"
        case .iceLite: "ice-lite"
        case .iceUfrag: "ice-ufrag"
        case .icePwd: "ice-pwd"
        case .iceOptions: "ice-options"
        case .fingerprint: "fingerprint"
        case .setup: "setup"
        case .extmapAllowMixed: "extmap-allow-mixed"
        case .mid: "mid"
        case .direction(let direction): direction.rawValue
        case .rtcpMux: "rtcp-mux"
        case .rtcpRsize: "rtcp-rsize"
        case .rtpmap: "rtpmap"
        case .fmtp: "fmtp"
        case .rtcpFeedback: "rtcp-fb"
        case .extmap: "extmap"
        case .msid: "msid"
        case .ssrc: "ssrc"
        case .ssrcGroup: "ssrc-group"
        case .rid: "rid"
        case .simulcast: "simulcast"
        case .candidate: "candidate"
        case .endOfCandidates: "end-of-candidates"
        case .sctpPort: "sctp-port"
        case .maxMessageSize: "max-message-size"
        case .other(let name, _): name
        }
    }

    /// The text after the colon, or nil for a flag such as `a=rtcp-mux`.
    public var value: String? {
        switch self {
        case .group(let group): group.value
        case .msidSemantic(let semantic): semantic.value
        case .iceLite, .extmapAllowMixed, .direction, .rtcpMux, .rtcpRsize, .endOfCandidates: nil
        case .iceUfrag(let text), .icePwd(let text), .mid(let text): text
        case .iceOptions(let options): options.joined(separator: " ")
        case .fingerprint(let fingerprint): fingerprint.value
        case .setup(let role): role.rawValue
        case .rtpmap(let map): map.value
        case .fmtp(let parameters): parameters.value
        case .rtcpFeedback(let feedback): feedback.value
        case .extmap(let map): map.value
        case .msid(let msid): msid.value
        case .ssrc(let attribute): attribute.text
        case .ssrcGroup(let group): group.value
        case .rid(let rid): rid.value
        case .simulcast(let simulcast): simulcast.value
        case .candidate(let candidate): candidate.value
        case .sctpPort(let port): String(port)
        case .maxMessageSize(let size): String(size)
        case .other(_, let value): value
        }
    }

    /// The whole line without its line break, `a=<name>[:<value>]`.
    public var line: String { "a=" + name + (value.map { ":" + $0 } ?? "") }

    /// The attribute of one `a=` line value (the text after `a=`).
    init(parsing text: Substring) throws(SDPSyntaxError) {
        let name: Substring
        let value: Substring?
        if let colon = text.firstIndex(of: ":") {
            name = text[..<colon]
            value = text[text.index(after: colon)...]
        } else {
            name = text
            value = nil
        }
        guard !name.isEmpty else { throw SDPSyntaxError("a= line has no attribute name: \(SDPLexer.quoted(text))") }
        guard let value else {
            self = Self.flag(name) ?? .other(name: String(name), value: nil)
            return
        }
        switch name {
        case "group": self = .group(try MediaGroup(parsing: value))
        case "msid-semantic": self = .msidSemantic(try MSIDSemantic(parsing: value))
        case "ice-ufrag": self = .iceUfrag(try Self.nonEmpty(name, value))
        case "ice-pwd": self = .icePwd(try Self.nonEmpty(name, value))
        case "mid": self = .mid(try Self.nonEmpty(name, value))
        case "ice-options": self = .iceOptions(SDPLexer.tokens(value).map(String.init))
        case "fingerprint": self = .fingerprint(try Fingerprint(parsing: value))
        case "setup":
            guard let role = SetupRole(rawValue: String(value)) else {
                throw SDPSyntaxError("a=setup \(SDPLexer.quoted(value)) is not active, passive, actpass or holdconn")
            }
            self = .setup(role)
        case "rtpmap": self = .rtpmap(try RTPMap(parsing: value))
        case "fmtp": self = FormatParameters(parsing: value).map { .fmtp($0) } ?? .other(name: "fmtp", value: String(value))
        case "rtcp-fb": self = .rtcpFeedback(try RTCPFeedback(parsing: value))
        case "extmap": self = .extmap(try ExtensionMap(parsing: value))
        case "msid": self = .msid(try MSID(parsing: value))
        case "ssrc": self = .ssrc(try SSRCAttribute(parsing: value))
        case "ssrc-group": self = .ssrcGroup(try SSRCGroup(parsing: value))
        case "rid": self = .rid(try RID(parsing: value))
        case "simulcast": self = .simulcast(try Simulcast(parsing: value))
        case "candidate": self = .candidate(try Candidate(parsing: value))
        case "sctp-port":
            guard let port = SDPLexer.number(value, as: UInt16.self) else {
                throw SDPSyntaxError("a=sctp-port \(SDPLexer.quoted(value)) is not a number from 0 to 65535")
            }
            self = .sctpPort(port)
        case "max-message-size":
            guard let size = SDPLexer.number(value, as: UInt64.self) else {
                throw SDPSyntaxError("a=max-message-size \(SDPLexer.quoted(value)) is not a number")
            }
            self = .maxMessageSize(size)
        default: self = .other(name: String(name), value: String(value))
        }
    }

    private static func nonEmpty(_ name: Substring, _ value: Substring) throws(SDPSyntaxError) -> String {
        guard !value.isEmpty else { throw SDPSyntaxError("a=\(name) is empty") }
        return String(value)
    }

    private static func flag(_ name: Substring) -> SDPAttribute? {
        switch name {
        case "ice-lite": .iceLite
        case "extmap-allow-mixed": .extmapAllowMixed
        case "rtcp-mux": .rtcpMux
        case "rtcp-rsize": .rtcpRsize
        case "end-of-candidates": .endOfCandidates
        default: Direction(rawValue: String(name)).map { .direction($0) }
        }
    }
}

extension Array where Element == SDPAttribute {
    /// Adds a flag attribute (`a=ice-lite`, `a=rtcp-mux`, ...) once, or removes every copy.
    mutating func setFlag(_ flag: SDPAttribute, _ on: Bool) {
        if on {
            if !contains(flag) { append(flag) }
        } else {
            removeAll { $0 == flag }
        }
    }

    /// The payloads of the attributes `extract` picks out, in order.
    func all<T>(_ extract: (SDPAttribute) -> T?) -> [T] { compactMap(extract) }

    /// The payload of the first attribute `extract` picks out.
    func first<T>(_ extract: (SDPAttribute) -> T?) -> T? {
        for attribute in self { if let value = extract(attribute) { return value } }
        return nil
    }

    /// Replaces every attribute `matches` picks with `replacements`, placed where the first one was
    /// (at the end when there was none).
    mutating func replace(where matches: (SDPAttribute) -> Bool, with replacements: [SDPAttribute]) {
        let position = firstIndex(where: matches)
        removeAll(where: matches)
        let insertion = position.map { Swift.min($0, count) } ?? count
        insert(contentsOf: replacements, at: insertion)
    }
}

/// A level of an SDP that carries the transport attributes: the session, or one media section
/// (where the section's own value wins over the session's; see `SessionDescription.iceCredentials(of:)`).
public protocol SDPTransportAttributes {
    var attributes: [SDPAttribute] { get set }
}

extension SDPTransportAttributes {
    /// `a=ice-ufrag` at this level.
    public var iceUfrag: String? {
        get { attributes.first { if case .iceUfrag(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .iceUfrag = $0 { true } else { false } }, with: newValue.map { [.iceUfrag($0)] } ?? []) }
    }

    /// `a=ice-pwd` at this level.
    public var icePwd: String? {
        get { attributes.first { if case .icePwd(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .icePwd = $0 { true } else { false } }, with: newValue.map { [.icePwd($0)] } ?? []) }
    }

    /// `a=ice-options` at this level, e.g. `["trickle"]`.
    public var iceOptions: [String] {
        get { attributes.all { if case .iceOptions(let v) = $0 { v } else { nil } }.flatMap { $0 } }
        set { attributes.replace(where: { if case .iceOptions = $0 { true } else { false } }, with: newValue.isEmpty ? [] : [.iceOptions(newValue)]) }
    }

    /// `a=fingerprint` lines at this level (a peer may give several hash functions).
    public var fingerprints: [Fingerprint] {
        get { attributes.all { if case .fingerprint(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .fingerprint = $0 { true } else { false } }, with: newValue.map { .fingerprint($0) }) }
    }

    /// Drops this level's ICE and DTLS attributes (credentials, options, fingerprints, role).
    public mutating func removeTransport() {
        iceUfrag = nil
        icePwd = nil
        iceOptions = []
        fingerprints = []
        setup = nil
    }

    /// `a=setup` at this level.
    public var setup: SetupRole? {
        get { attributes.first { if case .setup(let v) = $0 { v } else { nil } } }
        set { attributes.replace(where: { if case .setup = $0 { true } else { false } }, with: newValue.map { [.setup($0)] } ?? []) }
    }
}

extension SessionDescription: SDPTransportAttributes {}
extension MediaDescription: SDPTransportAttributes {}
