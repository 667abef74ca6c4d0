/// `a=group`: media sections tied together by a semantics, as in `BUNDLE 0 1 2` (RFC 5888, RFC 9143).
public struct MediaGroup: Sendable, Hashable {
    /// `BUNDLE`, `LS`, `FID`, …
    public var semantics: String
    /// The mids of the grouped media sections, in order.
    public var mids: [String]

    public init(semantics: String, mids: [String]) {
        self.semantics = semantics
        self.mids = mids
    }

    /// A BUNDLE group: every listed media section shares one transport, the first one's.
    public static func bundle(_ mids: [String]) -> MediaGroup { MediaGroup(semantics: "BUNDLE", mids: mids) }

    /// Whether the semantics is BUNDLE.
    public var isBundle: Bool { semantics.uppercased() == "BUNDLE" }

    var value: String { ([semantics] + mids).joined(separator: " ") }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard let semantics = t.first else { throw SDPSyntaxError("a=group has no semantics") }
        self.init(semantics: String(semantics), mids: t.dropFirst().map(String.init))
    }
}

/// `a=msid-semantic`: the session-level msid semantics, `WMS` followed by stream ids or `*` (legacy, still sent by browsers).
public struct MSIDSemantic: Sendable, Hashable {
    /// `WMS`.
    public var semantic: String
    /// Stream ids, or `*`; may be empty.
    public var identifiers: [String]
    /// Whether a space follows the colon (`a=msid-semantic: WMS`, as Chromium writes it) — kept so a
    /// description is written back as it was read; ignored by `==`.
    public var spaceAfterColon: Bool

    public init(semantic: String = "WMS", identifiers: [String] = ["*"], spaceAfterColon: Bool = true) {
        self.semantic = semantic
        self.identifiers = identifiers
        self.spaceAfterColon = spaceAfterColon
    }

    public static func == (a: MSIDSemantic, b: MSIDSemantic) -> Bool {
        a.semantic == b.semantic && a.identifiers == b.identifiers
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(semantic)
        hasher.combine(identifiers)
    }

    var value: String { (spaceAfterColon ? " " : "") + ([semantic] + identifiers).joined(separator: " ") }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard let semantic = t.first else { throw SDPSyntaxError("a=msid-semantic has no semantic") }
        self.init(semantic: String(semantic), identifiers: t.dropFirst().map(String.init), spaceAfterColon: text.first == " ")
    }
}

/// `a=fingerprint`: the hash of a DTLS certificate, algorithm and colon-separated hex (RFC 8122).
public struct Fingerprint: Sendable, Hashable {
    /// `sha-256`, `sha-384`, `sha-512`, …, as written.
    public var algorithm: String
    /// The hash as colon-separated hex bytes, `06:94:51:…`, as written.
    public var hex: String

    public init(algorithm: String, hex: String) {
        self.algorithm = algorithm
        self.hex = hex
    }

    /// A fingerprint from raw hash bytes, written in upper-case hex as browsers do.
    public init(algorithm: String, bytes: [UInt8]) {
        let digits = Array("0123456789ABCDEF".utf8)
        let hex = bytes.map { String(decoding: [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]], as: UTF8.self) }
        self.init(algorithm: algorithm, hex: hex.joined(separator: ":"))
    }

    /// The hash bytes, or nil if `hex` is not colon-separated pairs of hex digits.
    public var bytes: [UInt8]? {
        var result: [UInt8] = []
        for pair in hex.split(separator: ":", omittingEmptySubsequences: false) {
            guard pair.utf8.count == 2, let byte = UInt8(pair, radix: 16) else { return nil }
            result.append(byte)
        }
        return result
    }

    var value: String { "\(algorithm) \(hex)" }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count == 2 else {
            throw SDPSyntaxError("a=fingerprint must be <hash-function> <hex>, found \(SDPLexer.quoted(text))")
        }
        self.init(algorithm: String(t[0]), hex: String(t[1]))
        guard bytes != nil else {
            throw SDPSyntaxError("a=fingerprint value \(SDPLexer.quoted(t[1])) is not colon-separated hex bytes")
        }
    }
}

/// `a=setup`: which side starts the DTLS handshake (RFC 4145, RFC 8842).
public enum SetupRole: String, Sendable, Hashable, CaseIterable {
    /// This side is the DTLS client.
    case active
    /// This side is the DTLS server.
    case passive
    /// Either; the offerer's choice, the answerer picks `active` or `passive`.
    case actpass
    case holdconn
}

