import RTC
import TURNCore

/// A script of client and peer traffic to a fresh TURN server: raw UDP datagrams, requests the
/// harness signs with a valid long-term credential and a fresh nonce (so that fuzzing reaches past
/// authentication), TCP stream bytes through the stream framer, datagrams from peers, the clock
/// moving on, and connections closing. Everything the server sends a client must decode.
public func fuzzTURN(_ data: UnsafeRawBufferPointer) {
    var input = FuzzInput(data)
    var script = TURNScript()
    while !input.isEmpty {
        script.step(&input)
    }
    script.server.closeAll()
}

/// The server under test, its fake sockets, and the clients and peers a script talks as.
private struct TURNScript {
    let io = DiscardingTURNIO()
    let auth = Authenticator(realm: "atrium", users: ["fuzz": "fuzz-password"], secrets: ["s3cr3t"], nonceSeconds: 600)
    let server: TURNServer
    var now: UInt64 = 1_000_000_000
    var unixNow: UInt64 = 1_800_000_000
    var framers: [TURNStreamFramer] = [TURNStreamFramer(), TURNStreamFramer()]
    /// Two UDP clients and two stream connections, all from documentation addresses.
    let clients = [
        ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5000)!),
        ClientKey(.udp(listener: 0), TransportAddress("2001:db8::10", 5000)!),
        ClientKey(.stream(connection: 1), TransportAddress("192.0.2.10", 5001)!),
        ClientKey(.stream(connection: 2), TransportAddress("192.0.2.11", 5002)!),
    ]
    let peers = [TransportAddress("203.0.113.9", 7000)!, TransportAddress("2001:db8::9", 7000)!]

    init() {
        var config = TURNConfig()
        config.users = ["fuzz": "fuzz-password"]
        config.maxAllocationsPerUser = 4
        config.maxTCPConnectionsPerAllocation = 4
        config.bandwidthBytesPerSecond = 100_000
        // Every peer allowed: the sockets are fake, and the fuzzer should reach relaying.
        server = TURNServer(config: config, auth: auth, policy: PeerPolicy(allowed: [CIDR("0.0.0.0/0")!, CIDR("::/0")!]), metrics: TURNMetrics(), io: io)
        server.ownAddresses = [.v4(0xC633_6401)]
        server.ownPorts = [3478]
    }

    mutating func step(_ input: inout FuzzInput) {
        let op = input.byte()
        let client = clients[Int(op >> 4) % clients.count]
        switch op & 0x0F {
        case 0, 1:
            server.receive(input.record(), from: client, now: now, unixNow: unixNow)
        case 2, 3:
            guard let signed = sign(input.record(), for: client, user: op & 1 == 0 ? "fuzz" : nil) else { return }
            deliver(signed, from: client)
        case 4, 5:
            let index = Int(op >> 4) % framers.count
            framers[index].append(input.record())
            frame(index)
        case 6:
            let relay = RelayID(UInt64(input.byte() % 8))
            server.receiveFromPeer(input.record(), relay: relay, peer: peers[Int(op >> 4) % peers.count], now: now)
        case 7:
            let step = UInt64(input.uint16()) * 10_000_000
            now &+= step
            unixNow &+= step / 1_000_000_000
            server.tick(now: now)
        case 8:
            server.clientClosed(client)
        case 9:
            let socket = PeerSocketID(UInt64(input.byte() % 16))
            switch input.byte() % 4 {
            case 0: server.peerConnectFinished(socket, connected: true, now: now)
            case 1: server.peerConnectFinished(socket, connected: false, now: now)
            case 2: _ = server.peerConnectionAccepted(on: RelayID(UInt64(input.byte() % 8)), socket: socket, peer: peers[0], now: now)
            default: server.peerConnectionClosed(socket)
            }
        default:
            server.receive(input.record(), from: client, now: now, unixNow: unixNow)
        }
        for reply in io.takeReplies() where reply.count >= 4 && reply[0] & 0xC0 == 0 {
            guard (try? STUNMessage.parse(reply)) != nil else { fuzzFailure("the server sent a message that does not decode") }
        }
    }

    /// Feeds what the framer of stream client `index` has whole; an invalid stream ends the connection.
    mutating func frame(_ index: Int) {
        let client = clients[2 + index]
        while true {
            switch framers[index].next() {
            case .message(let message): message.withUnsafeBytes { server.receive($0, from: client, now: now, unixNow: unixNow) }
            case .needMore: return
            case .invalid:
                server.clientClosed(client)
                framers[index] = TURNStreamFramer()
                return
            }
        }
    }

    func deliver(_ bytes: [UInt8], from client: ClientKey) {
        bytes.withUnsafeBytes { server.receive($0, from: client, now: now, unixNow: unixNow) }
    }

    /// `bytes` as a request with USERNAME, REALM, a fresh NONCE, MESSAGE-INTEGRITY and FINGERPRINT
    /// made right; `user` nil signs as a REST (time-limited) user instead.
    func sign(_ bytes: UnsafeRawBufferPointer, for client: ClientKey, user: String?) -> [UInt8]? {
        guard bytes.count <= 60_000, var message = try? STUNMessage.parse(Array(bytes)).message else { return nil }
        let name = user ?? auth.mint(user: "fuzz", ttlSeconds: 600, now: unixNow)?.username ?? "fuzz"
        guard let key = auth.keys(for: name, now: unixNow).first else { return nil }
        message.attributes.removeAll { [.username, .realm, .nonce].contains($0.type) }
        message.attributes += [.string(.username, name), .string(.realm, "atrium"), .string(.nonce, auth.nonce(for: client.address.ip, now: unixNow))]
        return message.encode(integrity: .sha1(key: key), fingerprint: true)
    }
}

