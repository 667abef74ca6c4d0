public import RTC

/// A CIDR block, IPv4 or IPv6: "10.0.0.0/8", "fc00::/7", or one address "192.0.2.7" (= /32 or /128).
///
/// The peer policy's tables and the operator's `allowed_peer_ips` / `denied_peer_ips` are lists of
/// these. Host bits are masked off, so two spellings of one block are equal.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The network address: the given address with its host bits cleared.
    public let address: IPAddress
    /// How many leading bits `contains` compares: 0...32 for IPv4, 0...128 for IPv6.
    public let prefixLength: Int

    /// Parses "address/prefix" or a lone address. Nil when the address is not one, or the prefix is
    /// missing after "/", not plain decimal digits, or wider than the family (32 or 128 bits).
    /// Host bits are accepted and masked off: "1.2.3.4/8" is 1.0.0.0/8.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let ip = IPAddress(String(parts[0])) else { return nil }
        let width = Self.width(of: ip)
        guard let length = parts.count == 2 ? Self.prefixLength(parts[1], atMost: width) : width else { return nil }
        self.init(masking: ip, prefixLength: length)
    }

    /// The block of `prefixLength` leading bits of `ip`; the length must fit the family.
    init(masking ip: IPAddress, prefixLength: Int) {
        precondition((0...Self.width(of: ip)).contains(prefixLength), "prefix /\(prefixLength) does not fit \(ip)")
        switch ip {
        case .v4(let a):
            address = .v4(a & Self.mask32(prefixLength))
        case .v6(let high, let low):
            address = .v6(high & Self.mask64(prefixLength), low & Self.mask64(prefixLength - 64))
        }
        self.prefixLength = prefixLength
    }

    /// Whether `ip` is inside the block. Always false across families: an IPv4-mapped IPv6 address
    /// is not in an IPv4 block (the peer policy unwraps those itself). The comparison is on the
    /// integers, 32 bits or the two 64-bit halves, so prefixes need not end on a byte.
    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4(let network), .v4(let a)):
            return a & Self.mask32(prefixLength) == network
        case (.v6(let networkHigh, let networkLow), .v6(let high, let low)):
            return high & Self.mask64(prefixLength) == networkHigh && low & Self.mask64(prefixLength - 64) == networkLow
        default:
            return false
        }
    }

    /// "10.0.0.0/8", "fc00::/7".
    public var description: String { "\(address)/\(prefixLength)" }

    private static func width(of ip: IPAddress) -> Int { ip.isIPv4 ? 32 : 128 }

    /// The prefix length in `text`: decimal digits only (no sign, no spaces), at most `width`.
    private static func prefixLength(_ text: Substring, atMost width: Int) -> Int? {
        let isDigit = { (c: UInt8) in (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) }
        guard (1...3).contains(text.utf8.count), text.utf8.allSatisfy(isDigit), let n = Int(text), n <= width else { return nil }
        return n
    }

    /// The IPv4 mask with `length` leading ones.
    private static func mask32(_ length: Int) -> UInt32 {
        length <= 0 ? 0 : length >= 32 ? .max : .max << (32 - length)
    }

    /// One 64-bit half of an IPv6 mask with `length` leading ones (negative: none, 64 or more: all):
    /// the high half takes the prefix length, the low half the prefix length minus 64.
    private static func mask64(_ length: Int) -> UInt64 {
        length <= 0 ? 0 : length >= 64 ? .max : .max << (64 - length)
    }
}

