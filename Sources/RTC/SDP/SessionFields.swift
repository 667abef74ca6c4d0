/// The `o=` line: who created the session description and which version of it this is (RFC 8866 §5.2).
public struct Origin: Sendable, Hashable {
    /// The user name, `-` when there is none (always `-` in JSEP).
    public var username: String
    /// A numeric string that identifies the session; kept as text because it is never computed on.
    public var sessionID: String
    /// Incremented each time the description changes (JSEP §5.2.2).
    public var sessionVersion: UInt64
    /// `IN`.
    public var networkType: String
    /// `IP4` or `IP6`.
    public var addressType: String
    /// The creator's address; JSEP uses a placeholder such as `127.0.0.1` or `0.0.0.0`.
    public var address: String

    public init(username: String = "-", sessionID: String, sessionVersion: UInt64, networkType: String = "IN", addressType: String = "IP4", address: String = "127.0.0.1") {
        self.username = username
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }

    var value: String { "\(username) \(sessionID) \(sessionVersion) \(networkType) \(addressType) \(address)" }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count == 6 else {
            throw SDPSyntaxError(.invalidField, "o= needs 6 fields (<username> <sess-id> <sess-version> <nettype> <addrtype> <address>), found \(t.count)")
        }
        guard let version = SDPLexer.number(t[2], as: UInt64.self) else {
            throw SDPSyntaxError(.invalidField, "o= session version \(SDPLexer.quoted(t[2])) is not a number")
        }
        self.init(username: String(t[0]), sessionID: String(t[1]), sessionVersion: version,
                  networkType: String(t[3]), addressType: String(t[4]), address: String(t[5]))
    }
}

/// A `c=` line: the network address media is sent to (RFC 8866 §5.7).
public struct ConnectionData: Sendable, Hashable {
    /// `IN`.
    public var networkType: String
    /// `IP4` or `IP6`.
    public var addressType: String
    /// The address, with `/ttl/count` kept as written for multicast.
    public var address: String

    public init(networkType: String = "IN", addressType: String = "IP4", address: String) {
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }

    /// The JSEP placeholder `IN IP4 0.0.0.0`.
    public static let placeholder = ConnectionData(address: "0.0.0.0")

    var value: String { "\(networkType) \(addressType) \(address)" }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count == 3 else {
            throw SDPSyntaxError(.invalidField, "c= needs 3 fields (<nettype> <addrtype> <address>), found \(t.count)")
        }
        self.init(networkType: String(t[0]), addressType: String(t[1]), address: String(t[2]))
    }
}

/// A `b=` line: a bandwidth limit such as `AS:2000` (kbit/s) or `TIAS:2000000` (bit/s) (RFC 8866 §5.8).
public struct Bandwidth: Sendable, Hashable {
    /// `AS`, `CT`, `TIAS`, or another modifier.
    public var type: String
    public var value: UInt64

    public init(type: String, value: UInt64) {
        self.type = type
        self.value = value
    }

    var text: String { "\(type):\(value)" }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else {
            throw SDPSyntaxError(.invalidField, "b= must be <type>:<bandwidth>, found \(SDPLexer.quoted(text))")
        }
        guard let value = SDPLexer.number(text[text.index(after: colon)...], as: UInt64.self) else {
            throw SDPSyntaxError(.invalidField, "b= bandwidth in \(SDPLexer.quoted(text)) is not a number")
        }
        self.init(type: String(text[..<colon]), value: value)
    }
}

/// A `t=` line with the `r=` lines that follow it: when the session is active (RFC 8866 §5.9).
public struct Timing: Sendable, Hashable {
    /// NTP seconds; 0 for an unbounded session, which is what WebRTC uses.
    public var start: UInt64
    public var stop: UInt64
    /// The `r=` repeat lines, kept as written.
    public var repeats: [String]

    public init(start: UInt64 = 0, stop: UInt64 = 0, repeats: [String] = []) {
        self.start = start
        self.stop = stop
        self.repeats = repeats
    }

    init(parsing text: Substring) throws(SDPSyntaxError) {
        let t = SDPLexer.tokens(text)
        guard t.count == 2, let start = SDPLexer.number(t[0], as: UInt64.self), let stop = SDPLexer.number(t[1], as: UInt64.self) else {
            throw SDPSyntaxError(.invalidField, "t= must be two numbers <start> <stop>, found \(SDPLexer.quoted(text))")
        }
        self.init(start: start, stop: stop)
    }
}

/// What an `m=` line carries: `audio`, `video`, `application`, or another kind kept as written.
public struct MediaKind: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let audio = MediaKind(rawValue: "audio")
    public static let video = MediaKind(rawValue: "video")
    /// Data channels (`m=application … UDP/DTLS/SCTP webrtc-datachannel`).
    public static let application = MediaKind(rawValue: "application")

    public var description: String { rawValue }
}
