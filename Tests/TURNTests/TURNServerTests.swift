import RTC
import Testing
@testable import TURNCore

/// The socket side, recorded: what the server sent to clients and peers, which relays it opened,
/// and what it asked of TCP connections (RFC 6062).
final class RecordingIO: TURNIO {
    var toClients: [(ClientKey, [UInt8])] = []
    var toPeers: [(RelayID, TransportAddress, [UInt8])] = []
    var open: [RelayID: TransportAddress] = [:]
    var tcpRelays: Set<RelayID> = []
    var next: UInt64 = 1
    var relayFamilies: Set<AddressFamily> = [.v4]
    /// Connect attempts started, peer connections closed at the server's request, data connections bound.
    var connects: [(relay: RelayID, peer: TransportAddress, socket: PeerSocketID)] = []
    var closedPeers: [PeerSocketID] = []
    var bound: [(PeerSocketID, ClientKey)] = []
    var connectStarts = true

    func sendToClient(_ bytes: [UInt8], _ client: ClientKey) { toClients.append((client, bytes)) }

    private func relay(_ family: AddressFamily, port: UInt16) -> (RelayID, TransportAddress) {
        let id = RelayID(next)
        next += 1
        let ip: IPAddress = family == .v4 ? .v4(0xC633_6401) : IPAddress("2001:db8::1")!  // documentation ranges
        let address = TransportAddress(ip: ip, port: port)
        open[id] = address
        return (id, address)
    }

    func openRelay(family: AddressFamily, evenPort: Bool, reserveNext: Bool) -> (relay: RelayID, address: TransportAddress, reserved: (RelayID, TransportAddress)?)? {
        guard relayFamilies.contains(family) else { return nil }
        let first = relay(family, port: UInt16(50_000 + 2 * next))
        return (first.0, first.1, reserveNext ? relay(family, port: first.1.port + 1) : nil)
    }

    func openTCPRelay(family: AddressFamily) -> (relay: RelayID, address: TransportAddress)? {
        guard relayFamilies.contains(family) else { return nil }
        let r = relay(family, port: UInt16(50_000 + 2 * next))
        tcpRelays.insert(r.0)
        return r
    }

    func closeRelay(_ id: RelayID) {
        open.removeValue(forKey: id)
        tcpRelays.remove(id)
    }

    func isRelay(_ address: TransportAddress) -> Bool { open.values.contains(address) }

    func sendToPeer(_ bytes: UnsafeRawBufferPointer, from relay: RelayID, to peer: TransportAddress) -> Bool {
        toPeers.append((relay, peer, Array(bytes)))
        return true
    }

    func connectPeer(from relay: RelayID, to peer: TransportAddress) -> PeerSocketID? {
        guard connectStarts, tcpRelays.contains(relay) else { return nil }
        let socket = PeerSocketID(next)
        next += 1
        connects.append((relay, peer, socket))
        return socket
    }

    func closePeerConnection(_ socket: PeerSocketID) { closedPeers.append(socket) }
    func bindDataConnection(_ socket: PeerSocketID, to client: ClientKey) { bound.append((socket, client)) }

    func lastResponse() throws -> STUNMessage { try STUNMessage.parse(toClients.last!.1).message }
}