/// Sockets that are not there: relays are numbers, peer connections start and nothing is sent.
/// What the server sends clients is kept until the script checks it.
private final class DiscardingTURNIO: TURNIO {
    private var replies: [[UInt8]] = []
    private var next: UInt64 = 1
    private var open: [RelayID: TransportAddress] = [:]
    var relayFamilies: Set<AddressFamily> = [.v4, .v6]

    func takeReplies() -> [[UInt8]] {
        defer { replies.removeAll(keepingCapacity: true) }
        return replies
    }

    func sendToClient(_ bytes: [UInt8], _ client: ClientKey) { replies.append(bytes) }

    private func relay(_ family: AddressFamily, port: UInt16) -> (RelayID, TransportAddress) {
        let id = RelayID(next)
        next += 1
        let ip: IPAddress = family == .v4 ? .v4(0xC633_6401) : IPAddress("2001:db8::1")!
        let address = TransportAddress(ip: ip, port: port)
        open[id] = address
        return (id, address)
    }

    func openRelay(family: AddressFamily, evenPort: Bool, reserveNext: Bool) -> (relay: RelayID, address: TransportAddress, reserved: (RelayID, TransportAddress)?)? {
        let first = relay(family, port: UInt16(50_000 + 2 * (next % 1000)))
        return (first.0, first.1, reserveNext ? relay(family, port: first.1.port + 1) : nil)
    }

    func openTCPRelay(family: AddressFamily) -> (relay: RelayID, address: TransportAddress)? {
        relay(family, port: UInt16(50_000 + 2 * (next % 1000)))
    }

    func closeRelay(_ id: RelayID) { open.removeValue(forKey: id) }
    func isRelay(_ address: TransportAddress) -> Bool { open.values.contains(address) }
    func sendToPeer(_ bytes: UnsafeRawBufferPointer, from relay: RelayID, to peer: TransportAddress) -> Bool { true }

    func connectPeer(from relay: RelayID, to peer: TransportAddress) -> PeerSocketID? {
        defer { next += 1 }
        return PeerSocketID(next)
    }

    func closePeerConnection(_ socket: PeerSocketID) {}
    func bindDataConnection(_ socket: PeerSocketID, to client: ClientKey) {}
}
