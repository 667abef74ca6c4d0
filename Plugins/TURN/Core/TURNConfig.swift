public import AtriumJSON
public import RTC

/// A configuration value that is wrong, with the key path and what was expected.
public struct TURNConfigError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The TURN plugin's `config` object (docs/api/turn.md lists every key with its default).
public struct TURNConfig: Sendable {
    /// The realm in 401 answers and in long-term keys.
    public var realm = "atrium"
    /// Addresses the listeners bind to ("0.0.0.0" and/or "::").
    public var listen: [IPAddress] = [.v4(0)]
    /// Ports; nil turns that listener off. TLS needs a certificate and key.
    public var udpPort: Int? = 3478
    public var tcpPort: Int? = 3478
    public var tlsPort: Int? = 5349
    public var certificateFile: String?
    public var keyFile: String?
    /// Addresses relayed transport addresses are on: at most one IPv4 and one IPv6. Empty means
    /// the machine's first non-loopback IPv4 address (and global IPv6, if any).
    public var relayAddresses: [IPAddress] = []
    /// The host name or address put in the URLs that `credentials` hands out; default: the first
    /// relay address.
    public var advertisedHost: String?
    /// The relay port range (inclusive).
    public var minPort = 49_152
    public var maxPort = 65_535
    /// Static long-term users: name → password.
    public var users: [String: String] = [:]
    /// TURN REST shared secrets: the first mints credentials, every one is accepted (rotation).
    /// Empty: the plugin makes one at start.
    public var secrets: [String] = []
    /// Offer SHA-256 long-term keys (RFC 8489 PASSWORD-ALGORITHMS, MESSAGE-INTEGRITY-SHA256) next to
    /// MD5. MD5 clients are served either way.
    public var sha256Credentials = true
    /// Set the nonce's username-anonymity bit, so RFC 8489 clients send USERHASH instead of
    /// USERNAME. Only static users can be found from a hash: such clients cannot use REST names.
    public var advertiseUserhash = false
    /// How long minted REST credentials last.
    public var credentialTTLSeconds = 86_400
    /// Peers re-opened from the default-denied ranges (CIDRs), and extra denials.
    public var allowedPeerIPs: [String] = []
    public var deniedPeerIPs: [String] = []
    /// Whether this machine's own addresses (loopback excepted) are allowed peers even inside
    /// default-denied ranges: that is where Atrium's media port is, so a browser that can only use
    /// TURN still reaches the SFU or the EchoTest through it.
    public var allowOwnAddresses = true
    /// Quotas.
    public var maxAllocationsPerUser = 10
    /// Allocations from one client address (IPv4, or IPv6 /64) at once, whatever its credentials.
    public var maxAllocationsPerAddress = 40
    /// `credentials` only for sessions that are in a meeting (a handle joined to a room of the SFU
    /// or the Chat plugin), and at most so many per client address per minute.
    public var credentialsNeedMeeting = true
    public var credentialsPerAddressPerMinute = 10
    public var maxAllocations = 1_000
    public var maxPermissionsPerAllocation = 64
    public var maxChannelsPerAllocation = 64
    /// RFC 6062 TCP allocations (REQUESTED-TRANSPORT 6 on a TCP or TLS connection), and how many
    /// TCP connections to peers one may have at a time.
    public var tcpRelays = true
    public var maxTCPConnectionsPerAllocation = 16
    /// Relayed bytes per second per allocation, each direction (0: no cap).
    public var bandwidthBytesPerSecond = 1_000_000
    /// Allocation lifetimes (RFC 8656 §3.2 defaults).
    public var defaultLifetimeSeconds = 600
    public var maxLifetimeSeconds = 3_600
    /// How long a nonce stays fresh before 438 Stale Nonce.
    public var nonceSeconds = 600

    public init() {}

    static let keys: Set<String> = [
        "realm", "listen", "udp_port", "tcp_port", "tls_port", "certificate_file", "key_file", "relay_addresses",
        "advertised_host", "min_port", "max_port", "users", "secrets", "sha256_credentials", "advertise_userhash", "credential_ttl_seconds", "allowed_peer_ips",
        "denied_peer_ips", "allow_own_addresses", "max_allocations_per_user", "max_allocations", "max_permissions_per_allocation",
        "max_channels_per_allocation", "tcp_relays", "max_tcp_connections_per_allocation", "bandwidth_bytes_per_second", "default_lifetime_seconds",
        "max_lifetime_seconds", "nonce_seconds", "max_allocations_per_address", "credentials_need_meeting",
        "credentials_per_address_per_minute",
    ]

