import RTC
import Testing
@testable import TURNCore

/// RFC 6062 TCP allocations: Allocate with REQUESTED-TRANSPORT 6, Connect, ConnectionAttempt,
/// ConnectionBind, their errors and timeouts, and what closing either end does.
@Suite struct TCPAllocationTests {
    let io = RecordingIO()
    let server: TURNServer
    /// alice's control connection, her data connection, and the same address over UDP.
    let control = ClientKey(.stream(connection: 1), TransportAddress("192.0.2.10", 5000)!)
    let data = ClientKey(.stream(connection: 2), TransportAddress("192.0.2.10", 5001)!)
    let udp = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5000)!)
    let peer = TransportAddress("203.0.113.9", 7000)!  // documentation range: re-opened below
    let now: UInt64 = 1_000_000_000
    let unix: UInt64 = 1_800_000_000

    init() {
        var config = TURNConfig()
        config.users = ["alice": "secretpw", "bob": "otherpw"]
        config.maxTCPConnectionsPerAllocation = 2
        config.bandwidthBytesPerSecond = 1_000
        let auth = Authenticator(realm: "atrium", users: config.users, secrets: [], nonceSeconds: 600)
        server = TURNServer(config: config, auth: auth, policy: PeerPolicy(allowed: [CIDR("203.0.113.0/24")!]), metrics: TURNMetrics(), io: io)
        server.ownAddresses = [.v4(0xC633_6401), IPAddress("203.0.113.1")!]
        server.ownPorts = [3478]
    }

    @discardableResult
    func send(_ method: STUNMethod, _ attributes: [STUNAttribute] = [], from client: ClientKey? = nil, user: String = "alice",
              password: String = "secretpw", at time: UInt64? = nil) -> STUNMessage?
    {
        let client = client ?? control
        let id = STUNTransactionID.random()
        var m = STUNMessage(method: method, messageClass: .request, transactionID: id, attributes: attributes)
        m.attributes += [.string(.username, user), .string(.realm, "atrium"), .string(.nonce, server.auth.nonce(for: client.address.ip, now: unix))]
        let before = io.toClients.count
        m.encode(integrity: .sha1(key: STUNIntegrity.longTerm(username: user, realm: "atrium", password: password)), fingerprint: true)
            .withUnsafeBytes { server.receive($0, from: client, now: time ?? now, unixNow: unix) }
        guard io.toClients.count > before else { return nil }
        return try? io.lastResponse()
    }

    func tcpAllocate(_ extra: [STUNAttribute] = [], from client: ClientKey? = nil) -> STUNMessage? {
        send(.allocate, [.uint32(.requestedTransport, 6 << 24)] + extra, from: client)
    }

    func connect(_ address: TransportAddress, user: String = "alice", password: String = "secretpw") -> STUNMessage? {
        let id = STUNTransactionID.random()
        var m = STUNMessage(method: .connect, messageClass: .request, transactionID: id, attributes: [.xorAddress(.xorPeerAddress, address, transactionID: id)])
        m.attributes += [.string(.username, user), .string(.realm, "atrium"), .string(.nonce, server.auth.nonce(for: control.address.ip, now: unix))]
        let before = io.toClients.count
        m.encode(integrity: .sha1(key: STUNIntegrity.longTerm(username: user, realm: "atrium", password: password)), fingerprint: true)
            .withUnsafeBytes { server.receive($0, from: control, now: now, unixNow: unix) }
        guard io.toClients.count > before else { return nil }
        return try? io.lastResponse()
    }

    func bind(_ id: UInt32, from client: ClientKey? = nil, user: String = "alice", password: String = "secretpw", at time: UInt64? = nil) -> STUNMessage? {
        send(.connectionBind, [.uint32(.connectionID, id)], from: client ?? data, user: user, password: password, at: time)
    }

    func code(_ m: STUNMessage?) -> Int? { m?.attribute(.errorCode)?.errorCodeValue?.code }

    /// A TCP allocation of alice's with one connection to `peer`, connected, waiting for its bind.
    func pendingConnection() throws -> (socket: PeerSocketID, id: UInt32) {
        #expect(tcpAllocate()?.messageClass == .success)
        #expect(connect(peer) == nil)  // answered when the connection is up
        let socket = try #require(io.connects.last?.socket)
        server.peerConnectFinished(socket, connected: true, now: now)
        let r = try io.lastResponse()
        #expect(r.method == .connect && r.messageClass == .success)
        return (socket, try #require(r.attribute(.connectionID)?.uint32Value))
    }

    // MARK: - Allocate

    @Test func aTCPAllocationNeedsAStreamAndNoUDPOnlyAttributes() throws {
        #expect(code(tcpAllocate(from: udp)) == 400)
        #expect(code(tcpAllocate([STUNAttribute(type: .evenPort, value: [0x80])])) == 400)
        #expect(code(tcpAllocate([STUNAttribute(type: .dontFragment, value: [])])) == 400)
        #expect(code(send(.allocate, [.uint32(.requestedTransport, 132 << 24)])) == 442)  // SCTP
        let r = try #require(tcpAllocate())
        #expect(r.messageClass == .success && r.attribute(.reservationToken) == nil)
        let relayed = try #require(r.attribute(.xorRelayedAddress)?.xorAddress(transactionID: r.transactionID))
        #expect(io.tcpRelays.count == 1 && io.open[io.tcpRelays.first!] == relayed)
    }

    @Test func tcpRelaysCanBeTurnedOff() {
        var config = TURNConfig()
        config.users = ["alice": "secretpw"]
        config.tcpRelays = false
        let off = TURNServer(config: config, auth: server.auth, policy: PeerPolicy(), metrics: TURNMetrics(), io: io)
        var m = STUNMessage(method: .allocate, messageClass: .request, attributes: [.uint32(.requestedTransport, 6 << 24)])
        m.attributes += [.string(.username, "alice"), .string(.realm, "atrium"), .string(.nonce, server.auth.nonce(for: control.address.ip, now: unix))]
        m.encode(integrity: .sha1(key: STUNIntegrity.longTerm(username: "alice", realm: "atrium", password: "secretpw")), fingerprint: true)
            .withUnsafeBytes { off.receive($0, from: control, now: now, unixNow: unix) }
        #expect((try? io.lastResponse())?.attribute(.errorCode)?.errorCodeValue?.code == 442)
    }

    // MARK: - Connect and ConnectionBind

    @Test func connectThenConnectionBindMakesADataConnection() throws {
        let (socket, id) = try pendingConnection()
        #expect(io.connects.first?.peer == peer && io.tcpRelays.contains(io.connects.first!.relay))
        #expect(server.metrics.tcpConnections.load(ordering: .relaxed) == 1)
        let r = bind(id)
        #expect(r?.messageClass == .success && r?.method == .connectionBind)
        #expect(io.bound.count == 1 && io.bound[0].0 == socket && io.bound[0].1 == data)
        // Bound once: a second ConnectionBind for it finds nothing pending.
        let other = ClientKey(.stream(connection: 3), TransportAddress("192.0.2.10", 5002)!)
        #expect(code(bind(id, from: other)) == 400)
        // A bound connection outlives the 30 s a pending one gets.
        server.tick(now: now + 31_000_000_000)
        #expect(io.closedPeers.isEmpty && server.tcpConnectionCount == 1)
    }

    @Test func connectIsRefusedAsTheRFCSays() throws {
        #expect(code(connect(peer)) == 437)  // no allocation on this connection
        #expect(send(.allocate, [.uint32(.requestedTransport, 17 << 24)])?.messageClass == .success)
        #expect(code(connect(peer)) == 400)  // a UDP allocation
        _ = send(.refresh, [.uint32(.lifetime, 0)])
        #expect(tcpAllocate()?.messageClass == .success)
        // The peer policy of every relay path: denied ranges, embedded IPv4, the listeners.
        for denied in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1"] {
            #expect(code(connect(TransportAddress(denied, 80)!)) == 403, "\(denied)")
        }
        #expect(code(connect(TransportAddress("203.0.113.1", 3478)!)) == 403)  // this server's listener
        #expect(code(connect(TransportAddress("2001:4860::1", 80)!)) == 443)
        #expect(code(send(.connect)) == 400)  // no XOR-PEER-ADDRESS
        #expect(io.connects.isEmpty)
        #expect(code(connect(peer, user: "bob", password: "otherpw")) == 441)
        // Twice the same peer: 446 while the first is connecting.
        #expect(connect(peer) == nil)
        #expect(code(connect(peer)) == 446)
        // The quota (2 here): 508.
        #expect(connect(TransportAddress("203.0.113.10", 7000)!) == nil)
        #expect(code(connect(TransportAddress("203.0.113.11", 7000)!)) == 508)
        // A connection that could not even start: 447.
        io.connectStarts = false
        server.peerConnectionClosed(io.connects[1].socket)
        #expect(code(try io.lastResponse()) == 447)
        #expect(code(connect(TransportAddress("203.0.113.12", 7000)!)) == 447)
    }

    @Test func aFailedOrSlowConnectGets447() throws {
        #expect(tcpAllocate()?.messageClass == .success)
        _ = connect(peer)
        server.peerConnectFinished(io.connects[0].socket, connected: false, now: now)
        #expect(code(try io.lastResponse()) == 447)
        #expect(io.closedPeers == [io.connects[0].socket] && server.tcpConnectionCount == 0)
        // No outcome within 30 s: 447 then too, and the attempt is abandoned.
        _ = connect(peer)
        server.tick(now: now + 29_000_000_000)
        #expect(try io.lastResponse().method == .connect && io.closedPeers.count == 1)
        server.tick(now: now + 30_500_000_000)
        #expect(code(try io.lastResponse()) == 447 && io.closedPeers.count == 2)
    }

    @Test func connectionBindIsChecked() throws {
        let (_, id) = try pendingConnection()
        #expect(code(bind(id &+ 1)) == 400)                         // unknown CONNECTION-ID
        #expect(code(send(.connectionBind, from: data)) == 400)      // none at all
        #expect(code(bind(id, from: udp)) == 400)                    // not a TCP or TLS connection
        #expect(code(bind(id, from: control)) == 400)                // the control connection
        #expect(code(bind(id, user: "bob", password: "otherpw")) == 441)
        #expect(io.bound.isEmpty)
        #expect(bind(id)?.messageClass == .success)
    }

    @Test func anUnboundConnectionIsClosedAfter30Seconds() throws {
        let (socket, id) = try pendingConnection()
        server.tick(now: now + 29_000_000_000)
        #expect(io.closedPeers.isEmpty)
        server.tick(now: now + 30_500_000_000)
        #expect(io.closedPeers == [socket] && server.tcpConnectionCount == 0)
        #expect(code(bind(id, at: now + 31_000_000_000)) == 400)
    }

    // MARK: - Connections from peers

    @Test func aPeerConnectionNeedsAPermissionAndIsAnnounced() throws {
        let r = try #require(tcpAllocate())
        let relay = io.tcpRelays.first!
        let incoming = PeerSocketID(900)
        #expect(!server.peerConnectionAccepted(on: relay, socket: incoming, peer: peer, now: now))
        let id = STUNTransactionID.random()
        #expect(send(.createPermission, [.xorAddress(.xorPeerAddress, peer, transactionID: id)])?.messageClass == .success)
        _ = r
        #expect(server.peerConnectionAccepted(on: relay, socket: incoming, peer: peer, now: now))
        let (to, bytes) = io.toClients.last!
        let attempt = try STUNMessage.parse(bytes).message
        #expect(to == control && attempt.method == .connectionAttempt && attempt.messageClass == .indication)
        #expect(attempt.attribute(.xorPeerAddress)?.xorAddress(transactionID: attempt.transactionID) == peer)
        let cid = try #require(attempt.attribute(.connectionID)?.uint32Value)
        #expect(bind(cid)?.messageClass == .success && io.bound.last?.0 == incoming)
        // The quota counts them too: one more fits, the next is closed at once.
        #expect(server.peerConnectionAccepted(on: relay, socket: PeerSocketID(901), peer: peer, now: now))
        #expect(!server.peerConnectionAccepted(on: relay, socket: PeerSocketID(902), peer: peer, now: now))
    }

    // MARK: - Ends

    @Test func closingTheControlConnectionClosesEveryConnection() throws {
        let (socket, id) = try pendingConnection()
        #expect(bind(id)?.messageClass == .success)
        _ = connect(TransportAddress("203.0.113.10", 7000)!)
        let connecting = io.connects[1].socket
        server.clientClosed(control)
        #expect(Set(io.closedPeers) == [socket, connecting])
        #expect(server.allocationCount == 0 && io.open.isEmpty && server.tcpConnectionCount == 0)
        #expect(server.metrics.tcpConnections.load(ordering: .relaxed) == 0)
    }

    @Test func refreshZeroAndExpiryCloseConnectionsToo() throws {
        let (socket, _) = try pendingConnection()
        #expect(send(.refresh, [.uint32(.lifetime, 0)])?.messageClass == .success)
        #expect(io.closedPeers == [socket] && io.tcpRelays.isEmpty)
        let (second, id) = try pendingConnection()
        #expect(bind(id)?.messageClass == .success)
        server.tick(now: now + 601_000_000_000)
        #expect(io.closedPeers.last == second && server.allocationCount == 0)
    }

    @Test func aDualTCPAllocationConnectsFromTheFamilyOfThePeerAndShedsAHalfWithItsConnections() throws {
        io.relayFamilies = [.v4, .v6]
        let r = try #require(tcpAllocate([STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0])]))
        #expect(r.attributes.filter { $0.type == .xorRelayedAddress }.count == 2 && io.tcpRelays.count == 2)
        let v6 = TransportAddress("2001:4860::1", 443)!
        #expect(connect(peer) == nil && connect(v6) == nil)
        let (from4, from6) = (io.connects[0], io.connects[1])
        #expect(io.open[from4.relay]?.ip.isIPv4 == true && io.open[from6.relay]?.ip.isIPv4 == false)
        let id = STUNTransactionID.random()
        let dropV6 = STUNMessage(method: .refresh, messageClass: .request, transactionID: id, attributes: [
            .uint32(.lifetime, 0), STUNAttribute(type: .requestedAddressFamily, value: [2, 0, 0, 0]),
        ])
        var m = dropV6
        m.attributes += [.string(.username, "alice"), .string(.realm, "atrium"), .string(.nonce, server.auth.nonce(for: control.address.ip, now: unix))]
        m.encode(integrity: .sha1(key: STUNIntegrity.longTerm(username: "alice", realm: "atrium", password: "secretpw")), fingerprint: true)
            .withUnsafeBytes { server.receive($0, from: control, now: now, unixNow: unix) }
        // The IPv6 relayed address goes, with the Connect that left from it (its request is
        // answered 447, then the Refresh succeeds); the IPv4 one stays.
        let answers = io.toClients.suffix(2).compactMap { try? STUNMessage.parse($0.1).message }
        #expect(answers.map(\.method) == [.connect, .refresh] && code(answers.first) == 447 && answers.last?.messageClass == .success)
        #expect(io.closedPeers == [from6.socket] && io.tcpRelays == [from4.relay])
        #expect(server.tcpConnectionCount == 1 && server.allocationCount == 1)
    }

    @Test func aClosedPeerConnectionIsForgotten() throws {
        let (socket, id) = try pendingConnection()
        server.peerConnectionClosed(socket)
        #expect(code(bind(id)) == 400 && server.tcpConnectionCount == 0)
        #expect(io.closedPeers.isEmpty)  // the I/O side closed it itself
    }

    // MARK: - No UDP ways on a TCP allocation; the bandwidth cap

    @Test func aTCPAllocationHasNoChannelsSendOrData() throws {
        #expect(tcpAllocate()?.messageClass == .success)
        let id = STUNTransactionID.random()
        #expect(send(.createPermission, [.xorAddress(.xorPeerAddress, peer, transactionID: id)])?.messageClass == .success)
        let id2 = STUNTransactionID.random()
        #expect(code(send(.channelBind, [.uint32(.channelNumber, 0x4001 << 16), .xorAddress(.xorPeerAddress, peer, transactionID: id2)])) == 400)
        let id3 = STUNTransactionID.random()
        STUNMessage(method: .send, messageClass: .indication, transactionID: id3, attributes: [
            .xorAddress(.xorPeerAddress, peer, transactionID: id3), STUNAttribute(type: .data, value: [1, 2, 3]),
        ]).encode(integrity: nil, fingerprint: true).withUnsafeBytes { server.receive($0, from: control, now: now, unixNow: unix) }
        #expect(io.toPeers.isEmpty)
    }

    @Test func theBandwidthCapPausesATCPRelayInsteadOfDropping() throws {
        let (socket, id) = try pendingConnection()
        #expect(bind(id)?.messageClass == .success)
        // 1000 bytes per second: the first second's worth passes, 3000 more owe three seconds.
        #expect(server.tcpRelayed(socket, bytes: 1_000, towardsPeer: true, now: now) == 0)
        #expect(server.tcpRelayed(socket, bytes: 3_000, towardsPeer: true, now: now) == 3_000_000_000)
        #expect(server.tcpRelayed(socket, bytes: 500, towardsPeer: false, now: now) == 0)  // the other way has its own
        #expect(server.metrics.relayedBytes.load(ordering: .relaxed) == 4_500)
    }
}