@Suite struct TURNServerTests {
    let io = RecordingIO()
    let server: TURNServer
    let alice = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5000)!)
    let mallory = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.66", 5000)!)
    let peer = TransportAddress("203.0.113.9", 7000)!  // documentation range: re-opened below
    let now: UInt64 = 1_000_000_000
    let unix: UInt64 = 1_800_000_000

    init() throws {
        var config = TURNConfig()
        config.users = ["alice": "secretpw", "bob": "otherpw"]
        config.maxAllocationsPerUser = 2
        let auth = Authenticator(realm: "atrium", users: config.users, secrets: ["s3cr3t"], nonceSeconds: 600)
        let policy = PeerPolicy(allowed: [CIDR("203.0.113.0/24")!])
        server = TURNServer(config: config, auth: auth, policy: policy, metrics: TURNMetrics(), io: io)
    }

    func send(_ message: STUNMessage, from client: ClientKey, user: String? = "alice", password: String = "secretpw",
              nonce: String? = nil, at time: UInt64? = nil) -> STUNMessage?
    {
        var m = message
        var integrity: STUNIntegrity?
        if let user {
            let n = nonce ?? server.auth.nonce(for: client.address.ip, now: unix)
            m.attributes += [.string(.username, user), .string(.realm, "atrium"), .string(.nonce, n)]
            integrity = .sha1(key: STUNIntegrity.longTerm(username: user, realm: "atrium", password: password))
        }
        let before = io.toClients.count
        m.encode(integrity: integrity, fingerprint: true).withUnsafeBytes { server.receive($0, from: client, now: time ?? now, unixNow: unix) }
        guard io.toClients.count > before else { return nil }
        return try? io.lastResponse()
    }

    func allocate(_ client: ClientKey, user: String = "alice", password: String = "secretpw", extra: [STUNAttribute] = []) -> STUNMessage? {
        send(STUNMessage(method: .allocate, messageClass: .request, attributes: [.uint32(.requestedTransport, 17 << 24)] + extra),
             from: client, user: user, password: password)
    }

    func code(_ m: STUNMessage?) -> Int? { m?.attribute(.errorCode)?.errorCodeValue?.code }

    func permission(_ client: ClientKey, _ address: TransportAddress, user: String = "alice", password: String = "secretpw") -> STUNMessage? {
        let id = STUNTransactionID.random()
        return send(STUNMessage(method: .createPermission, messageClass: .request, transactionID: id,
                                attributes: [.xorAddress(.xorPeerAddress, address, transactionID: id)]), from: client, user: user, password: password)
    }

    @Test func anUnsignedAllocateIsChallengedAndLeavesNoState() throws {
        let r = send(STUNMessage(method: .allocate, messageClass: .request, attributes: [.uint32(.requestedTransport, 17 << 24)]), from: alice, user: nil)
        #expect(code(r) == 401)
        #expect(r?.attribute(.realm)?.stringValue == "atrium" && r?.attribute(.nonce)?.stringValue?.count == 53)
        #expect(server.allocationCount == 0 && io.open.isEmpty)
    }

    @Test func allocateGivesARelayAndARetransmissionTheSameAnswer() throws {
        let id = STUNTransactionID.random()
        let request = STUNMessage(method: .allocate, messageClass: .request, transactionID: id, attributes: [.uint32(.requestedTransport, 17 << 24)])
        let r = send(request, from: alice)
        #expect(r?.messageClass == .success)
        #expect(r?.attribute(.xorRelayedAddress)?.xorAddress(transactionID: id) == io.open.values.first)
        #expect(r?.attribute(.lifetime)?.uint32Value == 600)
        let first = io.toClients.last!.1
        _ = send(request, from: alice)
        #expect(io.toClients.last!.1 == first && io.open.count == 1)
        #expect(code(allocate(alice)) == 437)  // another Allocate on the same 5-tuple
    }

    @Test func wrongPasswordsStaleNoncesAndExpiredRESTNamesAreRefused() throws {
        #expect(code(allocate(alice, password: "wrong")) == 401)
        #expect(code(send(STUNMessage(method: .allocate, messageClass: .request, attributes: [.uint32(.requestedTransport, 17 << 24)]),
                          from: alice, nonce: "obMatJos2AAAB" + String(repeating: "0", count: 40))) == 438)
        let expired = "\(unix - 1):bob"
        #expect(code(allocate(alice, user: expired, password: Authenticator.restPassword(secret: "s3cr3t", username: expired))) == 401)
        let valid = "\(unix + 60):bob"
        #expect(allocate(alice, user: valid, password: Authenticator.restPassword(secret: "s3cr3t", username: valid))?.messageClass == .success)
        #expect(server.metrics.authFailures.load(ordering: .relaxed) == 2)
    }

    @Test func restPasswordsAreBase64HMACSHA1() {
        #expect(Authenticator.restPassword(secret: "s3cr3t", username: "1700000000:bob") == "HhZgFhaITAEcvKpdkFJKMJBsIaI=")
    }

    @Test func onlyTheOwnerOnItsFiveTupleMayRefresh() throws {
        _ = allocate(alice)
        let refresh = STUNMessage(method: .refresh, messageClass: .request, attributes: [.uint32(.lifetime, 300)])
        #expect(code(send(refresh, from: alice, user: "bob", password: "otherpw")) == 441)
        #expect(code(send(refresh, from: mallory)) == 437)
        #expect(code(permission(mallory, peer)) == 437)
        #expect(send(refresh, from: alice)?.attribute(.lifetime)?.uint32Value == 600)  // raised to the default
        let delete = STUNMessage(method: .refresh, messageClass: .request, attributes: [.uint32(.lifetime, 0)])
        #expect(send(delete, from: alice)?.messageClass == .success)
        #expect(server.allocationCount == 0 && io.open.isEmpty)
    }

    @Test func deniedPeersGet403AndAllowedOnesAPermission() throws {
        _ = allocate(alice)
        for text in ["127.0.0.1", "0.0.0.0", "10.1.2.3", "169.254.169.254", "224.0.0.1"] {
            #expect(code(permission(alice, TransportAddress(text, 9)!)) == 403, "\(text)")
        }
        #expect(code(permission(alice, TransportAddress("::ffff:127.0.0.1", 9)!)) == 403)
        #expect(code(permission(alice, TransportAddress("2001:4860::1", 9)!)) == 443)  // IPv4 allocation
        #expect(permission(alice, peer)?.messageClass == .success)
        #expect(server.metrics.deniedPeers.load(ordering: .relaxed) == 6)
    }

    @Test func sendIndicationsNeedAPermissionAndTheOwnersFiveTuple() throws {
        _ = allocate(alice)
        func indication(from client: ClientKey) {
            let id = STUNTransactionID.random()
            let m = STUNMessage(method: .send, messageClass: .indication, transactionID: id,
                                attributes: [.xorAddress(.xorPeerAddress, peer, transactionID: id), STUNAttribute(type: .data, value: [1, 2, 3])])
            m.encode(integrity: nil, fingerprint: true).withUnsafeBytes { server.receive($0, from: client, now: now, unixNow: unix) }
        }
        indication(from: alice)
        #expect(io.toPeers.isEmpty)  // no permission yet
        _ = permission(alice, peer)
        indication(from: mallory)
        #expect(io.toPeers.isEmpty)  // not mallory's allocation
        indication(from: alice)
        #expect(io.toPeers.count == 1 && io.toPeers[0].1 == peer && io.toPeers[0].2 == [1, 2, 3])
    }

    @Test func peerDataComesBackAsDataOrChannelData() throws {
        _ = allocate(alice)
        let relay = io.open.keys.first!
        let data: [UInt8] = [9, 8, 7, 6, 5]
        data.withUnsafeBytes { server.receiveFromPeer($0, relay: relay, peer: peer, now: now) }
        #expect(io.toClients.count == 1)  // only the Allocate answer: no permission, dropped
        _ = permission(alice, peer)
        data.withUnsafeBytes { server.receiveFromPeer($0, relay: relay, peer: peer, now: now) }
        let indication = try STUNMessage.parse(io.toClients.last!.1).message
        #expect(indication.method == .data && indication.messageClass == .indication)
        #expect(indication.attribute(.data)?.value == data)
        #expect(indication.attribute(.xorPeerAddress)?.xorAddress(transactionID: indication.transactionID) == peer)

        let id = STUNTransactionID.random()
        let bind = STUNMessage(method: .channelBind, messageClass: .request, transactionID: id, attributes: [
            .uint32(.channelNumber, 0x4001 << 16), .xorAddress(.xorPeerAddress, peer, transactionID: id),
        ])
        #expect(send(bind, from: alice)?.messageClass == .success)
        data.withUnsafeBytes { server.receiveFromPeer($0, relay: relay, peer: peer, now: now) }
        #expect(io.toClients.last!.1 == [0x40, 0x01, 0, 5] + data)
        // ChannelData from the client reaches the peer.
        ([0x40, 0x01, 0, 2, 0xAA, 0xBB] as [UInt8]).withUnsafeBytes { server.receive($0, from: alice, now: now, unixNow: unix) }
        #expect(io.toPeers.last?.2 == [0xAA, 0xBB])
        // A datagram too large for a Data indication or ChannelData is dropped, not relayed.
        let before = io.toClients.count
        [UInt8](repeating: 1, count: 65_400).withUnsafeBytes { server.receiveFromPeer($0, relay: relay, peer: peer, now: now) }
        #expect(io.toClients.count == before)
        // A number bound to one peer cannot be moved to another.
        let other = TransportAddress("203.0.113.10", 7000)!
        let id2 = STUNTransactionID.random()
        let rebind = STUNMessage(method: .channelBind, messageClass: .request, transactionID: id2, attributes: [
            .uint32(.channelNumber, 0x4001 << 16), .xorAddress(.xorPeerAddress, other, transactionID: id2),
        ])
        #expect(code(send(rebind, from: alice)) == 400)
    }

    @Test func evenPortReservesTheNextAndQuotasHold() throws {
        let r = allocate(alice, extra: [STUNAttribute(type: .evenPort, value: [0x80])])
        let token = try #require(r?.attribute(.reservationToken)?.value)
        #expect(io.open.count == 2)
        let second = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5001)!)
        let claimed = allocate(second, extra: [STUNAttribute(type: .reservationToken, value: token)])
        #expect(claimed?.messageClass == .success && io.open.count == 2)
        let third = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5002)!)
        #expect(code(allocate(third)) == 486)  // two per user
    }

    @Test func addressFamilies() throws {
        // IPv6 asked of a server without an IPv6 relay: 440. A dual allocation: IPv4 plus the
        // reason there is no IPv6 half.
        #expect(code(allocate(alice, extra: [STUNAttribute(type: .requestedAddressFamily, value: [2, 0, 0, 0])])) == 440)
        let r = allocate(alice, extra: [STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0])])
        #expect(r?.messageClass == .success && r?.attributes.filter { $0.type == .xorRelayedAddress }.count == 1)
        #expect(r?.attribute(.addressErrorCode)?.value == [2, 0, 4, 40])
        let draftClient = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5005)!)
        let draftAnswer = allocate(draftClient, user: "bob", password: "otherpw", extra: [STUNAttribute(type: STUNAttributeType(rawValue: 0x8032), value: [2, 0, 0, 0])])
        #expect(draftAnswer?.attribute(STUNAttributeType(rawValue: 0x8033))?.value == [2, 0, 4, 40] && draftAnswer?.attribute(.addressErrorCode) == nil)
        // With both families: two relayed addresses, and peers of either family.
        io.relayFamilies = [.v4, .v6]
        let dual = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5003)!)
        let both = allocate(dual, extra: [STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0])])
        #expect(both?.attributes.filter { $0.type == .xorRelayedAddress }.count == 2)
        #expect(permission(dual, TransportAddress("2001:4860::1", 9)!)?.messageClass == .success)
        #expect(permission(dual, peer)?.messageClass == .success)
        // coturn before 4.10 asks with the draft's code point (0x8032), and gets the same.
        let draft = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5004)!)
        let viaDraft = allocate(draft, user: "bob", password: "otherpw", extra: [STUNAttribute(type: STUNAttributeType(rawValue: 0x8032), value: [2, 0, 0, 0])])
        #expect(viaDraft?.attributes.filter { $0.type == .xorRelayedAddress }.count == 2)
        // Asking for both ways at once is a bad request.
        let odd = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.11", 5000)!)
        #expect(code(allocate(odd, user: "bob", password: "otherpw", extra: [
            STUNAttribute(type: .requestedAddressFamily, value: [1, 0, 0, 0]), STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0]),
        ])) == 400)
    }

    @Test func eachHalfOfADualAllocationIsRefreshedOrDeletedOnItsOwn() throws {
        io.relayFamilies = [.v4, .v6]
        let r = allocate(alice, extra: [STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0])])
        #expect(r?.attributes.filter { $0.type == .xorRelayedAddress }.count == 2 && io.open.count == 2)
        func refresh(_ family: UInt8?, _ lifetime: UInt32, at time: UInt64) -> STUNMessage? {
            var attributes: [STUNAttribute] = [.uint32(.lifetime, lifetime)]
            if let family { attributes.append(STUNAttribute(type: .requestedAddressFamily, value: [family, 0, 0, 0])) }
            return send(STUNMessage(method: .refresh, messageClass: .request, attributes: attributes), from: alice, at: time)
        }
        // IPv4 refreshed to 1200 s: IPv6 still ends at 600 s, and the allocation lives on without it.
        #expect(refresh(1, 1_200, at: now)?.attribute(.lifetime)?.uint32Value == 1_200)
        server.tick(now: now + 601_000_000_000)
        #expect(server.allocationCount == 1 && io.open.values.allSatisfy(\.ip.isIPv4))
        #expect(code(refresh(2, 600, at: now + 602_000_000_000)) == 443)
        #expect(code(permission(alice, TransportAddress("2001:4860::1", 9)!)) == 443)
        server.tick(now: now + 1_201_000_000_000)
        #expect(server.allocationCount == 0 && io.open.isEmpty)
        // Lifetime 0 with a family deletes that half only; without one, everything.
        let dual = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5009)!)
        _ = allocate(dual, extra: [STUNAttribute(type: .additionalAddressFamily, value: [2, 0, 0, 0])])
        let id = STUNTransactionID.random()
        let deleteV6 = STUNMessage(method: .refresh, messageClass: .request, transactionID: id, attributes: [
            .uint32(.lifetime, 0), STUNAttribute(type: .requestedAddressFamily, value: [2, 0, 0, 0]),
        ])
        #expect(send(deleteV6, from: dual)?.messageClass == .success)
        #expect(server.allocationCount == 1 && io.open.count == 1 && io.open.values.first!.ip.isIPv4)
        #expect(send(STUNMessage(method: .refresh, messageClass: .request, attributes: [.uint32(.lifetime, 0)]), from: dual)?.messageClass == .success)
        #expect(server.allocationCount == 0 && io.open.isEmpty)
    }

    @Test func allocationsExpire() throws {
        _ = allocate(alice)
        server.tick(now: now + 599_000_000_000)
        #expect(server.allocationCount == 1)
        server.tick(now: now + 601_000_000_000)
        #expect(server.allocationCount == 0 && io.open.isEmpty)
    }

    @Test func garbageGetsNoAnswer() {
        for junk: [UInt8] in [[], [0, 1], [0xFF, 0xFF, 0xFF, 0xFF], Array(repeating: 0, count: 20), [0x40, 0x00, 0xFF, 0xFF, 1]] {
            junk.withUnsafeBytes { server.receive($0, from: mallory, now: now, unixNow: unix) }
        }
        #expect(io.toClients.isEmpty && io.toPeers.isEmpty)
    }
}

