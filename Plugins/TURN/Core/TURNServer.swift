public import RTC
import Synchronization

/// What the TURN logic asks of the sockets around it. The plugin's event loop implements it; the
/// logic never touches a socket, a clock or a thread of its own.
public protocol TURNIO: AnyObject {
    /// Sends bytes to a client on the 5-tuple it came from.
    func sendToClient(_ bytes: [UInt8], _ client: ClientKey)
    /// Opens a relay socket of `family` in the port range: an even port if `evenPort`, and then, if
    /// `reserveNext`, also the next (odd) port, held for a later Allocate with a RESERVATION-TOKEN.
    func openRelay(family: AddressFamily, evenPort: Bool, reserveNext: Bool) -> (relay: RelayID, address: TransportAddress, reserved: (RelayID, TransportAddress)?)?
    func closeRelay(_ id: RelayID)
    /// Sends a datagram from a relay socket to a peer; false if the kernel refused it.
    func sendToPeer(_ bytes: UnsafeRawBufferPointer, from relay: RelayID, to peer: TransportAddress) -> Bool
    /// Whether `address` is one of the relay sockets open now.
    func isRelay(_ address: TransportAddress) -> Bool
    /// Families a relay can be opened in.
    var relayFamilies: Set<AddressFamily> { get }

    // RFC 6062 TCP allocations. The I/O side reports back through `peerConnectionAccepted`,
    // `peerConnectFinished` and `peerConnectionClosed`.

    /// Opens a listening TCP socket on a relay address of `family`, in the port range: a TCP
    /// allocation's relayed address, where peers connect and from where Connect connects.
    func openTCPRelay(family: AddressFamily) -> (relay: RelayID, address: TransportAddress)?
    /// Starts a TCP connection from `relay`'s address to `peer`; nil if it could not even start.
    func connectPeer(from relay: RelayID, to peer: TransportAddress) -> PeerSocketID?
    /// Closes a peer connection, and the client data connection bound to it if any.
    func closePeerConnection(_ socket: PeerSocketID)
    /// Makes the stream connection `client` a client data connection: from now on bytes go as
    /// they are between it and the peer connection, both ways, starting with whatever the peer
    /// sent while it waited (RFC 6062 §5.4). Bytes already queued for `client` go first.
    func bindDataConnection(_ socket: PeerSocketID, to client: ClientKey)
}

/// Live counters for /metrics, written by the TURN thread and read by any.
public final class TURNMetrics: Sendable {
    public let allocations = Atomic<Int>(0)
    public let permissions = Atomic<Int>(0)
    public let channels = Atomic<Int>(0)
    public let relayedBytes = Atomic<Int>(0)
    public let relayedPackets = Atomic<Int>(0)
    public let authFailures = Atomic<Int>(0)
    public let deniedPeers = Atomic<Int>(0)
    public let dropped = Atomic<Int>(0)
    public let overBandwidth = Atomic<Int>(0)
    public let quotaRefusals = Atomic<Int>(0)
    public let tcpConnections = Atomic<Int>(0)

    public init() {}

    public var prometheus: String {
        let rows: [(String, String, String, Int)] = [
            ("atrium_turn_allocations", "gauge", "TURN allocations open", allocations.load(ordering: .relaxed)),
            ("atrium_turn_permissions", "gauge", "TURN permissions installed", permissions.load(ordering: .relaxed)),
            ("atrium_turn_channels", "gauge", "TURN channels bound", channels.load(ordering: .relaxed)),
            ("atrium_turn_tcp_connections", "gauge", "RFC 6062 TCP connections to peers (connecting, waiting for ConnectionBind or relaying)", tcpConnections.load(ordering: .relaxed)),
            ("atrium_turn_relayed_bytes_total", "counter", "Bytes relayed between clients and peers (payload)", relayedBytes.load(ordering: .relaxed)),
            ("atrium_turn_relayed_packets_total", "counter", "Packets relayed between clients and peers", relayedPackets.load(ordering: .relaxed)),
            ("atrium_turn_auth_failures_total", "counter", "Requests refused for their credentials (wrong user, key or expired)", authFailures.load(ordering: .relaxed)),
            ("atrium_turn_denied_peers_total", "counter", "Peer addresses refused by the peer policy (403)", deniedPeers.load(ordering: .relaxed)),
            ("atrium_turn_dropped_total", "counter", "Packets dropped: malformed, no allocation, no permission", dropped.load(ordering: .relaxed)),
            ("atrium_turn_over_bandwidth_total", "counter", "Packets dropped by an allocation's bandwidth cap", overBandwidth.load(ordering: .relaxed)),
            ("atrium_turn_quota_refusals_total", "counter", "Allocations, permissions, channels or TCP connections refused by a quota", quotaRefusals.load(ordering: .relaxed)),
        ]
        return rows.map { "# HELP \($0.0) \($0.2)\n# TYPE \($0.0) \($0.1)\n\($0.0) \($0.3)\n" }.joined()
    }
}