    public init(_ o: JSONObject) throws(TURNConfigError) {
        for key in o.keys where !Self.keys.contains(key) {
            throw TURNConfigError("config.\(key): unknown key; expected one of: \(Self.keys.sorted().joined(separator: ", "))")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws(TURNConfigError) -> Int? {
            guard let v = o[key], !v.isNull else { return nil }
            guard case .int(let i) = v, range.contains(Int(i)) else {
                throw TURNConfigError("config.\(key): expected an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int(i)
        }
        func port(_ key: String, _ current: Int?) throws(TURNConfigError) -> Int? {
            guard let v = o[key] else { return current }
            if v.isNull { return nil }
            return try int(key, 0...65_535)
        }
        func string(_ key: String) throws(TURNConfigError) -> String? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let s = v.stringValue, !s.isEmpty else { throw TURNConfigError("config.\(key): expected a non-empty string") }
            return s
        }
        func strings(_ key: String) throws(TURNConfigError) -> [String]? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let items = v.arrayValue else { throw TURNConfigError("config.\(key): expected an array of strings") }
            var out: [String] = []
            for (i, item) in items.enumerated() {
                guard let s = item.stringValue, !s.isEmpty else { throw TURNConfigError("config.\(key)[\(i)]: expected a non-empty string") }
                out.append(s)
            }
            return out
        }
        func addresses(_ key: String) throws(TURNConfigError) -> [IPAddress]? {
            guard let list = try strings(key) else { return nil }
            var out: [IPAddress] = []
            for (i, text) in list.enumerated() {
                guard let ip = IPAddress(text) else { throw TURNConfigError("config.\(key)[\(i)]: \"\(text)\" is not an IP address") }
                out.append(ip)
            }
            return out
        }

        realm = try string("realm") ?? realm
        listen = try addresses("listen") ?? listen
        if listen.isEmpty { throw TURNConfigError("config.listen: expected at least one address") }
        udpPort = try port("udp_port", udpPort)
        tcpPort = try port("tcp_port", tcpPort)
        tlsPort = try port("tls_port", tlsPort)
        certificateFile = try string("certificate_file")
        keyFile = try string("key_file")
        if (certificateFile == nil) != (keyFile == nil) {
            throw TURNConfigError("config: certificate_file and key_file go together (TLS on tls_port)")
        }
        relayAddresses = try addresses("relay_addresses") ?? relayAddresses
        if relayAddresses.filter(\.isIPv4).count > 1 || relayAddresses.filter({ !$0.isIPv4 }).count > 1 {
            throw TURNConfigError("config.relay_addresses: at most one IPv4 and one IPv6 address")
        }
        advertisedHost = try string("advertised_host")
        minPort = try int("min_port", 1024...65_535) ?? minPort
        maxPort = try int("max_port", 1024...65_535) ?? maxPort
        if maxPort - minPort < 1 { throw TURNConfigError("config.max_port: must be above min_port (\(minPort))") }
        if let v = o["users"], !v.isNull {
            guard let object = v.objectValue else { throw TURNConfigError("config.users: expected an object of user name to password") }
            for (name, password) in object {
                guard !name.isEmpty, !name.contains(":") else {
                    throw TURNConfigError("config.users: \"\(name)\" is not a user name (non-empty, no colon)")
                }
                guard let p = password.stringValue, !p.isEmpty else { throw TURNConfigError("config.users.\(name): expected a non-empty password") }
                users[name] = p
            }
        }
        secrets = try strings("secrets") ?? secrets
        credentialTTLSeconds = try int("credential_ttl_seconds", 60...(30 * 86_400)) ?? credentialTTLSeconds
        allowedPeerIPs = try strings("allowed_peer_ips") ?? allowedPeerIPs
        deniedPeerIPs = try strings("denied_peer_ips") ?? deniedPeerIPs
        func bool(_ key: String) throws(TURNConfigError) -> Bool? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let b = v.boolValue else { throw TURNConfigError("config.\(key): expected true or false") }
            return b
        }
        allowOwnAddresses = try bool("allow_own_addresses") ?? allowOwnAddresses
        sha256Credentials = try bool("sha256_credentials") ?? sha256Credentials
        advertiseUserhash = try bool("advertise_userhash") ?? advertiseUserhash
        if advertiseUserhash, users.isEmpty {
            throw TURNConfigError("config.advertise_userhash: needs static users (a USERHASH is looked up among users; REST names cannot be)")
        }
        maxAllocationsPerUser = try int("max_allocations_per_user", 1...100_000) ?? maxAllocationsPerUser
        maxAllocations = try int("max_allocations", 1...1_000_000) ?? maxAllocations
        maxAllocationsPerAddress = try int("max_allocations_per_address", 1...1_000_000) ?? maxAllocationsPerAddress
        credentialsNeedMeeting = try bool("credentials_need_meeting") ?? credentialsNeedMeeting
        credentialsPerAddressPerMinute = try int("credentials_per_address_per_minute", 1...100_000) ?? credentialsPerAddressPerMinute
        maxPermissionsPerAllocation = try int("max_permissions_per_allocation", 1...10_000) ?? maxPermissionsPerAllocation
        maxChannelsPerAllocation = try int("max_channels_per_allocation", 1...4_096) ?? maxChannelsPerAllocation
        tcpRelays = try bool("tcp_relays") ?? tcpRelays
        maxTCPConnectionsPerAllocation = try int("max_tcp_connections_per_allocation", 1...1_000) ?? maxTCPConnectionsPerAllocation
        bandwidthBytesPerSecond = try int("bandwidth_bytes_per_second", 0...1_000_000_000) ?? bandwidthBytesPerSecond
        defaultLifetimeSeconds = try int("default_lifetime_seconds", 60...86_400) ?? defaultLifetimeSeconds
        maxLifetimeSeconds = try int("max_lifetime_seconds", 60...86_400) ?? maxLifetimeSeconds
        if maxLifetimeSeconds < defaultLifetimeSeconds {
            throw TURNConfigError("config.max_lifetime_seconds: must be at least default_lifetime_seconds (\(defaultLifetimeSeconds))")
        }
        nonceSeconds = try int("nonce_seconds", 30...86_400) ?? nonceSeconds
    }
}
