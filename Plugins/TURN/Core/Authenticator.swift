import COpenSSL
public import RTC

/// A password algorithm of RFC 8489 §18.5: how a long-term password becomes a key.
public enum PasswordAlgorithm: UInt16, Sendable, CaseIterable {
    /// MD5(username ":" realm ":" password), 16 bytes: every RFC 5389 client, browsers among them.
    case md5 = 0x0001
    /// SHA-256(username ":" OpaqueString(realm) ":" OpaqueString(password)), 32 bytes.
    case sha256 = 0x0002

    /// A PASSWORD-ALGORITHM value: the algorithm, then its parameters' length, which is 0 for both.
    init?(attribute value: [UInt8]) {
        guard value.count == 4, value[2] == 0, value[3] == 0 else { return nil }
        self.init(rawValue: UInt16(value[0]) << 8 | UInt16(value[1]))
    }

    var attributeValue: [UInt8] { [UInt8(rawValue >> 8), UInt8(rawValue & 0xFF), 0, 0] }
}

/// Who signed a request, and how the answers to it are signed (RFC 8489 §9.2.4): with
/// MESSAGE-INTEGRITY-SHA256 when the client negotiated a password algorithm, else with
/// MESSAGE-INTEGRITY, and always with the key the request verified under.
public struct Credential: Sendable {
    public let username: String
    public let integrity: STUNIntegrity
}

/// Long-term credentials for TURN (RFC 8489 §9.2): static users, TURN REST credentials from a list
/// of shared secrets, stateless nonces, MD5 and SHA-256 keys, USERHASH. Immutable after start, so
/// any thread may mint.
public struct Authenticator: Sendable {
    public let realm: String
    let users: [String: String]
    let secrets: [String]
    /// A random key that signs nonces: a nonce is the time it was made plus an HMAC over that time,
    /// its security-feature cookie and the client's IP, so checking one needs no memory of having
    /// issued it.
    let nonceKey: [UInt8]
    let nonceLifetime: UInt64
    /// The algorithms offered in PASSWORD-ALGORITHMS, in order of preference; empty when SHA-256
    /// is turned off (then no PASSWORD-ALGORITHMS is sent and every key is MD5).
    let offered: [PasswordAlgorithm]
    /// Whether nonces ask RFC 8489 clients to send USERHASH instead of USERNAME.
    let advertisesUserhash: Bool
    /// USERHASH → static user name. REST names cannot be found from a hash, so they have none.
    let usersByHash: [[UInt8]: String]
    /// "obMatJos2" and the base64 of the 24 security-feature bits: the first 13 characters of
    /// every nonce (RFC 8489 §9.2).
    let nonceCookie: String

    /// `sha256`: offer SHA-256 keys next to MD5 (PASSWORD-ALGORITHMS). `userhash`: set the
    /// username-anonymity bit, after which RFC 8489 clients must send USERHASH, which only static
    /// users can (USERHASH is accepted for them either way).
    public init(realm: String, users: [String: String], secrets: [String], nonceSeconds: Int, sha256: Bool = true, userhash: Bool = false) {
        self.realm = realm
        self.users = users
        self.secrets = secrets
        nonceKey = randomBytes(32)
        nonceLifetime = UInt64(nonceSeconds)
        offered = sha256 ? [.sha256, .md5] : []
        advertisesUserhash = userhash
        var byHash: [[UInt8]: String] = [:]
        for name in users.keys {
            if let hash = Self.userhash(username: name, realm: realm) { byHash[hash] = name }
        }
        usersByHash = byHash
        var features = SecurityFeatures()
        if sha256 { features.insert(.passwordAlgorithms) }
        if userhash { features.insert(.usernameAnonymity) }
        nonceCookie = SecurityFeatures.cookie + features.base64
    }

    // MARK: - Security features and nonces