/// Which peers a TURN allocation may reach.
///
/// A relay that forwards anywhere lets any client with credentials reach the server's own host
/// (loopback), its private network and the cloud metadata service (RFC 8656's security
/// considerations). A peer address is judged in this order:
/// 1. `alwaysDenied` (unspecified, loopback, multicast, reserved): denied, whatever `allowed` says.
/// 2. The operator's `denied` blocks (`denied_peer_ips`): denied; they win over `allowed`.
/// 3. `deniedByDefault` (private, CGNAT, link-local, unique local, documentation, …): denied
///    unless an `allowed` block (`allowed_peer_ips`) covers the address.
/// 4. Anything else: allowed.
///
/// An IPv6 address that carries an IPv4 one (mapped, compatible, 6to4, NAT64, Teredo; see
/// `embeddedIPv4`) is denied when any IPv4 it carries is, so ::ffff:127.0.0.1 or 2002:7f00:1:: do
/// not reach the loopback. Mapped and compatible addresses are only another spelling of their
/// IPv4, so they are judged as that IPv4 alone; the others are judged as themselves too.
public struct PeerPolicy: Sendable {
    let allowed: [CIDR]
    let denied: [CIDR]

    /// `allowed` re-opens exactly the default-denied addresses it covers; `denied` adds denials.
    public init(allowed: [CIDR] = [], denied: [CIDR] = []) {
        self.allowed = allowed
        self.denied = denied
    }

    /// A peer address's fate; `denied` says why, for the log and the 403 answer.
    public enum Verdict: Equatable, Sendable {
        case allowed
        /// "loopback", "private (RFC 1918)", "denied_peer_ips 203.0.113.0/24", …; for an IPv4
        /// carried in an IPv6 address, followed by which one and how.
        case denied(String)
    }

    /// Whether a TURN client may send to, and receive from, `ip` (CreatePermission, ChannelBind).
    public func check(_ ip: IPAddress) -> Verdict {
        guard let carried = Self.carriedIPv4(ip) else { return judge(ip) }
        if !carried.isOnlyIPv4, case .denied(let why) = judge(ip) { return .denied(why) }
        for v4 in carried.addresses {
            if case .denied(let why) = judge(v4) { return .denied("\(why): \(ip) carries \(v4) (\(carried.name))") }
        }
        return .allowed
    }

    /// IPv4 addresses embedded in an IPv6 one: IPv4-mapped, IPv4-compatible, 6to4, NAT64 (well-known
    /// and local-use prefixes), Teredo (server, then client). Empty for IPv4, for :: and ::1, and for
    /// IPv6 outside those blocks.
    public static func embeddedIPv4(_ ip: IPAddress) -> [IPAddress] {
        carriedIPv4(ip)?.addresses ?? []
    }

    /// Denied even when `allowed` covers them, as (block, reason): nothing legitimate is a TURN
    /// peer there, and re-opening loopback would expose the server's own host.
    public static let alwaysDenied: [(CIDR, String)] = [
        (block("0.0.0.0/8"), "this network (0.0.0.0/8)"),
        (block("::/128"), "unspecified"),
        (block("127.0.0.0/8"), "loopback"),
        (block("::1/128"), "loopback"),
        (block("224.0.0.0/4"), "multicast"),
        (block("ff00::/8"), "multicast"),
        (block("240.0.0.0/4"), "reserved (240.0.0.0/4, with broadcast)"),
    ]

    /// Denied unless `allowed` covers them, as (block, reason): the operator's own networks and
    /// addresses that are not on the public Internet, which a deployment may still need to reach.
    public static let deniedByDefault: [(CIDR, String)] = [
        (block("10.0.0.0/8"), "private (RFC 1918)"),
        (block("172.16.0.0/12"), "private (RFC 1918)"),
        (block("192.168.0.0/16"), "private (RFC 1918)"),
        (block("100.64.0.0/10"), "shared address space (CGNAT, RFC 6598)"),
        (block("169.254.0.0/16"), "link-local (cloud metadata)"),
        (block("fe80::/10"), "link-local"),
        (block("fc00::/7"), "unique local (RFC 4193)"),
        (block("fec0::/10"), "site-local (deprecated)"),
        (block("192.0.0.0/24"), "IETF protocol assignments"),
        (block("192.0.2.0/24"), "documentation"),
        (block("198.51.100.0/24"), "documentation"),
        (block("203.0.113.0/24"), "documentation"),
        (block("2001:db8::/32"), "documentation"),
        (block("198.18.0.0/15"), "benchmarking"),
        (block("192.88.99.0/24"), "6to4 relay anycast"),
        (block("100::/64"), "discard-only"),
    ]