/// The direction of media in a media section or of a header extension (RFC 8866 §6.7).
public enum Direction: String, Sendable, Hashable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The direction in which this side sends when `sends`, and receives when `receives`.
    public init(sends: Bool, receives: Bool) {
        switch (sends, receives) {
        case (true, true): self = .sendrecv
        case (true, false): self = .sendonly
        case (false, true): self = .recvonly
        case (false, false): self = .inactive
        }
    }

    /// Whether the side that wrote this direction sends media.
    public var sends: Bool { self == .sendrecv || self == .sendonly }
    /// Whether the side that wrote this direction receives media.
    public var receives: Bool { self == .sendrecv || self == .recvonly }

    /// The same flow seen from the other side: `sendonly` ↔ `recvonly`.
    public var reversed: Direction { Direction(sends: receives, receives: sends) }

    /// The direction to answer this offered direction with (RFC 3264 §6.1, RFC 8829 §5.3.1): the
    /// answerer sends only what the offerer will receive, receives only what it sends, and
    /// `canSend`/`canReceive` say what the answerer wants. An offered `sendonly` becomes `recvonly`.
    public func answering(canSend: Bool = true, canReceive: Bool = true) -> Direction {
        Direction(sends: receives && canSend, receives: sends && canReceive)
    }
}

/// `a=rtpmap`: what an RTP payload type means, `111 opus/48000/2` (RFC 8866 §6.6).
public struct RTPMap: Sendable, Hashable {
    public var payloadType: UInt8
    /// The encoding name as written: `opus`, `VP8`, `H264`, `rtx`, … (compare case-insensitively).
    public var encodingName: String
    public var clockRate: UInt32
    /// The encoding parameters; for audio, the channel count.
    public var channels: Int?

    public init(payloadType: UInt8, encodingName: String, clockRate: UInt32, channels: Int? = nil) {
        self.payloadType = payloadType
        self.encodingName = encodingName
        self.clockRate = clockRate
        self.channels = channels
    }

    var value: String {
        "\(payloadType) \(encodingName)/\(clockRate)" + (channels.map { "/\($0)" } ?? "")
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let (head, rest) = SDPLexer.splitFirstWord(text)
        guard let payloadType = SDPLexer.payloadType(head) else {
            throw SDPSyntaxError("a=rtpmap payload type \(SDPLexer.quoted(head)) is not a number from 0 to 127")
        }
        let parts = (rest ?? "").split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, !parts[0].isEmpty else {
            throw SDPSyntaxError("a=rtpmap is truncated: expected <payload type> <encoding name>/<clock rate>[/<channels>], found \(SDPLexer.quoted(text))")
        }
        guard parts.count <= 3 else {
            throw SDPSyntaxError("a=rtpmap has too many /-separated fields in \(SDPLexer.quoted(text))")
        }
        guard let clockRate = SDPLexer.number(parts[1], as: UInt32.self) else {
            throw SDPSyntaxError("a=rtpmap clock rate \(SDPLexer.quoted(parts[1])) is not a number")
        }
        guard RTPClock.acceptedRates.contains(clockRate) else {
            throw SDPSyntaxError("a=rtpmap clock rate \(clockRate) is outside what RTP media uses (\(RTPClock.acceptedRates.lowerBound) to \(RTPClock.acceptedRates.upperBound) Hz)")
        }
        var channels: Int?
        if parts.count == 3 {
            guard let count = SDPLexer.number(parts[2], as: UInt16.self) else {
                throw SDPSyntaxError("a=rtpmap channel count \(SDPLexer.quoted(parts[2])) is not a number")
            }
            channels = Int(count)
        }
        self.init(payloadType: payloadType, encodingName: String(parts[0]), clockRate: clockRate, channels: channels)
    }
}

/// `a=fmtp`: format parameters of one payload type, `111 minptime=10;useinbandfec=1` (RFC 8866 §6.15).
public struct FormatParameters: Sendable, Hashable {
    public var payloadType: UInt8
    /// The parameters exactly as written (their syntax belongs to each codec).
    public var parameters: String

    public init(payloadType: UInt8, parameters: String) {
        self.payloadType = payloadType
        self.parameters = parameters
    }