    /// The STUN Security Features of RFC 8489 §18.1, 24 bits carried in the nonce cookie.
    ///
    /// Rationale: bit 0 is the least significant of the 24 (verified erratum 6290; the RFC's
    /// prose said most significant). Appendix B's nonce "obMatJos2AAAC…", sent with USERHASH,
    /// is bit 1, username anonymity, read this way.
    public struct SecurityFeatures: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue & 0xFF_FFFF }

        public static let passwordAlgorithms = SecurityFeatures(rawValue: 1 << 0)
        public static let usernameAnonymity = SecurityFeatures(rawValue: 1 << 1)

        static let cookie = "obMatJos2"

        var base64: String { TURNCore.base64([UInt8(rawValue >> 16 & 0xFF), UInt8(rawValue >> 8 & 0xFF), UInt8(rawValue & 0xFF)]) }

        /// The features a nonce declares; empty when it does not start with the cookie.
        public init(nonce: String) {
            let text = Array(nonce.utf8)
            let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
            guard text.count >= 13, text[0..<9].elementsEqual(Self.cookie.utf8) else {
                self = []
                return
            }
            // Four base64 digits, six bits each, are the 24 bits; no padding is needed.
            var bits: UInt32 = 0
            for c in text[9..<13] {
                guard let v = digits.firstIndex(of: c) else {
                    self = []
                    return
                }
                bits = bits << 6 | UInt32(v)
            }
            self.init(rawValue: bits)
        }
    }

    /// A nonce for `client` made at `now` (Unix seconds): the 13-character cookie, 16 hex digits
    /// of time, 24 of HMAC.
    public func nonce(for client: IPAddress, now: UInt64) -> String {
        let head = nonceCookie + hex(bigEndianBytes(now))
        return head + hex(Array(nonceMAC(head, client: client).prefix(12)))
    }

    public enum NonceCheck: Sendable, Equatable { case fresh, stale }

    /// Whether `nonce` was made by this server for this client and is still fresh. Anything else,
    /// forged, old, or with other security-feature bits than this server sets, is `stale`: the
    /// client gets 438 and a new nonce.
    public func check(nonce: String, client: IPAddress, now: UInt64) -> NonceCheck {
        let text = Array(nonce.utf8)
        guard text.count == 53 else { return .stale }
        let head = String(decoding: text[0..<29], as: UTF8.self)
        guard head.hasPrefix(nonceCookie), let issued = UInt64(String(decoding: text[13..<29], as: UTF8.self), radix: 16) else { return .stale }
        let expected = Array(hex(Array(nonceMAC(head, client: client).prefix(12))).utf8)
        guard constantTimeEqual(Array(text[29...]), expected) else { return .stale }
        guard issued <= now + 5, now - min(now, issued) < nonceLifetime else { return .stale }
        return .fresh
    }

    private func nonceMAC(_ head: String, client: IPAddress) -> [UInt8] {
        STUNCrypto.hmac(sha256: true, key: nonceKey, data: Array(head.utf8) + client.bytes)
    }

    /// What a 401 or 438 carries: REALM, a fresh NONCE and, when SHA-256 is offered,
    /// PASSWORD-ALGORITHMS (RFC 8489 §9.2.4 wants it in both whenever the nonce's bit is set).
    public func challenge(for client: IPAddress, now: UInt64) -> [STUNAttribute] {
        var out: [STUNAttribute] = [.string(.realm, realm), .string(.nonce, nonce(for: client, now: now))]
        if !offered.isEmpty { out.append(STUNAttribute(type: .passwordAlgorithms, value: offeredValue)) }
        return out
    }

    /// The PASSWORD-ALGORITHMS value this server sends, which a client must echo byte for byte.
    var offeredValue: [UInt8] { offered.flatMap(\.attributeValue) }

    // MARK: - Requests

    /// The outcome of checking a request's long-term credential, in the order of RFC 8489 §9.2.4.
    public enum Verdict: Sendable {
        case verified(Credential)
        /// No MESSAGE-INTEGRITY of either kind: 401 and a challenge (a client's first request).
        case unauthenticated
        /// Signed, but without USERNAME/USERHASH, REALM or NONCE, or with password-algorithm
        /// attributes that do not match what this server offered (a downgrade): 400.
        case badRequest
        /// Unknown user, wrong realm, expired REST name or a key that does not verify: 401 and a
        /// challenge, counted as an authentication failure.
        case refused
        /// Right credentials, but a nonce this server did not make for this client, or made too
        /// long ago: 438 and a challenge.
        case staleNonce
    }

    /// Checks the long-term credential of a request. Nothing is remembered either way.
    public func verify(_ parsed: ParsedSTUNMessage, client: IPAddress, now: UInt64) -> Verdict {
        guard parsed.integrityOffset != nil || parsed.integritySHA256Offset != nil else { return .unauthenticated }
        let message = parsed.message
        let userhash = message.attribute(.userhash)?.value
        let username = message.attribute(.username)?.stringValue
        guard userhash != nil || username != nil, let realm = message.attribute(.realm)?.stringValue,
            let nonce = message.attribute(.nonce)?.stringValue
        else { return .badRequest }

        // Which key: MD5 unless the client negotiated one of the algorithms offered.
        let chosen = message.attribute(.passwordAlgorithm)
        let echoed = message.attribute(.passwordAlgorithms)
        var algorithm = PasswordAlgorithm.md5
        var negotiated = false
        if SecurityFeatures(nonce: nonce).contains(.passwordAlgorithms) {
            if chosen != nil || echoed != nil {
                guard let chosen, let echoed, echoed.value == offeredValue, !offered.isEmpty,
                    let picked = PasswordAlgorithm(attribute: chosen.value), offered.contains(picked)
                else { return .badRequest }
                algorithm = picked
                negotiated = true
            }
        } else if let chosen {
            // A nonce without the bit (not one of ours while SHA-256 is on, so it ends stale
            // below): the attribute alone says how the key was made.
            guard let picked = PasswordAlgorithm(attribute: chosen.value), picked == .md5 || !offered.isEmpty else { return .badRequest }
            algorithm = picked
            negotiated = true
        }

        let name: String
        if let userhash {
            guard let found = usersByHash[userhash] else { return .refused }
            name = found
        } else if let username {
            name = username
        } else {
            return .refused
        }
        guard realm == self.realm else { return .refused }
        let sha256MAC = parsed.integritySHA256Offset != nil
        guard let key = keys(for: name, algorithm: algorithm, now: now).first(where: {
            sha256MAC ? parsed.verifySHA256Integrity(key: $0) : parsed.verifyIntegrity(key: $0)
        }) else { return .refused }
        guard check(nonce: nonce, client: client, now: now) == .fresh else { return .staleNonce }
        return .verified(Credential(username: name, integrity: negotiated ? .sha256(key: key) : .sha1(key: key)))
    }

    // MARK: - Keys

    /// The long-term keys `username` may sign with under `algorithm`, or none when the user is
    /// unknown or a REST credential has expired. A REST name may be valid under several secrets
    /// (rotation): each gives one key, and the message integrity picks.
    ///
    /// MD5 keys hash the strings as they are, as browsers do; SHA-256 keys apply OpaqueString to
    /// the realm and the password, as RFC 8489 §9.2.2 says (a no-op for printable ASCII).
    public func keys(for username: String, algorithm: PasswordAlgorithm = .md5, now: UInt64) -> [[UInt8]] {
        var passwords: [String] = []
        if let password = users[username] { passwords.append(password) }
        if !secrets.isEmpty, let expiry = Self.restExpiry(username), expiry > now {
            passwords += secrets.map { Self.restPassword(secret: $0, username: username) }
        }
        return passwords.compactMap { Self.key(username: username, realm: realm, password: $0, algorithm: algorithm) }
    }

    /// One long-term key; nil for SHA-256 when the realm or password has no OpaqueString form.
    public static func key(username: String, realm: String, password: String, algorithm: PasswordAlgorithm) -> [UInt8]? {
        switch algorithm {
        case .md5:
            return STUNIntegrity.longTerm(username: username, realm: realm, password: password)
        case .sha256:
            guard let realm = OpaqueString.prepare(realm), let password = OpaqueString.prepare(password) else { return nil }
            return sha256(Array("\(username):\(realm):\(password)".utf8))
        }
    }

    /// USERHASH (RFC 8489 §14.4): SHA-256(OpaqueString(username) ":" OpaqueString(realm)).
    public static func userhash(username: String, realm: String) -> [UInt8]? {
        guard let username = OpaqueString.prepare(username), let realm = OpaqueString.prepare(realm) else { return nil }
        return sha256(Array("\(username):\(realm)".utf8))
    }

    /// The expiry of a TURN REST user name, `<unix expiry>[:<user>]`; nil if it is not one.
    static func restExpiry(_ username: String) -> UInt64? {
        let head = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard !head.isEmpty, head.count <= 12, head.allSatisfy(\.isASCII), head.allSatisfy(\.isNumber) else { return nil }
        return UInt64(head)
    }

    /// Who a user name counts as for quotas: a REST name's user part, else the name.
    public static func quotaIdentity(_ username: String) -> String {
        guard restExpiry(username) != nil else { return username }
        let parts = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[1]) : username
    }

    /// The TURN REST password: base64(HMAC-SHA1(secret, username)).
    public static func restPassword(secret: String, username: String) -> String {
        base64(STUNCrypto.hmac(sha256: false, key: Array(secret.utf8), data: Array(username.utf8)))
    }

    /// Credentials for `user` valid for `ttl` seconds from `now`, under the first secret.
    public func mint(user: String, ttlSeconds: Int, now: UInt64) -> (username: String, password: String)? {
        guard let secret = secrets.first else { return nil }
        let username = "\(now + UInt64(ttlSeconds)):\(user)"
        return (username, Self.restPassword(secret: secret, username: username))
    }
}