@Suite struct TURNStreamFramerTests {
    @Test func splitsSTUNAndPaddedChannelData() {
        var framer = TURNStreamFramer()
        let stun = STUNMessage(method: .binding, messageClass: .request).encode(integrity: nil, fingerprint: false)
        let channel: [UInt8] = [0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0]  // padded to 4 on a stream
        let stream = stun + channel + stun
        for cut in [1, 5, 21, stream.count] {
            var got: [[UInt8]] = []
            var i = 0
            framer = TURNStreamFramer()
            while i < stream.count {
                let end = min(i + cut, stream.count)
                stream[i..<end].withUnsafeBytes { framer.append($0) }
                loop: while true {
                    switch framer.next() {
                    case .message(let m): got.append(Array(m))
                    case .needMore: break loop
                    case .invalid: Issue.record("invalid")
                        break loop
                    }
                }
                i = end
            }
            #expect(got == [stun, [0x40, 0x00, 0x00, 0x03, 1, 2, 3], stun], "cut \(cut)")
        }
        var bad = TURNStreamFramer()
        ([0x80, 0, 0, 0] as [UInt8]).withUnsafeBytes { bad.append($0) }
        guard case .invalid = bad.next() else {
            Issue.record("a stream starting 0b10 was accepted")
            return
        }
    }

    @Test func theBandwidthCapRefillsAfterHoursIdle() {
        // Refreshes keep an allocation for a day without a packet; the first one after five hours
        // scaled 1.8e13 ns by 1 MB/s and overflowed (a trap) before the refill stopped at a second.
        let hour: UInt64 = 3_600_000_000_000
        var bucket = ByteBucket(rate: 1_000_000, now: 0)
        let taken = [bucket.take(1_000_000, now: 1), bucket.take(1, now: 2), bucket.take(1_000_000, now: 24 * hour), bucket.take(1, now: 24 * hour)]
        #expect(taken == [true, false, true, false])
        let pause = bucket.charge(2_000, now: 24 * hour + 1)
        #expect(pause == 2_000_000)
    }
}
