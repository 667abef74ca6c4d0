/// An ICE candidate: one transport address a peer can be reached at (RFC 8839 §5.1, RFC 6544 for TCP).
public struct Candidate: Sendable, Hashable {
    /// The transport protocol, as written (Firefox writes `UDP`, Chromium `udp`); compared case-insensitively.
    public struct Transport: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let udp = Transport(rawValue: "udp")
        public static let tcp = Transport(rawValue: "tcp")
        public static func == (a: Transport, b: Transport) -> Bool { a.rawValue.lowercased() == b.rawValue.lowercased() }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue.lowercased()) }
        public var description: String { rawValue }
    }

    /// How the candidate was obtained: `host`, `srflx`, `prflx`, `relay`, or another type kept as written.
    public struct Kind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// An address of a local interface.
        public static let host = Kind(rawValue: "host")
        /// A server-reflexive address, learned from a STUN server.
        public static let serverReflexive = Kind(rawValue: "srflx")
        /// A peer-reflexive address, learned from a connectivity check.
        public static let peerReflexive = Kind(rawValue: "prflx")
        /// An address on a TURN server.
        public static let relay = Kind(rawValue: "relay")
        public var description: String { rawValue }
    }

    /// The role of a TCP candidate (RFC 6544 §4.5).
    public enum TCPType: String, Sendable, Hashable, CaseIterable {
        case active, passive, so
    }

    /// An extension attribute after the standard fields, such as `generation 0` or `network-id 1`.
    public struct Extension: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var foundation: String
    /// 1 for RTP, 2 for RTCP when it is not multiplexed.
    public var component: UInt16
    public var transport: Transport
    public var priority: UInt32
    /// An IP address or a host name (browsers hide local addresses behind `….local` mDNS names).
    public var address: String
    public var port: UInt16
    public var kind: Kind
    /// `raddr`: the base or server address a reflexive or relayed candidate derives from.
    public var relatedAddress: String?
    /// `rport`.
    public var relatedPort: UInt16?
    /// `tcptype`, for TCP candidates.
    public var tcpType: TCPType?
    /// The other extension attributes, in order: `generation`, `ufrag`, `network-id`, `network-cost`, …
    public var extensions: [Extension]

    public init(
        foundation: String, component: UInt16 = 1, transport: Transport = .udp, priority: UInt32,
        address: String, port: UInt16, kind: Kind = .host, relatedAddress: String? = nil, relatedPort: UInt16? = nil,
        tcpType: TCPType? = nil, extensions: [Extension] = []
    ) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.address = address
        self.port = port
        self.kind = kind
        self.relatedAddress = relatedAddress
        self.relatedPort = relatedPort
        self.tcpType = tcpType
        self.extensions = extensions
    }

    /// The value of extension attribute `name` (`ufrag`, `generation`, …), or nil.
    public func extensionValue(_ name: String) -> String? {
        extensions.first { $0.name == name }?.value
    }

    /// Parses a candidate as trickled in signaling: `candidate:…`, `a=candidate:…` or the bare value.
    /// Errors report line 1. The empty string browsers trickle to mean "no more candidates" is not a
    /// candidate and throws; check for it first.
    public static func parse(_ text: String) throws(SDPParseError) -> Candidate {
        var value = Substring(text)
        while let last = value.unicodeScalars.last, last == "\r" || last == "\n" {
            value = Substring(value.unicodeScalars.dropLast())
        }
        if value.hasPrefix("a=") { value = value.dropFirst(2) }
        if value.hasPrefix("candidate:") { value = value.dropFirst("candidate:".count) }
        do {
            return try Candidate(parsing: value)
        } catch {
            throw SDPParseError(line: 1, code: error.code, reason: error.reason)
        }
    }

    /// The `candidate:` attribute value, without `a=` (as `RTCIceCandidate.candidate` carries it).
    public var attributeText: String { "candidate:" + value }

    var value: String {
        var text = "\(foundation) \(component) \(transport.rawValue) \(priority) \(address) \(port) typ \(kind.rawValue)"
        if let relatedAddress { text += " raddr \(relatedAddress)" }
        if let relatedPort { text += " rport \(relatedPort)" }
        if let tcpType { text += " tcptype \(tcpType.rawValue)" }
        for item in extensions { text += " \(item.name) \(item.value)" }
        return text
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count >= 8, t[6] == "typ" else {
            throw SDPSyntaxError("a=candidate must be <foundation> <component> <transport> <priority> <address> <port> typ <type> […], found \(SDPLexer.quoted(text))")
        }
        guard let component = SDPLexer.number(t[1], as: UInt16.self) else {
            throw SDPSyntaxError("a=candidate component \(SDPLexer.quoted(t[1])) is not a number")
        }
        guard let priority = SDPLexer.number(t[3], as: UInt32.self) else {
            throw SDPSyntaxError("a=candidate priority \(SDPLexer.quoted(t[3])) is not a 32-bit number")
        }
        guard let port = SDPLexer.number(t[5], as: UInt16.self) else {
            throw SDPSyntaxError("a=candidate port \(SDPLexer.quoted(t[5])) is not a number from 0 to 65535")
        }
        guard t.count.isMultiple(of: 2) else {
            throw SDPSyntaxError("a=candidate extension \(SDPLexer.quoted(t[t.count - 1])) has no value")
        }
        self.init(foundation: String(t[0]), component: component, transport: Transport(rawValue: String(t[2])),
                  priority: priority, address: String(t[4]), port: port, kind: Kind(rawValue: String(t[7])))
        for index in stride(from: 8, to: t.count, by: 2) {
            let name = t[index], value = t[index + 1]
            switch name {
            case "raddr": relatedAddress = String(value)
            case "rport":
                guard let port = SDPLexer.number(value, as: UInt16.self) else {
                    throw SDPSyntaxError("a=candidate rport \(SDPLexer.quoted(value)) is not a number from 0 to 65535")
                }
                relatedPort = port
            case "tcptype":
                guard let type = TCPType(rawValue: String(value)) else {
                    throw SDPSyntaxError("a=candidate tcptype \(SDPLexer.quoted(value)) is not active, passive or so")
                }
                tcpType = type
            default: extensions.append(Extension(name: String(name), value: String(value)))
            }
        }
    }
}
