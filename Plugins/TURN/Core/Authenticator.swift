import COpenSSL
public import RTC

/// Long-term credentials for TURN (RFC 8489 §9.2): static users, TURN REST credentials from a list
/// of shared secrets, and stateless nonces. Immutable after start, so any thread may mint.
public struct Authenticator: Sendable {
    public let realm: String
    let users: [String: String]
    let secrets: [String]
    /// A random key that signs nonces: a nonce is the time it was made plus an HMAC over that time
    /// and the client's IP, so checking one needs no memory of having issued it.
    let nonceKey: [UInt8]
    let nonceLifetime: UInt64

    public init(realm: String, users: [String: String], secrets: [String], nonceSeconds: Int) {
        self.realm = realm
        self.users = users
        self.secrets = secrets
        nonceKey = randomBytes(32)
        nonceLifetime = UInt64(nonceSeconds)
    }

    // MARK: - Nonces

    /// A nonce for `client` made at `now` (Unix seconds): 16 hex digits of time, 24 of HMAC.
    public func nonce(for client: IPAddress, now: UInt64) -> String {
        let time = hex(bigEndianBytes(now))
        return time + hex(Array(nonceMAC(time: time, client: client).prefix(12)))
    }

    public enum NonceCheck: Sendable, Equatable { case fresh, stale }

    /// Whether `nonce` was made by this server for this client and is still fresh. Anything else,
    /// forged or old, is `stale`: the client gets 438 and a new nonce.
    public func check(nonce: String, client: IPAddress, now: UInt64) -> NonceCheck {
        let text = Array(nonce.utf8)
        guard text.count == 40, let issued = UInt64(String(decoding: text[0..<16], as: UTF8.self), radix: 16) else { return .stale }
        let expected = Array(hex(Array(nonceMAC(time: String(decoding: text[0..<16], as: UTF8.self), client: client).prefix(12))).utf8)
        guard constantTimeEqual(Array(text[16...]), expected) else { return .stale }
        guard issued <= now + 5, now - min(now, issued) < nonceLifetime else { return .stale }
        return .fresh
    }

    private func nonceMAC(time: String, client: IPAddress) -> [UInt8] {
        STUNCrypto.hmac(sha256: true, key: nonceKey, data: Array(time.utf8) + client.bytes)
    }

    // MARK: - Keys

    /// The long-term keys `username` may sign with (MD5 of user:realm:password), or none when
    /// the user is unknown or a REST credential has expired. A REST name may be valid under several
    /// secrets (rotation): each gives one key, and the message integrity picks.
    public func keys(for username: String, now: UInt64) -> [[UInt8]] {
        var out: [[UInt8]] = []
        if let password = users[username] {
            out.append(STUNIntegrity.longTerm(username: username, realm: realm, password: password))
        }
        if !secrets.isEmpty, let expiry = Self.restExpiry(username), expiry > now {
            for secret in secrets {
                out.append(STUNIntegrity.longTerm(username: username, realm: realm, password: Self.restPassword(secret: secret, username: username)))
            }
        }
        return out
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