extension ParsedSTUNMessage {
    /// Whether MESSAGE-INTEGRITY-SHA256 is present and verifies with `key`: an HMAC-SHA256 over
    /// the message up to the attribute, with the header length counting it (RFC 8489 §14.6),
    /// possibly truncated to 16–32 bytes. Constant-time comparison.
    func verifySHA256Integrity(key: [UInt8]) -> Bool {
        guard let offset = integritySHA256Offset else { return false }
        let length = Int(raw[offset + 2]) << 8 | Int(raw[offset + 3])
        guard offset + 4 + length <= raw.count, length >= 16 else { return false }
        var covered = Array(raw[0..<offset])
        let stated = offset - STUNMessage.headerLength + 4 + length
        covered[2] = UInt8(stated >> 8)
        covered[3] = UInt8(stated & 0xFF)
        let mac = STUNCrypto.hmac(sha256: true, key: key, data: covered)
        return constantTimeEqual(Array(raw[(offset + 4)..<(offset + 4 + length)]), Array(mac.prefix(length)))
    }
}

// MARK: - Helpers

/// Bytes from OpenSSL's CSPRNG (nonce keys, reservation tokens, secrets).
public func randomBytes(_ n: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: n)
    if RAND_bytes(&out, Int32(n)) != 1 {
        var g = SystemRandomNumberGenerator()
        for i in 0..<n { out[i] = UInt8.random(in: 0...255, using: &g) }
    }
    return out
}

/// SHA-256 of `data` (SHA-256 keys, USERHASH). The corresponding C function is `EVP_Digest`.
func sha256(_ data: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    _ = data.withUnsafeBufferPointer { d in EVP_Digest(d.baseAddress, d.count, &out, &length, EVP_sha256(), nil) }
    return out
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in 0..<a.count { diff |= a[i] ^ b[i] }
    return diff == 0
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

func bigEndianBytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * $0)) } }

/// Standard base64 with padding (RFC 4648 §4), as TURN REST passwords are written.
public func base64(_ bytes: [UInt8]) -> String {
    let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        let b0 = UInt32(bytes[i]), b1 = n > 1 ? UInt32(bytes[i + 1]) : 0, b2 = n > 2 ? UInt32(bytes[i + 2]) : 0
        let v = b0 << 16 | b1 << 8 | b2
        out.append(table[Int(v >> 18 & 63)])
        out.append(table[Int(v >> 12 & 63)])
        out.append(n > 1 ? table[Int(v >> 6 & 63)] : UInt8(ascii: "="))
        out.append(n > 2 ? table[Int(v & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}