/// RFC 8656 TURN (with RFC 8489 STUN) for every client of the plugin: authentication, allocations,
/// permissions, channels, Send/Data, lifetimes and quotas, and RFC 6062 TCP allocations
/// (TCPAllocations.swift). Driven by one thread: packets in (`receive`, `receiveFromPeer`), TCP
/// connection events in, time in (`tick`), and out through `TURNIO`.
public final class TURNServer {
    public let config: TURNConfig
    public let auth: Authenticator
    public let policy: PeerPolicy
    public let metrics: TURNMetrics
    unowned let io: any TURNIO

    var allocations: [ClientKey: Allocation] = [:]
    var allocationsByRelay: [RelayID: Allocation] = [:]
    /// RFC 6062 peer connections by CONNECTION-ID, and by the I/O side's number.
    var peerConnections: [UInt32: PeerConnection] = [:]
    var peerConnectionsBySocket: [PeerSocketID: PeerConnection] = [:]
    private var allocationsPerIdentity: [String: Int] = [:]
    /// Allocations by client address (IPv4, or IPv6 /64): credentials are bearer tokens that any
    /// number of identities can be minted as, so the address is what bounds one client.
    private var allocationsPerAddress: [String: Int] = [:]
    /// RESERVATION-TOKEN → the reserved relay and when it lapses (RFC 8656 §7.2: about 30 s).
    private var reservations: [[UInt8]: (relay: RelayID, address: TransportAddress, expiry: UInt64)] = [:]
    private var lastSweep: UInt64 = 0
    /// This machine's addresses and the ports of its own TURN listeners (and open relays): a peer there
    /// would be the server itself (relay loops), so nothing is sent to it, whatever the policy.
    public var ownAddresses: Set<IPAddress> = []
    public var ownPorts: Set<UInt16> = []

    /// Permissions last 300 s, channels 600 s, reservations 30 s (RFC 8656 §9, §12, §7.2); a TCP
    /// connection waits 30 s for Connect to succeed and then for its ConnectionBind (RFC 6062 §5.2).
    static let permissionLifetime: UInt64 = 300_000_000_000
    static let channelLifetime: UInt64 = 600_000_000_000
    static let reservationLifetime: UInt64 = 30_000_000_000
    static let connectionTimeout: UInt64 = 30_000_000_000

    /// ADDITIONAL-ADDRESS-FAMILY and ADDRESS-ERROR-CODE as draft-ietf-tram-turn-ipv6 numbered them,
    /// before RFC 8656 gave them 0x8000 and 0x8001.
    static let draftAdditionalAddressFamily = STUNAttributeType(rawValue: 0x8032)
    static let draftAddressErrorCode = STUNAttributeType(rawValue: 0x8033)

    public init(config: TURNConfig, auth: Authenticator, policy: PeerPolicy, metrics: TURNMetrics, io: any TURNIO) {
        self.config = config
        self.auth = auth
        self.policy = policy
        self.metrics = metrics
        self.io = io
    }

    public var allocationCount: Int { allocations.count }

    // MARK: - Packets from clients

