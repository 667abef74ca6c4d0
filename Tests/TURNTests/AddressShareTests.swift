import RTC
import TURNCore
import Testing

@Suite struct AddressShareTests {
    let io = RecordingIO()
    let server: TURNServer
    let now: UInt64 = 1_000_000_000
    let unix: UInt64 = 1_800_000_000

    init() {
        var config = TURNConfig()
        config.users = ["alice": "secretpw", "bob": "otherpw"]
        config.maxAllocationsPerAddress = 2
        let auth = Authenticator(realm: "atrium", users: config.users, secrets: ["s3cr3t"], nonceSeconds: 600)
        server = TURNServer(config: config, auth: auth, policy: PeerPolicy(), metrics: TURNMetrics(), io: io)
    }

    func client(_ ip: String, _ port: UInt16) -> ClientKey { ClientKey(.udp(listener: 0), TransportAddress(ip, Int(port))!) }

    func request(_ method: STUNMethod, _ attributes: [STUNAttribute], from client: ClientKey, user: String, password: String) -> Int? {
        var m = STUNMessage(method: method, messageClass: .request, attributes: attributes)
        m.attributes += [.string(.username, user), .string(.realm, "atrium"), .string(.nonce, server.auth.nonce(for: client.address.ip, now: unix))]
        let integrity = STUNIntegrity.sha1(key: STUNIntegrity.longTerm(username: user, realm: "atrium", password: password))
        let before = io.toClients.count
        m.encode(integrity: integrity, fingerprint: true).withUnsafeBytes { server.receive($0, from: client, now: now, unixNow: unix) }
        guard io.toClients.count > before, let answer = try? io.lastResponse() else { return -1 }
        return answer.messageClass == .success ? nil : answer.attribute(.errorCode)?.errorCodeValue?.code
    }

    func allocate(_ client: ClientKey, user: String = "alice", password: String = "secretpw") -> Int? {
        request(.allocate, [.uint32(.requestedTransport, 17 << 24)], from: client, user: user, password: password)
    }

    @Test func oneAddressAtItsShareLeavesRelaysForOthers() {
        #expect(allocate(client("192.0.2.10", 5000)) == nil)
        #expect(allocate(client("192.0.2.10", 5001), user: "bob", password: "otherpw") == nil)
        // Whatever the credentials, the address has its two.
        #expect(allocate(client("192.0.2.10", 5002)) == 486)
        #expect(allocate(client("192.0.2.10", 5003), user: "bob", password: "otherpw") == 486)
        #expect(allocate(client("192.0.2.11", 5000)) == nil)
        // A deleted allocation frees its place.
        #expect(request(.refresh, [.uint32(.lifetime, 0)], from: client("192.0.2.10", 5000), user: "alice", password: "secretpw") == nil)
        #expect(allocate(client("192.0.2.10", 5002)) == nil)
    }

    @Test func addressesAreKeyedAsTheHostKeysThem() {
        #expect(IPAddress("203.0.113.7")!.shareKey == "203.0.113.7")
        #expect(IPAddress("2001:db8:1:2:aaaa::1")!.shareKey == "2001:db8:1:2::/64")
        #expect(IPAddress("2001:db8:1:2:bbbb::9")!.shareKey == IPAddress("2001:db8:1:2::1")!.shareKey)
        #expect(IPAddress("::ffff:198.51.100.4")!.shareKey == "198.51.100.4")
    }

    @Test func theConfigReadsTheNewKeys() throws {
        let defaults = try TURNConfig([:])
        #expect(defaults.maxAllocationsPerAddress == 40 && defaults.credentialsNeedMeeting && defaults.credentialsPerAddressPerMinute == 10)
        let c = try TURNConfig(["max_allocations_per_address": 3, "credentials_need_meeting": false, "credentials_per_address_per_minute": 2])
        #expect(c.maxAllocationsPerAddress == 3 && !c.credentialsNeedMeeting && c.credentialsPerAddressPerMinute == 2)
        #expect(throws: TURNConfigError.self) { try TURNConfig(["max_allocations_per_address": 0]) }
        #expect(throws: TURNConfigError.self) { try TURNConfig(["credentials_need_meeting": "yes"]) }
    }
}