    /// The `;`-separated `name=value` pairs, names as written; an entry without `=` has a nil value.
    public var pairs: [(name: String, value: String?)] {
        parameters.split(separator: ";").compactMap { entry in
            let item = entry.trimmingSpaces
            guard !item.isEmpty else { return nil }
            guard let equals = item.firstIndex(of: "=") else { return (String(item), nil) }
            return (String(item[..<equals]).trimmingSpaces, String(item[item.index(after: equals)...]).trimmingSpaces)
        }
    }

    /// The value of parameter `name`, compared case-insensitively, or nil.
    public func value(of name: String) -> String? {
        let wanted = name.lowercased()
        guard let pair = pairs.first(where: { $0.name.lowercased() == wanted }) else { return nil }
        return pair.value
    }

    var value: String { parameters.isEmpty ? "\(payloadType)" : "\(payloadType) \(parameters)" }

    /// Nil when the format is not a payload type (`a=fmtp:webrtc-datachannel …`); such lines stay verbatim.
    init?(parsing text: Substring) {
        let (head, rest) = SDPLexer.splitFirstWord(text)
        guard let payloadType = SDPLexer.payloadType(head) else { return nil }
        self.init(payloadType: payloadType, parameters: String(rest ?? ""))
    }
}

/// `a=rtcp-fb`: an RTCP feedback mechanism for one payload type or all, `96 nack pli` (RFC 4585 §4.2).
public struct RTCPFeedback: Sendable, Hashable {
    /// The payload type it applies to, or nil for `*` (every payload type of the section).
    public var payloadType: UInt8?
    /// `nack`, `ccm`, `goog-remb`, `transport-cc`, …
    public var type: String
    /// `pli` in `nack pli`, `fir` in `ccm fir`; nil when there is none.
    public var parameter: String?

    public init(payloadType: UInt8?, type: String, parameter: String? = nil) {
        self.payloadType = payloadType
        self.type = type
        self.parameter = parameter
    }

    var value: String {
        "\(payloadType.map(String.init) ?? "*") \(type)" + (parameter.map { " \($0)" } ?? "")
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count >= 2 else {
            throw SDPSyntaxError("a=rtcp-fb must be <payload type or *> <type> [<parameter>], found \(SDPLexer.quoted(text))")
        }
        var payloadType: UInt8?
        if t[0] != "*" {
            guard let pt = SDPLexer.payloadType(t[0]) else {
                throw SDPSyntaxError("a=rtcp-fb payload type \(SDPLexer.quoted(t[0])) is neither * nor a number from 0 to 127")
            }
            payloadType = pt
        }
        let parameter = t.count > 2 ? t[2...].joined(separator: " ") : nil
        self.init(payloadType: payloadType, type: String(t[1]), parameter: parameter)
    }
}

/// `a=extmap`: an RTP header extension and the id it has in this session (RFC 8285 §8).
public struct ExtensionMap: Sendable, Hashable {
    /// 1–14 for one-byte headers, up to 255 with two-byte headers.
    public var id: UInt16
    /// The direction the extension is used in, when it differs from the media section's.
    public var direction: Direction?
    /// The extension's URI, e.g. `urn:ietf:params:rtp-hdrext:sdes:mid`.
    public var uri: String
    /// Extension attributes after the URI, as written.
    public var attributes: String?

    public init(id: UInt16, direction: Direction? = nil, uri: String, attributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.attributes = attributes
    }

    var value: String {
        "\(id)" + (direction.map { "/\($0.rawValue)" } ?? "") + " \(uri)" + (attributes.map { " \($0)" } ?? "")
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count >= 2 else {
            throw SDPSyntaxError("a=extmap must be <id>[/<direction>] <uri> [<attributes>], found \(SDPLexer.quoted(text))")
        }
        let idAndDirection = t[0].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let id = SDPLexer.number(idAndDirection[0], as: UInt16.self) else {
            throw SDPSyntaxError("a=extmap id \(SDPLexer.quoted(idAndDirection[0])) is not a number")
        }
        var direction: Direction?
        if idAndDirection.count == 2 {
            guard let d = Direction(rawValue: String(idAndDirection[1])) else {
                throw SDPSyntaxError("a=extmap direction \(SDPLexer.quoted(idAndDirection[1])) is not sendrecv, sendonly, recvonly or inactive")
            }
            direction = d
        }
        let attributes = t.count > 2 ? t[2...].joined(separator: " ") : nil
        self.init(id: id, direction: direction, uri: String(t[1]), attributes: attributes)
    }
}