    /// One address on its own, without looking inside it: the numbered steps above.
    private func judge(_ ip: IPAddress) -> Verdict {
        if let why = Self.reason(ip, in: Self.alwaysDenied) { return .denied(why) }
        if let block = denied.first(where: { $0.contains(ip) }) { return .denied("denied_peer_ips \(block)") }
        if let why = Self.reason(ip, in: Self.deniedByDefault), !allowed.contains(where: { $0.contains(ip) }) {
            return .denied(why)
        }
        return .allowed
    }

    private static func reason(_ ip: IPAddress, in table: [(CIDR, String)]) -> String? {
        table.first { $0.0.contains(ip) }?.1
    }

    /// The IPv4 addresses an IPv6 address carries, and how.
    private struct Carried {
        var name: String
        var isOnlyIPv4: Bool
        var addresses: [IPAddress]
    }

    private static func carriedIPv4(_ ip: IPAddress) -> Carried? {
        guard case .v6(let high, let low) = ip, let e = embeddings.first(where: { $0.block.contains(ip) }) else { return nil }
        let v4s = e.ipv4(high, low)
        return v4s.isEmpty ? nil : Carried(name: e.name, isOnlyIPv4: e.isOnlyIPv4, addresses: v4s.map { .v4($0) })
    }

    /// An IPv6 block whose addresses carry IPv4 ones, and where they sit.
    private struct Embedding: Sendable {
        var block: CIDR
        var name: String
        /// The IPv6 address is only a spelling of the IPv4 one, judged as that alone.
        var isOnlyIPv4: Bool
        /// The carried IPv4 addresses, from the address's high and low 64 bits.
        var ipv4: @Sendable (_ high: UInt64, _ low: UInt64) -> [UInt32]
    }

    private static let embeddings: [Embedding] = [
        Embedding(block: block("::ffff:0:0/96"), name: "IPv4-mapped", isOnlyIPv4: true) { _, low in [last32(low)] },
        // ::/96 also holds :: and ::1, which are themselves (unspecified, loopback), not IPv4.
        Embedding(block: block("::/96"), name: "IPv4-compatible", isOnlyIPv4: true) { _, low in low > 1 ? [last32(low)] : [] },
        // 2002:AABB:CCDD::/48: the IPv4 is bits 16..47.
        Embedding(block: block("2002::/16"), name: "6to4", isOnlyIPv4: false) { high, _ in [last32(high >> 16)] },
        Embedding(block: block("64:ff9b::/96"), name: "NAT64", isOnlyIPv4: false) { _, low in [last32(low)] },
        Embedding(block: block("64:ff9b:1::/48"), name: "NAT64 local-use", isOnlyIPv4: false) { _, low in [last32(low)] },
        // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC: server in bits 32..63, client in the last 32 bits inverted.
        Embedding(block: block("2001::/32"), name: "Teredo", isOnlyIPv4: false) { high, low in
            [last32(high), last32(low) ^ 0xFFFF_FFFF]
        },
    ]

    private static func last32(_ bits: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: bits) }

    /// A table entry. A typo is a programming error, so it stops the program at first use rather
    /// than silently dropping a denial; so does a block with host bits ("172.16.0.0/8" would
    /// otherwise quietly become 172.0.0.0/8).
    private static func block(_ text: String) -> CIDR {
        guard let cidr = CIDR(text), IPAddress(String(text.prefix { $0 != "/" })) == cidr.address else {
            preconditionFailure("PeerPolicy table: \(text) is not a network address/prefix")
        }
        return cidr
    }
}
