/// ICE credentials: a username fragment and password (RFC 8445 §5.3), random when generated.
public struct IceCredentials: Sendable, Hashable {
    public var ufrag: String
    public var password: String

    public init(ufrag: String, password: String) {
        self.ufrag = ufrag
        self.password = password
    }

    /// Fresh credentials: 8 and 24 characters of the ice-char alphabet (more than the minimum 4/22).
    public static func random() -> IceCredentials {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        func text(_ n: Int) -> String { String((0..<n).map { _ in alphabet.randomElement()! }) }
        return IceCredentials(ufrag: text(8), password: text(24))
    }
}

/// Where a check came from and where media goes: the peer's address, over UDP or over an ICE-TCP
/// connection (RFC 6544). The same address over the two transports is two paths.
public struct IcePath: Hashable, Sendable, CustomStringConvertible {
    public enum Transport: Sendable, Hashable { case udp, tcp }

    public var address: TransportAddress
    public var transport: Transport

    public init(_ address: TransportAddress, _ transport: Transport) {
        self.address = address
        self.transport = transport
    }

    public static func udp(_ address: TransportAddress) -> IcePath { IcePath(address, .udp) }
    public static func tcp(_ address: TransportAddress) -> IcePath { IcePath(address, .tcp) }

    public var description: String { transport == .udp ? "udp \(address)" : "tcp \(address)" }
}

/// The server side of ICE for one peer, as an ICE-lite agent (RFC 8445 §2.5): it never sends
/// checks, it answers the peer's, and the pair the peer nominates carries the media. It also
/// tracks consent (RFC 7675): a peer whose checks stop for `consentTimeout` is gone.
///
/// A pure state machine: datagrams in, datagrams out, no sockets or clocks of its own (times are
/// passed in as monotonic nanoseconds).
public struct IceLiteAgent: Sendable {
    public enum State: Sendable, Equatable {
        /// Waiting for the first valid check.
        case checking
        /// A pair is selected; media may flow.
        case connected
        /// Consent expired: no valid check within the timeout.
        case failed
    }

    public enum Outcome: Sendable {
        /// Answer with these bytes to the address the request came from.
        case respond([UInt8])
        /// Not for this agent, or invalid: drop it (never answer a stranger with anything useful).
        case ignore(String)
    }

    public let local: IceCredentials
    public private(set) var remote: IceCredentials?
    public private(set) var state: State = .checking
    /// The path media goes to and comes from, once the peer nominated it.
    public private(set) var selected: IcePath?
    /// Paths that passed a check (candidates for selection).
    public private(set) var validPaths: Set<IcePath> = []
    public private(set) var lastConsent: UInt64
    public let consentTimeout: UInt64

    public init(local: IceCredentials = .random(), remote: IceCredentials? = nil, now: UInt64, consentTimeoutSeconds: Double = 30) {
        self.local = local
        self.remote = remote
        lastConsent = now
        consentTimeout = Self.nanoseconds(consentTimeoutSeconds)
    }

    /// Seconds as nanoseconds, clamped to 0...1 day: `UInt64(Double)` traps on a negative, NaN
    /// or huge value, and a timeout is configuration (HostConfig bounds it too).
    static func nanoseconds(_ seconds: Double) -> UInt64 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return UInt64(min(seconds, 86_400) * 1e9)
    }

    /// The peer's credentials from its SDP (or an ICE restart's new ones).
    public mutating func setRemote(_ credentials: IceCredentials) {
        remote = credentials
    }

    /// The local ufrag a binding request is addressed to (`USERNAME = local:remote`), for
    /// demultiplexing requests from unknown addresses on a shared port.
    public static func localUfrag(of request: ParsedSTUNMessage) -> String? {
        guard let username = request.message.attribute(.username)?.stringValue,
            let colon = username.firstIndex(of: ":")
        else { return nil }
        return String(username[..<colon])
    }

    /// Handles a STUN message from `source` (a datagram, or one RFC 4571 frame over ICE-TCP). Valid binding requests are answered (success with
    /// XOR-MAPPED-ADDRESS, integrity and fingerprint) and refresh consent; a nominating one
    /// (USE-CANDIDATE) selects `source`.
    public mutating func handle(_ datagram: [UInt8], from source: IcePath, now: UInt64) -> Outcome {
        guard let parsed = try? STUNMessage.parse(datagram) else { return .ignore("not STUN") }
        return handle(parsed, from: source, now: now)
    }

    /// The same for a message already parsed (the shared port parses once to find the agent).
    public mutating func handle(_ parsed: ParsedSTUNMessage, from source: IcePath, now: UInt64) -> Outcome {
        let message = parsed.message
        guard message.method == .binding else { return .ignore("not a binding") }
        switch message.messageClass {
        case .indication:
            return .ignore("binding indication (keepalive)")
        case .request:
            break
        default:
            return .ignore("a lite agent sends no requests, so expects no responses")
        }
        guard parsed.fingerprintOffset == nil || parsed.fingerprintIsValid else { return .ignore("bad fingerprint") }
        guard let username = message.attribute(.username)?.stringValue else { return .ignore("no USERNAME") }
        let parts = username.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0] == local.ufrag else { return .ignore("USERNAME is not for this agent") }
        if let remote, parts[1] != remote.ufrag { return .ignore("USERNAME names another remote ufrag") }
        guard parsed.verifyIntegrity(key: Array(local.password.utf8)) else { return .ignore("MESSAGE-INTEGRITY does not verify") }
        guard state != .failed else { return .ignore("consent already expired") }

        validPaths.insert(source)
        lastConsent = now
        // Browsers nominate with USE-CANDIDATE; until they do, the first valid pair carries media.
        if message.attribute(.useCandidate) != nil || selected == nil { selected = source }
        state = .connected
        let response = STUNMessage(method: .binding, messageClass: .success, transactionID: message.transactionID, attributes: [
            .xorAddress(.xorMappedAddress, source.address, transactionID: message.transactionID)
        ])
        return .respond(response.encode(integrity: .shortTerm(password: local.password), fingerprint: true))
    }

    /// Call periodically: moves to `failed` once consent has not been refreshed in time.
    /// Returns true when the state changed to failed now.
    public mutating func checkConsent(now: UInt64) -> Bool {
        guard state != .failed, now > lastConsent, now - lastConsent > consentTimeout else { return false }
        state = .failed
        selected = nil
        return true
    }

    /// An ICE restart: new local credentials expected by the peer, back to checking.
    public func restart(local newLocal: IceCredentials, remote newRemote: IceCredentials, now: UInt64) -> IceLiteAgent {
        IceLiteAgent(local: newLocal, remote: newRemote, now: now, consentTimeoutSeconds: Double(consentTimeout) / 1e9)
    }
}