/// `a=msid`: the MediaStream and track a media section's source belongs to (RFC 8830).
public struct MSID: Sendable, Hashable {
    /// The stream id; `-` when the track is in no stream.
    public var streamID: String
    /// The track id ("appdata"), when given.
    public var trackID: String?

    public init(streamID: String, trackID: String? = nil) {
        self.streamID = streamID
        self.trackID = trackID
    }

    var value: String { streamID + (trackID.map { " \($0)" } ?? "") }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard (1...2).contains(t.count) else {
            throw SDPSyntaxError("a=msid must be <stream id> [<track id>], found \(SDPLexer.quoted(text))")
        }
        self.init(streamID: String(t[0]), trackID: t.count == 2 ? String(t[1]) : nil)
    }
}

/// `a=ssrc`: one attribute of an RTP source, `1257881913 cname:8FDW4XWZ` (RFC 5576 §4.1).
public struct SSRCAttribute: Sendable, Hashable {
    public var ssrc: UInt32
    /// `cname`, `msid`, `label`, …
    public var attribute: String
    /// What follows `attribute:`; nil when there is no colon.
    public var value: String?

    public init(ssrc: UInt32, attribute: String, value: String? = nil) {
        self.ssrc = ssrc
        self.attribute = attribute
        self.value = value
    }

    var text: String { "\(ssrc) \(attribute)" + (value.map { ":\($0)" } ?? "") }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let (head, rest) = SDPLexer.splitFirstWord(text)
        guard let ssrc = SDPLexer.number(head, as: UInt32.self) else {
            throw SDPSyntaxError("a=ssrc \(SDPLexer.quoted(head)) is not a 32-bit number")
        }
        guard let rest, !rest.isEmpty, rest.first != ":" else {
            throw SDPSyntaxError("a=ssrc:\(ssrc) has no attribute")
        }
        if let colon = rest.firstIndex(of: ":") {
            self.init(ssrc: ssrc, attribute: String(rest[..<colon]), value: String(rest[rest.index(after: colon)...]))
        } else {
            self.init(ssrc: ssrc, attribute: String(rest))
        }
    }
}

/// `a=ssrc-group`: RTP sources that belong together, `FID <media> <rtx>` or `SIM <low> <mid> <high>` (RFC 5576 §4.2).
public struct SSRCGroup: Sendable, Hashable {
    /// `FID` (retransmission), `SIM` (simulcast), `FEC-FR`, …
    public var semantics: String
    public var ssrcs: [UInt32]

    public init(semantics: String, ssrcs: [UInt32]) {
        self.semantics = semantics
        self.ssrcs = ssrcs
    }

    var value: String { ([semantics] + ssrcs.map(String.init)).joined(separator: " ") }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard let semantics = t.first else { throw SDPSyntaxError("a=ssrc-group has no semantics") }
        var ssrcs: [UInt32] = []
        for token in t.dropFirst() {
            guard let ssrc = SDPLexer.number(token, as: UInt32.self) else {
                throw SDPSyntaxError("a=ssrc-group ssrc \(SDPLexer.quoted(token)) is not a 32-bit number")
            }
            ssrcs.append(ssrc)
        }
        self.init(semantics: String(semantics), ssrcs: ssrcs)
    }
}

/// `a=rid`: one RTP stream identifier and its restrictions, `h send max-width=1280` (RFC 8851).
public struct RID: Sendable, Hashable {
    /// Whether a rid describes a stream the writer sends or receives.
    public enum Direction: String, Sendable, Hashable {
        case send, recv
    }

