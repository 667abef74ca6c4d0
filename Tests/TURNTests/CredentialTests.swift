import RTC
import Testing
@testable import TURNCore

/// RFC 8489 long-term credentials: the nonce cookie, PASSWORD-ALGORITHMS negotiation, SHA-256
/// keys, MESSAGE-INTEGRITY-SHA256 and USERHASH, next to the MD5 path every browser uses.
@Suite struct CredentialTests {
    let io = RecordingIO()
    let server: TURNServer
    let alice = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5000)!)
    let now: UInt64 = 1_000_000_000
    let unix: UInt64 = 1_800_000_000
    /// PASSWORD-ALGORITHMS as this server sends it: SHA-256, then MD5, each without parameters.
    static let offered: [UInt8] = [0, 2, 0, 0, 0, 1, 0, 0]

    init() {
        let auth = Authenticator(realm: "atrium", users: ["alice": "secretpw"], secrets: ["s3cr3t"], nonceSeconds: 600)
        server = TURNServer(config: TURNConfig(), auth: auth, policy: PeerPolicy(), metrics: TURNMetrics(), io: io)
    }

    /// How a test client signs: which identity attribute, which password algorithm attributes,
    /// which MAC with which key.
    struct Signing {
        var username: String = "alice"
        var password: String = "secretpw"
        var userhash = false
        /// PASSWORD-ALGORITHM's value, and PASSWORD-ALGORITHMS' (nil: leave the attribute out).
        var algorithm: [UInt8]? = [0, 2, 0, 0]
        var algorithms: [UInt8]? = CredentialTests.offered
        var keyAlgorithm = PasswordAlgorithm.sha256
        var sha256MAC = true
        var nonce: String?
    }

    func allocateRequest() -> STUNMessage {
        STUNMessage(method: .allocate, messageClass: .request, attributes: [.uint32(.requestedTransport, 17 << 24)])
    }

    /// Sends `message` signed as `signing` says; the parsed answer and its raw bytes.
    func send(_ message: STUNMessage, _ signing: Signing, from client: ClientKey? = nil) -> (STUNMessage, ParsedSTUNMessage)? {
        let client = client ?? alice
        var m = message
        if signing.userhash {
            m.attributes.append(STUNAttribute(type: .userhash, value: Authenticator.userhash(username: signing.username, realm: "atrium")!))
        } else {
            m.attributes.append(.string(.username, signing.username))
        }
        m.attributes += [.string(.realm, "atrium"), .string(.nonce, signing.nonce ?? server.auth.nonce(for: client.address.ip, now: unix))]
        if let a = signing.algorithm { m.attributes.append(STUNAttribute(type: .passwordAlgorithm, value: a)) }
        if let list = signing.algorithms { m.attributes.append(STUNAttribute(type: .passwordAlgorithms, value: list)) }
        let key = Authenticator.key(username: signing.username, realm: "atrium", password: signing.password, algorithm: signing.keyAlgorithm)!
        let before = io.toClients.count
        m.encode(integrity: signing.sha256MAC ? .sha256(key: key) : .sha1(key: key), fingerprint: true)
            .withUnsafeBytes { server.receive($0, from: client, now: now, unixNow: unix) }
        guard io.toClients.count > before, let parsed = try? STUNMessage.parse(io.toClients.last!.1) else { return nil }
        return (parsed.message, parsed)
    }

    func code(_ r: (STUNMessage, ParsedSTUNMessage)?) -> Int? { r?.0.attribute(.errorCode)?.errorCodeValue?.code }

    // MARK: - The challenge

    @Test func theChallengeOffersSHA256AndMD5InANonceThatSaysSo() throws {
        allocateRequest().encode(integrity: nil, fingerprint: true).withUnsafeBytes { server.receive($0, from: alice, now: now, unixNow: unix) }
        let r = try io.lastResponse()
        #expect(r.attribute(.errorCode)?.errorCodeValue?.code == 401)
        #expect(r.attribute(.passwordAlgorithms)?.value == Self.offered)
        let nonce = try #require(r.attribute(.nonce)?.stringValue)
        // "AAAB": the 24 feature bits with bit 0, password algorithms, the least significant.
        #expect(nonce.hasPrefix("obMatJos2AAAB") && nonce.count == 53)
        #expect(Authenticator.SecurityFeatures(nonce: nonce) == .passwordAlgorithms)
        #expect(r.attribute(.messageIntegrity) == nil && r.attribute(.messageIntegritySHA256) == nil)
    }

    @Test func securityFeaturesAreReadFromTheCookieOnly() {
        #expect(Authenticator.SecurityFeatures(nonce: "obMatJos2AAADxyz") == [.passwordAlgorithms, .usernameAnonymity])
        #expect(Authenticator.SecurityFeatures(nonce: "obMatJos2AAAC") == .usernameAnonymity)
        #expect(Authenticator.SecurityFeatures(nonce: "f//499k954d6OL34oL9FSTvy64sA").isEmpty)
        #expect(Authenticator.SecurityFeatures(nonce: "obMatJos2AA").isEmpty)
        #expect(Authenticator.SecurityFeatures(nonce: "obMatJos2AA!B").isEmpty)
    }

    // MARK: - SHA-256 clients

    @Test func aSHA256ClientAllocatesAndEveryAnswerCarriesMessageIntegritySHA256() throws {
        let r = try #require(send(allocateRequest(), Signing()))
        #expect(r.0.messageClass == .success)
        let key = Authenticator.key(username: "alice", realm: "atrium", password: "secretpw", algorithm: .sha256)!
        #expect(key.count == 32 && key == sha256(Array("alice:atrium:secretpw".utf8)))
        #expect(r.1.integrityOffset == nil && r.1.verifySHA256Integrity(key: key))
        // Later requests, and errors to them, are answered the same way.
        let refresh = try #require(send(STUNMessage(method: .refresh, messageClass: .request, attributes: [.uint32(.lifetime, 600)]), Signing()))
        #expect(refresh.0.messageClass == .success && refresh.1.verifySHA256Integrity(key: key))
        let again = try #require(send(allocateRequest(), Signing()))
        #expect(code(again) == 437 && again.1.verifySHA256Integrity(key: key))
    }

    @Test func restCredentialsWorkWithSHA256Keys() throws {
        let name = "\(unix + 600):bob"
        let password = Authenticator.restPassword(secret: "s3cr3t", username: name)
        let r = try #require(send(allocateRequest(), Signing(username: name, password: password)))
        #expect(r.0.messageClass == .success)
        #expect(r.1.verifySHA256Integrity(key: Authenticator.key(username: name, realm: "atrium", password: password, algorithm: .sha256)!))
        let expired = "\(unix - 1):bob"
        let other = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5001)!)
        #expect(code(send(allocateRequest(), Signing(username: expired, password: Authenticator.restPassword(secret: "s3cr3t", username: expired)), from: other)) == 401)
    }

    @Test func anMD5KeyUnderSHA256AnswersIs401() {
        // The client says SHA-256 but keys with MD5: the integrity does not verify.
        #expect(code(send(allocateRequest(), Signing(keyAlgorithm: .md5))) == 401)
        #expect(server.metrics.authFailures.load(ordering: .relaxed) == 1)
    }

    @Test func usernameOrUserhashIdentifyTheSameUser() throws {
        let r = try #require(send(allocateRequest(), Signing(userhash: true)))
        #expect(r.0.messageClass == .success)
        // The allocation is alice's: her USERNAME may refresh it, so no 441.
        #expect(send(STUNMessage(method: .refresh, messageClass: .request), Signing())?.0.messageClass == .success)
        // A hash of nobody is refused as an unknown user would be.
        let other = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5001)!)
        #expect(code(send(allocateRequest(), Signing(username: "mallory", userhash: true), from: other)) == 401)
    }

    // MARK: - Downgrades and unknown algorithms

    @Test(arguments: [
        ("PASSWORD-ALGORITHMS without SHA-256", [0, 1, 0, 0] as [UInt8]?, [0, 1, 0, 0] as [UInt8]?),
        ("PASSWORD-ALGORITHMS reordered", [0, 1, 0, 0], [0, 1, 0, 0, 0, 2, 0, 0]),
        ("PASSWORD-ALGORITHM alone", [0, 2, 0, 0], nil),
        ("PASSWORD-ALGORITHMS alone", nil, CredentialTests.offered),
        ("an algorithm nobody offered", [0, 3, 0, 0], CredentialTests.offered),
        ("parameters where none belong", [0, 2, 0, 4], CredentialTests.offered),
    ])
    func aTamperedNegotiationIs400(what: String, algorithm: [UInt8]?, algorithms: [UInt8]?) {
        let keyAlgorithm: PasswordAlgorithm = algorithm == [0, 1, 0, 0] ? .md5 : .sha256
        let r = send(allocateRequest(), Signing(algorithm: algorithm, algorithms: algorithms, keyAlgorithm: keyAlgorithm))
        #expect(code(r) == 400, "\(what)")
        #expect(r?.0.attribute(.nonce) == nil && server.allocationCount == 0, "\(what)")
    }

    @Test func aNonceStrippedOfItsFeatureBitsIsStale() {
        // A man in the middle rewrites "AAAB" to "AAAA" (and drops PASSWORD-ALGORITHMS), so that
        // the client believes MD5 is all there is: the nonce no longer verifies.
        let genuine = server.auth.nonce(for: alice.address.ip, now: unix)
        let stripped = "obMatJos2AAAA" + genuine.dropFirst(13)
        let r = send(allocateRequest(), Signing(algorithm: nil, algorithms: nil, keyAlgorithm: .md5, sha256MAC: false, nonce: stripped))
        #expect(code(r) == 438)
        #expect(r?.0.attribute(.nonce)?.stringValue?.hasPrefix("obMatJos2AAAB") == true)
    }

    // MARK: - MD5 clients

    @Test func md5ClientsAreAnsweredWithMessageIntegrity() throws {
        let r = try #require(send(allocateRequest(), Signing(algorithm: nil, algorithms: nil, keyAlgorithm: .md5, sha256MAC: false)))
        #expect(r.0.messageClass == .success)
        #expect(r.1.integritySHA256Offset == nil && r.1.verifyIntegrity(key: STUNIntegrity.longTerm(username: "alice", realm: "atrium", password: "secretpw")))
        // An RFC 5389 client that signs with MESSAGE-INTEGRITY-SHA256 but negotiates nothing has
        // an MD5 key, and RFC 8489 §9.2.4 answers it with MESSAGE-INTEGRITY.
        let other = ClientKey(.udp(listener: 0), TransportAddress("192.0.2.10", 5001)!)
        let mixed = try #require(send(allocateRequest(), Signing(algorithm: nil, algorithms: nil, keyAlgorithm: .md5, sha256MAC: true), from: other))
        #expect(mixed.0.messageClass == .success && mixed.1.integrityOffset != nil && mixed.1.integritySHA256Offset == nil)
    }

    @Test func withSHA256TurnedOffNothingIsOfferedAndNothingNegotiated() throws {
        let auth = Authenticator(realm: "atrium", users: ["alice": "secretpw"], secrets: [], nonceSeconds: 600, sha256: false)
        let challenge = auth.challenge(for: alice.address.ip, now: unix)
        #expect(challenge.map(\.type) == [.realm, .nonce])
        #expect(challenge[1].stringValue?.hasPrefix("obMatJos2AAAA") == true)
        var m = allocateRequest()
        m.attributes += [.string(.username, "alice"), .string(.realm, "atrium"), challenge[1], STUNAttribute(type: .passwordAlgorithm, value: [0, 2, 0, 0])]
        let key = Authenticator.key(username: "alice", realm: "atrium", password: "secretpw", algorithm: .sha256)!
        let parsed = try STUNMessage.parse(m.encode(integrity: .sha256(key: key), fingerprint: false))
        guard case .badRequest = auth.verify(parsed, client: alice.address.ip, now: unix) else {
            Issue.record("SHA-256 accepted while turned off")
            return
        }
    }

    // MARK: - RFC 8489 Appendix B

    /// Appendix B.1 as corrected by erratum 6268 (the printed one lacks PASSWORD-ALGORITHM and its
    /// MAC does not verify): a Binding request with USERHASH, NONCE, REALM, PASSWORD-ALGORITHM
    /// SHA-256 and MESSAGE-INTEGRITY-SHA256, user "マトリックス", realm "example.org",
    /// password "TheMatrIX".
    static let appendixB: [UInt8] = [
        0x00, 0x01, 0x00, 0x90, 0x21, 0x12, 0xA4, 0x42, 0x78, 0xAD, 0x34, 0x33, 0xC6, 0xAD, 0x72, 0xC0, 0x29, 0xDA, 0x41, 0x2E,
        0x00, 0x1E, 0x00, 0x20,
        0x4A, 0x3C, 0xF3, 0x8F, 0xEF, 0x69, 0x92, 0xBD, 0xA9, 0x52, 0xC6, 0x78, 0x04, 0x17, 0xDA, 0x0F,
        0x24, 0x81, 0x94, 0x15, 0x56, 0x9E, 0x60, 0xB2, 0x05, 0xC4, 0x6E, 0x41, 0x40, 0x7F, 0x17, 0x04,
        0x00, 0x15, 0x00, 0x29,
    ] + Array("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA".utf8) + [0, 0, 0] + [
        0x00, 0x14, 0x00, 0x0B,
    ] + Array("example.org".utf8) + [0] + [
        0x00, 0x1D, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x1C, 0x00, 0x20,
        0xB5, 0xC7, 0xBF, 0x00, 0x5B, 0x6C, 0x52, 0xA2, 0x1C, 0x51, 0xC5, 0xE8, 0x92, 0xF8, 0x19, 0x24,
        0x13, 0x62, 0x96, 0xCB, 0x92, 0x7C, 0x43, 0x14, 0x93, 0x09, 0x27, 0x8C, 0xC6, 0x51, 0x8E, 0x65,
    ]
    static let matrix = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}"

    @Test func appendixBUserhashAndMessageIntegritySHA256Verify() throws {
        #expect(Authenticator.userhash(username: Self.matrix, realm: "example.org") == Array(Self.appendixB[24..<56]))
        let auth = Authenticator(realm: "example.org", users: [Self.matrix: "TheMatrIX"], secrets: [], nonceSeconds: 600)
        let parsed = try STUNMessage.parse(Self.appendixB)
        let key = try #require(Authenticator.key(username: Self.matrix, realm: "example.org", password: "TheMatrIX", algorithm: .sha256))
        #expect(parsed.verifySHA256Integrity(key: key))
        #expect(Authenticator.SecurityFeatures(nonce: "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA") == .usernameAnonymity)
        // Through the server's checks: user found by hash, SHA-256 key, MAC right; only the
        // nonce is not one this server made, so the answer would be 438, not 401.
        guard case .staleNonce = auth.verify(parsed, client: .v4(0xC000_0201), now: unix) else {
            Issue.record("the Appendix B request did not verify")
            return
        }
        var broken = Self.appendixB
        broken[broken.count - 1] ^= 1
        guard case .refused = auth.verify(try STUNMessage.parse(broken), client: .v4(0xC000_0201), now: unix) else {
            Issue.record("a wrong MESSAGE-INTEGRITY-SHA256 passed")
            return
        }
    }

    // MARK: - OpaqueString

    @Test func opaqueStringMapsSpacesNormalizesAndRefuses() {
        #expect(OpaqueString.prepare("TheMatrIX") == "TheMatrIX")
        #expect(OpaqueString.prepare("a\u{00A0}b\u{3000}c") == "a b c")            // non-ASCII spaces
        #expect(OpaqueString.prepare("e\u{0301}") == "\u{00E9}")                    // NFC
        #expect(OpaqueString.prepare("\u{2168}\u{00AA}") == "\u{2168}\u{00AA}")    // NFC, not NFKC
        #expect(OpaqueString.prepare("The\u{00AD}M\u{00AA}tr\u{2168}") == nil)     // soft hyphen: default-ignorable
        #expect(OpaqueString.prepare("tab\there") == nil)                           // control
        #expect(OpaqueString.prepare("\u{E000}") == nil)                            // private use
        #expect(OpaqueString.prepare("") == nil)
        #expect(Authenticator.key(username: "u", realm: "r", password: "bad\u{0007}", algorithm: .sha256) == nil)
    }
}