    /// A datagram from a UDP client, or one whole message from a stream client. `now` is monotonic
    /// nanoseconds; `unixNow` seconds since 1970 (nonces, REST expiry).
    public func receive(_ bytes: UnsafeRawBufferPointer, from client: ClientKey, now: UInt64, unixNow: UInt64) {
        guard bytes.count >= 4 else { return drop() }
        if bytes[0] & 0xC0 == 0x40 {
            return channelData(bytes, from: client, now: now)
        }
        guard let parsed = try? STUNMessage.parse(Array(bytes)) else { return drop() }
        // A FINGERPRINT that is present must be right (RFC 8489 §7.3); a broken one is dropped.
        if parsed.fingerprintOffset != nil, !parsed.fingerprintIsValid { return drop() }
        let message = parsed.message
        if message.messageClass == .request, let unknown = unknownComprehensionRequired(message) {
            // RFC 8489 §6.3.1: a request with an attribute the server must understand and does not.
            let body = unknown.flatMap { [UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)] }
            return error(420, to: message, client: client, extra: [STUNAttribute(type: .unknownAttributes, value: body)], sign: nil)
        }
        switch (message.messageClass, message.method) {
        case (.request, .binding):
            respond(to: message, client: client, attributes: [.xorAddress(.xorMappedAddress, client.address, transactionID: message.transactionID)], sign: nil)
        case (.indication, .send):
            sendIndication(message, from: client, now: now)
        case (.indication, _):
            drop()
        case (.request, .allocate), (.request, .refresh), (.request, .createPermission), (.request, .channelBind),
             (.request, .connect), (.request, .connectionBind):
            guard let credential = authenticate(parsed, client: client, now: unixNow) else { return }
            switch message.method {
            case .allocate: allocate(message, client: client, credential: credential, now: now)
            case .refresh: refresh(message, client: client, credential: credential, now: now)
            case .createPermission: createPermission(message, client: client, credential: credential, now: now)
            case .channelBind: channelBind(message, client: client, credential: credential, now: now)
            case .connect: connect(message, client: client, credential: credential, now: now)
            default: connectionBind(message, client: client, credential: credential, now: now)
            }
        case (.request, _):
            error(400, to: message, client: client, sign: nil)
        default:
            drop()  // responses: a server sends no requests, so expects none
        }
    }

    /// A stream client's connection closed: its allocation goes with it (RFC 8656 §3.1).
    public func clientClosed(_ client: ClientKey) {
        if let allocation = allocations[client] { remove(allocation) }
    }

    // MARK: - Authentication

    /// The credential of a request whose MESSAGE-INTEGRITY(-SHA256) verifies; otherwise the error
    /// is sent (401 or 438 with a fresh challenge, 400) and nil returned. Nothing is stored for a
    /// client before this succeeds.
    private func authenticate(_ parsed: ParsedSTUNMessage, client: ClientKey, now: UInt64) -> Credential? {
        let verdict = auth.verify(parsed, client: client.address.ip, now: now)
        let code: Int
        switch verdict {
        case .verified(let credential): return credential
        case .unauthenticated: code = 401
        case .badRequest: code = 400
        case .refused:
            metrics.authFailures.add(1, ordering: .relaxed)
            code = 401
        case .staleNonce: code = 438
        }
        let challenge = code == 400 ? [] : auth.challenge(for: client.address.ip, now: now)
        error(code, to: parsed.message, client: client, extra: challenge, sign: nil)
        return nil
    }

    private func unknownComprehensionRequired(_ message: STUNMessage) -> [STUNAttributeType]? {
        let known: Set<STUNAttributeType> = [
            .username, .messageIntegrity, .messageIntegritySHA256, .realm, .nonce, .lifetime, .requestedTransport, .dontFragment,
            .evenPort, .reservationToken, .requestedAddressFamily, .xorPeerAddress, .channelNumber, .data, .priority,
            .useCandidate, .fingerprint, .software, .xorMappedAddress, .userhash, .passwordAlgorithm, .connectionID,
        ]
        let unknown = message.attributes.map(\.type).filter { $0.isComprehensionRequired && !known.contains($0) }
        return unknown.isEmpty ? nil : unknown
    }

    // MARK: - Allocate

    private func allocate(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        if let existing = allocations[client] {
            // A retransmission of the request that made it gets the same answer; anything else 437.
            if existing.allocateTransaction == message.transactionID, existing.username == credential.username {
                io.sendToClient(existing.allocateResponse, client)
            } else {
                error(437, to: message, client: client, sign: credential.integrity)
            }
            return
        }
        guard let transport = message.attribute(.requestedTransport)?.value, transport.count == 4 else {
            return error(400, to: message, client: client, sign: credential.integrity)
        }
        let relayTransport: RelayTransport
        switch transport[0] {
        case 17: relayTransport = .udp
        case 6 where config.tcpRelays: relayTransport = .tcp
        default: return error(442, to: message, client: client, sign: credential.integrity)
        }
        let evenPort = message.attribute(.evenPort)
        let token = message.attribute(.reservationToken)?.value
        let requested = message.attribute(.requestedAddressFamily)
        // coturn before 4.10 (Debian's 4.6 among them) sends ADDITIONAL-ADDRESS-FAMILY under the
        // draft's code point and reads ADDRESS-ERROR-CODE under the draft's too.
        let draftDual = message.attribute(.additionalAddressFamily) == nil && message.attribute(Self.draftAdditionalAddressFamily) != nil
        let additional = message.attribute(.additionalAddressFamily) ?? message.attribute(Self.draftAdditionalAddressFamily)
        if relayTransport == .tcp {
            // RFC 6062 §5.1: only on a TCP or TLS control connection, and without the UDP-only
            // attributes.
            guard client.isStream, evenPort == nil, token == nil, message.attribute(.dontFragment) == nil else {
                return error(400, to: message, client: client, sign: credential.integrity)
            }
        }
        if token != nil, evenPort != nil || requested != nil { return error(400, to: message, client: client, sign: credential.integrity) }
        if requested != nil, additional != nil { return error(400, to: message, client: client, sign: credential.integrity) }
        if let evenPort, evenPort.value.count != 1 { return error(400, to: message, client: client, sign: credential.integrity) }

        var family = AddressFamily.v4
        if let requested {
            guard let f = AddressFamily(attribute: requested.value) else { return error(440, to: message, client: client, sign: credential.integrity) }
            family = f
        }
        var dual = false
        if let additional {
            guard AddressFamily(attribute: additional.value) == .v6 else { return error(400, to: message, client: client, sign: credential.integrity) }
            dual = true
        }
        guard io.relayFamilies.contains(family) else { return error(440, to: message, client: client, sign: credential.integrity) }

        let identity = Authenticator.quotaIdentity(credential.username)
        let address = client.address.ip.shareKey
        guard allocations.count < config.maxAllocations, allocationsPerIdentity[identity, default: 0] < config.maxAllocationsPerUser,
              allocationsPerAddress[address, default: 0] < config.maxAllocationsPerAddress
        else {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return error(486, to: message, client: client, sign: credential.integrity)
        }

        var relays: [(id: RelayID, address: TransportAddress)] = []
        var extra: [STUNAttribute] = []
        if relayTransport == .tcp {
            guard let opened = io.openTCPRelay(family: family) else { return error(508, to: message, client: client, sign: credential.integrity) }
            relays.append((opened.relay, opened.address))
        } else if let token {
            guard let reserved = reservations.removeValue(forKey: token) else { return error(508, to: message, client: client, sign: credential.integrity) }
            relays.append((reserved.relay, reserved.address))
        } else {
            let reserveNext = evenPort.map { $0.value[0] & 0x80 != 0 } ?? false
            guard let opened = io.openRelay(family: family, evenPort: evenPort != nil, reserveNext: reserveNext) else {
                return error(508, to: message, client: client, sign: credential.integrity)
            }
            relays.append((opened.relay, opened.address))
            if let (reservedID, reservedAddress) = opened.reserved {
                let newToken = randomBytes(8)
                reservations[newToken] = (reservedID, reservedAddress, now + Self.reservationLifetime)
                extra.append(STUNAttribute(type: .reservationToken, value: newToken))
            }
        }
        if dual {
            var second: (relay: RelayID, address: TransportAddress)?
            if io.relayFamilies.contains(.v6) {
                second = relayTransport == .tcp
                    ? io.openTCPRelay(family: .v6) : io.openRelay(family: .v6, evenPort: false, reserveNext: false).map { (relay: $0.relay, address: $0.address) }
            }
            if let second {
                relays.append((second.relay, second.address))
            } else {
                // The IPv4 half stands; the client learns why there is no IPv6 one (RFC 8656 §7.2).
                extra.append(STUNAttribute(type: draftDual ? Self.draftAddressErrorCode : .addressErrorCode, value: [0x02, 0, 4, 40]))
            }
        }
        let lifetime = lifetimeSeconds(message, allocate: true)
        var attributes = relays.map { STUNAttribute.xorAddress(.xorRelayedAddress, $0.address, transactionID: message.transactionID) }
        attributes.append(.uint32(.lifetime, UInt32(lifetime)))
        attributes += extra
        attributes.append(.xorAddress(.xorMappedAddress, client.address, transactionID: message.transactionID))
        let response = encode(message, .success, attributes, sign: credential.integrity)
        let allocation = Allocation(client: client, username: credential.username, transport: relayTransport, relays: relays, expiry: now + UInt64(lifetime) * 1_000_000_000,
                                    transaction: message.transactionID, response: response,
                                    bandwidth: UInt64(config.bandwidthBytesPerSecond), now: now)
        allocations[client] = allocation
        for r in relays { allocationsByRelay[r.id] = allocation }
        allocationsPerIdentity[identity, default: 0] += 1
        allocationsPerAddress[address, default: 0] += 1
        metrics.allocations.store(allocations.count, ordering: .relaxed)
        io.sendToClient(response, client)
    }

    /// RFC 8656 §7.2/§7.3: the requested lifetime, raised to the default and capped at the maximum;
    /// 0 on a Refresh means delete.
    func lifetimeSeconds(_ message: STUNMessage, allocate: Bool) -> Int {
        guard let requested = message.attribute(.lifetime)?.uint32Value else { return config.defaultLifetimeSeconds }
        if !allocate, requested == 0 { return 0 }
        return min(max(Int(requested), config.defaultLifetimeSeconds), config.maxLifetimeSeconds)
    }

    // MARK: - Refresh, CreatePermission, ChannelBind

    /// The allocation a request on `client` acts on, made by the same user (437 and 441 otherwise).
    func ownAllocation(_ message: STUNMessage, client: ClientKey, credential: Credential) -> Allocation? {
        guard let allocation = allocations[client] else {
            error(437, to: message, client: client, sign: credential.integrity)
            return nil
        }
        guard allocation.username == credential.username else {
            metrics.authFailures.add(1, ordering: .relaxed)
            error(441, to: message, client: client, sign: credential.integrity)
            return nil
        }
        return allocation
    }

    private func refresh(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        guard let allocation = ownAllocation(message, client: client, credential: credential) else { return }
        // The relayed addresses it acts on: all, or the one of REQUESTED-ADDRESS-FAMILY (443 if
        // the allocation has none of that family).
        var targets = allocation.relays.map(\.id)
        if let requested = message.attribute(.requestedAddressFamily) {
            guard let family = AddressFamily(attribute: requested.value), let relay = allocation.relay(for: family) else {
                return error(443, to: message, client: client, sign: credential.integrity)
            }
            targets = [relay]
        }
        let lifetime = lifetimeSeconds(message, allocate: false)
        if lifetime == 0 {
            if targets.count == allocation.relays.count {
                remove(allocation)
            } else {
                for relay in targets { removeRelay(relay, of: allocation) }
            }
        } else {
            for relay in targets { allocation.relayExpiry[relay] = now + UInt64(lifetime) * 1_000_000_000 }
        }
        respond(to: message, client: client, attributes: [.uint32(.lifetime, UInt32(lifetime))], sign: credential.integrity)
    }

    /// Ends one relayed address of a dual allocation whose other one stays, with the TCP
    /// connections that went through it.
    private func removeRelay(_ relay: RelayID, of allocation: Allocation) {
        guard let index = allocation.relays.firstIndex(where: { $0.id == relay }) else { return }
        let family = AddressFamily(allocation.relays[index].address.ip)
        allocation.relays.remove(at: index)
        allocation.relayExpiry.removeValue(forKey: relay)
        allocationsByRelay.removeValue(forKey: relay)
        io.closeRelay(relay)
        for id in allocation.connections {
            if let connection = peerConnections[id], AddressFamily(connection.peer.ip) == family { close(connection) }
        }
    }

    /// The peer addresses of a request, each checked: well-formed (400), allowed by the policy
    /// (403), of a family the allocation relays (443). Nil after sending the error.
    func peers(_ message: STUNMessage, allocation: Allocation, client: ClientKey, credential: Credential) -> [TransportAddress]? {
        let attributes = message.attributes.filter { $0.type == .xorPeerAddress }
        guard !attributes.isEmpty else {
            error(400, to: message, client: client, sign: credential.integrity)
            return nil
        }
        var out: [TransportAddress] = []
        for attribute in attributes {
            guard let peer = attribute.xorAddress(transactionID: message.transactionID) else {
                error(400, to: message, client: client, sign: credential.integrity)
                return nil
            }
            if case .denied = policy.check(peer.ip) {
                metrics.deniedPeers.add(1, ordering: .relaxed)
                error(403, to: message, client: client, sign: credential.integrity)
                return nil
            }
            guard allocation.relay(for: AddressFamily(peer.ip)) != nil else {
                error(443, to: message, client: client, sign: credential.integrity)
                return nil
            }
            out.append(peer)
        }
        return out
    }

    private func createPermission(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        guard let allocation = ownAllocation(message, client: client, credential: credential),
            let peers = peers(message, allocation: allocation, client: client, credential: credential)
        else { return }
        let new = Set(peers.map(\.ip)).filter { allocation.permissions[$0] == nil }
        guard allocation.permissions.count + new.count <= config.maxPermissionsPerAllocation else {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return error(508, to: message, client: client, sign: credential.integrity)
        }
        for peer in peers { allocation.permissions[peer.ip] = now + Self.permissionLifetime }
        metrics.permissions.add(new.count, ordering: .relaxed)
        respond(to: message, client: client, attributes: [], sign: credential.integrity)
    }

    private func channelBind(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        guard let allocation = ownAllocation(message, client: client, credential: credential) else { return }
        // A TCP allocation relays over connections, never in channels (RFC 6062 §4).
        guard allocation.transport == .udp else { return error(400, to: message, client: client, sign: credential.integrity) }
        guard let value = message.attribute(.channelNumber)?.value, value.count == 4 else {
            return error(400, to: message, client: client, sign: credential.integrity)
        }
        let number = UInt16(value[0]) << 8 | UInt16(value[1])
        // RFC 8656 narrowed channels to 0x4000–0x4FFF; RFC 5766 clients (coturn's own tools among
        // them) still pick up to 0x7FFF, and ChannelData framing tells both apart from STUN alike.
        guard (0x4000...0x7FFF).contains(number) else { return error(400, to: message, client: client, sign: credential.integrity) }
        guard let peers = peers(message, allocation: allocation, client: client, credential: credential) else { return }
        guard peers.count == 1, let peer = peers.first else { return error(400, to: message, client: client, sign: credential.integrity) }
        // A number stays with one peer and a peer with one number while bound (RFC 8656 §11.2).
        if let bound = allocation.channelPeers[number], bound != peer { return error(400, to: message, client: client, sign: credential.integrity) }
        if let bound = allocation.channelNumbers[peer], bound != number { return error(400, to: message, client: client, sign: credential.integrity) }
        let isNew = allocation.channelPeers[number] == nil
        if isNew, allocation.channelPeers.count >= config.maxChannelsPerAllocation {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return error(508, to: message, client: client, sign: credential.integrity)
        }
        let newPermission = allocation.permissions[peer.ip] == nil
        if newPermission, allocation.permissions.count >= config.maxPermissionsPerAllocation {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return error(508, to: message, client: client, sign: credential.integrity)
        }
        allocation.channelPeers[number] = peer
        allocation.channelNumbers[peer] = number
        allocation.channelExpiry[number] = now + Self.channelLifetime
        allocation.permissions[peer.ip] = max(allocation.permissions[peer.ip] ?? 0, now + Self.permissionLifetime)
        if isNew { metrics.channels.add(1, ordering: .relaxed) }
        if newPermission { metrics.permissions.add(1, ordering: .relaxed) }
        respond(to: message, client: client, attributes: [], sign: credential.integrity)
    }

    // MARK: - Data

    private func sendIndication(_ message: STUNMessage, from client: ClientKey, now: UInt64) {
        guard let allocation = allocations[client], allocation.transport == .udp,
            let peer = message.attribute(.xorPeerAddress)?.xorAddress(transactionID: message.transactionID),
            let data = message.attribute(.data)?.value, let relay = allocation.relay(for: AddressFamily(peer.ip)),
            allocation.hasPermission(peer.ip, now: now)
        else { return drop() }
        data.withUnsafeBytes { toPeer($0, allocation: allocation, relay: relay, peer: peer, now: now) }
    }

    private func channelData(_ bytes: UnsafeRawBufferPointer, from client: ClientKey, now: UInt64) {
        let number = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        guard length <= bytes.count - 4, let allocation = allocations[client], allocation.transport == .udp, let peer = allocation.channelPeers[number],
            let expiry = allocation.channelExpiry[number], expiry > now, let relay = allocation.relay(for: AddressFamily(peer.ip))
        else { return drop() }
        toPeer(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)]), allocation: allocation, relay: relay, peer: peer, now: now)
    }

    private func toPeer(_ payload: UnsafeRawBufferPointer, allocation: Allocation, relay: RelayID, peer: TransportAddress, now: UInt64) {
        if ownAddresses.contains(peer.ip), ownPorts.contains(peer.port) || io.isRelay(peer) {
            metrics.deniedPeers.add(1, ordering: .relaxed)
            return
        }
        guard allocation.toPeers.take(payload.count, now: now) else {
            metrics.overBandwidth.add(1, ordering: .relaxed)
            return
        }
        if io.sendToPeer(payload, from: relay, to: peer) {
            metrics.relayedPackets.add(1, ordering: .relaxed)
            metrics.relayedBytes.add(payload.count, ordering: .relaxed)
        }
    }

    /// A datagram from a peer on a relay socket: to the client as ChannelData if a channel is bound
    /// to that peer, else as a Data indication; dropped without a permission for the peer's IP.
    public func receiveFromPeer(_ payload: UnsafeRawBufferPointer, relay: RelayID, peer: TransportAddress, now: UInt64) {
        // A UDP payload is under 64 KiB, but a Data indication adds headers to it: keep both forms
        // within their 16-bit lengths.
        guard payload.count <= 65_000, let allocation = allocationsByRelay[relay], allocation.transport == .udp,
            allocation.hasPermission(peer.ip, now: now)
        else {
            return drop()
        }
        guard allocation.toClient.take(payload.count, now: now) else {
            metrics.overBandwidth.add(1, ordering: .relaxed)
            return
        }
        var out: [UInt8]
        if let number = allocation.channelNumbers[peer], let expiry = allocation.channelExpiry[number], expiry > now {
            let padded = allocation.client.isStream ? (payload.count + 3) & ~3 : payload.count
            out = [UInt8](repeating: 0, count: 4 + padded)
            out[0] = UInt8(number >> 8)
            out[1] = UInt8(number & 0xFF)
            out[2] = UInt8(payload.count >> 8)
            out[3] = UInt8(payload.count & 0xFF)
            out.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[4..<(4 + payload.count)]).copyMemory(from: payload) }
        } else {
            let id = STUNTransactionID.random()
            out = STUNMessage(method: .data, messageClass: .indication, transactionID: id, attributes: [
                .xorAddress(.xorPeerAddress, peer, transactionID: id),
                STUNAttribute(type: .data, value: Array(payload)),
            ]).encode(integrity: nil, fingerprint: false)
        }
        metrics.relayedPackets.add(1, ordering: .relaxed)
        metrics.relayedBytes.add(payload.count, ordering: .relaxed)
        io.sendToClient(out, allocation.client)
    }

    // MARK: - Time

    /// Expires allocations, permissions, channels and reservations (at most every 250 ms).
    public func tick(now: UInt64) {
        guard now - lastSweep >= 250_000_000 else { return }
        lastSweep = now
        for allocation in Array(allocations.values) {
            if allocation.expiry <= now {
                remove(allocation)
                continue
            }
            for (relay, expiry) in allocation.relayExpiry where expiry <= now { removeRelay(relay, of: allocation) }
            let permissionsBefore = allocation.permissions.count
            allocation.permissions = allocation.permissions.filter { $0.value > now }
            metrics.permissions.subtract(permissionsBefore - allocation.permissions.count, ordering: .relaxed)
            for (number, expiry) in allocation.channelExpiry where expiry <= now {
                allocation.channelExpiry.removeValue(forKey: number)
                if let peer = allocation.channelPeers.removeValue(forKey: number) { allocation.channelNumbers.removeValue(forKey: peer) }
                metrics.channels.subtract(1, ordering: .relaxed)
            }
        }
        expireConnections(now: now)
        for (token, reserved) in reservations where reserved.expiry <= now {
            reservations.removeValue(forKey: token)
            io.closeRelay(reserved.relay)
        }
    }

    /// Closes every allocation and reservation (the plugin is stopping).
    public func closeAll() {
        for allocation in Array(allocations.values) { remove(allocation) }
        for (_, reserved) in reservations { io.closeRelay(reserved.relay) }
        reservations.removeAll()
    }

    func remove(_ allocation: Allocation) {
        guard allocations[allocation.client] === allocation else { return }
        allocations.removeValue(forKey: allocation.client)
        for id in allocation.connections {
            if let connection = peerConnections[id] { close(connection) }
        }
        for r in allocation.relays {
            allocationsByRelay.removeValue(forKey: r.id)
            io.closeRelay(r.id)
        }
        allocationsPerIdentity[allocation.identity, default: 1] -= 1
        if allocationsPerIdentity[allocation.identity] == 0 { allocationsPerIdentity.removeValue(forKey: allocation.identity) }
        let address = allocation.client.address.ip.shareKey
        allocationsPerAddress[address, default: 1] -= 1
        if allocationsPerAddress[address] == 0 { allocationsPerAddress.removeValue(forKey: address) }
        metrics.allocations.store(allocations.count, ordering: .relaxed)
        metrics.permissions.subtract(allocation.permissions.count, ordering: .relaxed)
        metrics.channels.subtract(allocation.channelPeers.count, ordering: .relaxed)
    }

    // MARK: - Responses

    func drop() { metrics.dropped.add(1, ordering: .relaxed) }

    func encode(_ request: STUNMessage, _ messageClass: STUNClass, _ attributes: [STUNAttribute], sign: STUNIntegrity?) -> [UInt8] {
        let response = STUNMessage(method: request.method, messageClass: messageClass, transactionID: request.transactionID, attributes: attributes)
        return response.encode(integrity: sign, fingerprint: true)
    }

    func respond(to request: STUNMessage, client: ClientKey, attributes: [STUNAttribute], sign: STUNIntegrity?) {
        io.sendToClient(encode(request, .success, attributes, sign: sign), client)
    }

    /// An error response. No reason phrase (it would only make answers to spoofed requests larger);
    /// signed when the request was authenticated.
    func error(_ code: Int, to request: STUNMessage, client: ClientKey, extra: [STUNAttribute] = [], sign: STUNIntegrity?) {
        io.sendToClient(encode(request, .error, [.errorCode(code, "")] + extra, sign: sign), client)
    }
}