    /// A restriction such as `max-width=1280` or `pt=96,97`; a bare name has a nil value.
    public struct Restriction: Sendable, Hashable {
        public var name: String
        public var value: String?
        public init(name: String, value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    /// The rid itself, as carried in the RTP `rtp-stream-id` header extension.
    public var id: String
    public var direction: Direction
    public var restrictions: [Restriction]

    public init(id: String, direction: Direction, restrictions: [Restriction] = []) {
        self.id = id
        self.direction = direction
        self.restrictions = restrictions
    }

    /// The payload types allowed by a `pt=` restriction; empty when every payload type is.
    public var payloadTypes: [UInt8] {
        guard let list = restrictions.first(where: { $0.name == "pt" })?.value else { return [] }
        return list.split(separator: ",").compactMap { SDPLexer.payloadType($0) }
    }

    var value: String {
        let restrictionText = restrictions.map { $0.name + ($0.value.map { "=\($0)" } ?? "") }.joined(separator: ";")
        return "\(id) \(direction.rawValue)" + (restrictionText.isEmpty ? "" : " \(restrictionText)")
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let (id, afterID) = SDPLexer.splitFirstWord(text)
        let (directionText, restrictionText) = SDPLexer.splitFirstWord(afterID ?? "")
        guard !id.isEmpty, let direction = Direction(rawValue: String(directionText)) else {
            throw SDPSyntaxError("a=rid must be <id> send|recv [<restrictions>], found \(SDPLexer.quoted(text))")
        }
        var restrictions: [Restriction] = []
        for entry in (restrictionText ?? "").split(separator: ";") {
            let item = entry.trimmingSpaces
            guard !item.isEmpty else { continue }
            if let equals = item.firstIndex(of: "=") {
                let name = String(item[..<equals]).trimmingSpaces
                guard !name.isEmpty else { throw SDPSyntaxError("a=rid restriction \(SDPLexer.quoted(item)) has no name") }
                restrictions.append(Restriction(name: name, value: String(item[item.index(after: equals)...]).trimmingSpaces))
            } else {
                restrictions.append(Restriction(name: item))
            }
        }
        self.init(id: String(id), direction: direction, restrictions: restrictions)
    }
}

/// `a=simulcast`: the simulcast streams sent and received, `send h;m;l` (RFC 8853).
public struct Simulcast: Sendable, Hashable {
    /// A rid in a simulcast list, paused (`~h`) or not.
    public struct Stream: Sendable, Hashable {
        public var rid: String
        public var paused: Bool
        public init(rid: String, paused: Bool = false) {
            self.rid = rid
            self.paused = paused
        }
    }

    /// The simulcast streams sent: one entry per stream, listing its alternative rids in preference order.
    public var send: [[Stream]]
    /// The simulcast streams received, shaped like `send`.
    public var receive: [[Stream]]

    public init(send: [[Stream]] = [], receive: [[Stream]] = []) {
        self.send = send
        self.receive = receive
    }

    /// The first alternative of each sent stream: `["h", "m", "l"]` for `send h;m;l`.
    public var sendRIDs: [String] { send.compactMap { $0.first?.rid } }
    /// The first alternative of each received stream.
    public var receiveRIDs: [String] { receive.compactMap { $0.first?.rid } }

    var value: String {
        func list(_ streams: [[Stream]]) -> String {
            streams.map { $0.map { ($0.paused ? "~" : "") + $0.rid }.joined(separator: ",") }.joined(separator: ";")
        }
        var parts: [String] = []
        if !send.isEmpty { parts.append("send " + list(send)) }
        if !receive.isEmpty { parts.append("recv " + list(receive)) }
        return parts.joined(separator: " ")
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard !t.isEmpty, t.count.isMultiple(of: 2) else {
            throw SDPSyntaxError("a=simulcast must be send|recv <list> [send|recv <list>], found \(SDPLexer.quoted(text))")
        }
        var send: [[Stream]]?
        var receive: [[Stream]]?
        for index in stride(from: 0, to: t.count, by: 2) {
            let streams = try Self.streams(t[index + 1])
            switch t[index] {
            case "send" where send == nil: send = streams
            case "recv" where receive == nil: receive = streams
            default: throw SDPSyntaxError("a=simulcast direction \(SDPLexer.quoted(t[index])) is not send or recv, or is repeated")
            }
        }
        self.init(send: send ?? [], receive: receive ?? [])
    }

    private static func streams(_ text: Substring) throws(SDPSyntaxError) -> [[Stream]] {
        var streams: [[Stream]] = []
        for alternatives in text.split(separator: ";", omittingEmptySubsequences: false) {
            var stream: [Stream] = []
            for item in alternatives.split(separator: ",", omittingEmptySubsequences: false) {
                let paused = item.first == "~"
                let rid = paused ? item.dropFirst() : item
                guard !rid.isEmpty, !rid.contains("~") else {
                    throw SDPSyntaxError("a=simulcast list \(SDPLexer.quoted(text)) has an empty or malformed rid")
                }
                stream.append(Stream(rid: String(rid), paused: paused))
            }
            streams.append(stream)
        }
        return streams
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces.
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
