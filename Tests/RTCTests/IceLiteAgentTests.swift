import Testing
@testable import RTC

@Suite struct IceLiteAgentTests {
    let local = IceCredentials(ufrag: "srvU", password: "server-password-0123456789")
    let remote = IceCredentials(ufrag: "cliU", password: "client-password-0123456789")
    let address = TransportAddress("192.0.2.10", 50_000)!
    var peer: IcePath { .udp(address) }

    func check(username: String? = nil, password: String? = nil, nominate: Bool = false) -> ([UInt8], STUNTransactionID) {
        let id = STUNTransactionID.random()
        var attributes: [STUNAttribute] = [
            .string(.username, username ?? "\(local.ufrag):\(remote.ufrag)"),
            .uint32(.priority, 100),
            .uint64(.iceControlling, 42),
        ]
        if nominate { attributes.append(STUNAttribute(type: .useCandidate, value: [])) }
        let m = STUNMessage(method: .binding, messageClass: .request, transactionID: id, attributes: attributes)
        return (m.encode(integrity: .shortTerm(password: password ?? local.password)), id)
    }

    @Test func answersAValidCheckAndSelectsTheNominatedPair() throws {
        var agent = IceLiteAgent(local: local, remote: remote, now: 0)
        let (request, id) = check(nominate: true)
        guard case .respond(let bytes) = agent.handle(request, from: peer, now: 1) else {
            Issue.record("no response")
            return
        }
        let response = try STUNMessage.parse(bytes)
        #expect(response.message.messageClass == .success && response.message.transactionID == id)
        #expect(response.verifyIntegrity(key: Array(local.password.utf8)) && response.fingerprintIsValid)
        #expect(response.message.attribute(.xorMappedAddress)?.xorAddress(transactionID: id) == address)
        #expect(agent.state == .connected && agent.selected == peer)
        #expect(IceLiteAgent.localUfrag(of: try STUNMessage.parse(request)) == local.ufrag)
    }

    @Test func strangersGetNothing() {
        var agent = IceLiteAgent(local: local, remote: remote, now: 0)
        let cases: [[UInt8]] = [
            check(password: "wrong-password-xxxxxxxxxx").0,
            check(username: "other:\(remote.ufrag)").0,
            check(username: "\(local.ufrag):someoneelse").0,
            check(username: "nocolon").0,
            [0x00, 0x01, 0x00],
            [UInt8](repeating: 0, count: 20),
        ]
        for c in cases {
            guard case .ignore = agent.handle(c, from: peer, now: 1) else {
                Issue.record("answered \(c.prefix(8))")
                continue
            }
        }
        #expect(agent.state == .checking && agent.selected == nil && agent.validPaths.isEmpty)
    }

    @Test func consentExpiresWithoutChecks() {
        var agent = IceLiteAgent(local: local, remote: remote, now: 0, consentTimeoutSeconds: 30)
        _ = agent.handle(check(nominate: true).0, from: peer, now: 1_000_000_000)
        let early = agent.checkConsent(now: 20_000_000_000)
        #expect(!early)
        _ = agent.handle(check().0, from: peer, now: 25_000_000_000)  // a consent check refreshes it
        let refreshed = agent.checkConsent(now: 50_000_000_000)
        #expect(!refreshed)
        let expired = agent.checkConsent(now: 56_000_000_000)
        #expect(expired)
        #expect(agent.state == .failed && agent.selected == nil)
        guard case .ignore = agent.handle(check().0, from: peer, now: 57_000_000_000) else {
            Issue.record("a failed agent answered")
            return
        }
    }

    @Test func laterNominationMovesTheSelectedPair() {
        var agent = IceLiteAgent(local: local, remote: remote, now: 0)
        let other = IcePath.tcp(TransportAddress("198.51.100.7", 40_000)!)
        _ = agent.handle(check().0, from: peer, now: 1)
        #expect(agent.selected == peer)
        _ = agent.handle(check(nominate: true).0, from: other, now: 2)
        #expect(agent.selected == other && agent.validPaths == [peer, other])
    }

    @Test func restartNeedsTheNewCredentials() {
        let agent = IceLiteAgent(local: local, remote: remote, now: 0)
        var restarted = agent.restart(local: .random(), remote: .random(), now: 5)
        guard case .ignore = restarted.handle(check(nominate: true).0, from: peer, now: 6) else {
            Issue.record("old credentials accepted after a restart")
            return
        }
        #expect(restarted.state == .checking)
    }

    @Test func aTimeoutOutsideDoubleToIntegerRangeDoesNotTrap() {
        // `UInt64(seconds * 1e9)` trapped on each of these.
        for seconds in [-1, .nan, .infinity, 1e300] as [Double] {
            let agent = IceLiteAgent(now: 0, consentTimeoutSeconds: seconds)
            #expect(agent.consentTimeout <= 86_400_000_000_000)
        }
        #expect(IceLiteAgent(now: 0, consentTimeoutSeconds: 30).consentTimeout == 30_000_000_000)
    }
}
