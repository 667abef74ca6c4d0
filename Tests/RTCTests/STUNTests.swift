import Testing
@testable import RTC

/// RFC 5769 test vectors and the rules of RFC 8489.
@Suite struct STUNTests {
    static func hex(_ s: String) -> [UInt8] { hexBytes(s) }

    /// RFC 5769 §2.1: a Binding request with short-term credentials.
    static let sampleRequest = hex("""
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """)

    /// RFC 5769 §2.2: the IPv4 response.
    static let sampleResponse = hex("""
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """)

    static let password = Array("VOkJxbRl1RmTxUk/WvJxBt".utf8)

    @Test func parsesAndVerifiesTheRFC5769Request() throws {
        let parsed = try STUNMessage.parse(Self.sampleRequest)
        #expect(parsed.message.method == .binding && parsed.message.messageClass == .request)
        #expect(parsed.message.attribute(.username)?.stringValue == "evtj:h6vY")
        #expect(parsed.message.attribute(.priority)?.uint32Value == 0x6E00_01FF)
        #expect(parsed.message.attribute(.iceControlled)?.uint64Value == 0x932F_F9B1_5126_3B36)
        #expect(parsed.fingerprintIsValid)
        #expect(parsed.verifyIntegrity(key: Self.password))
        #expect(!parsed.verifyIntegrity(key: Array("wrong".utf8)))
    }

    @Test func parsesTheRFC5769ResponseAddress() throws {
        let parsed = try STUNMessage.parse(Self.sampleResponse)
        #expect(parsed.message.messageClass == .success)
        let mapped = parsed.message.attribute(.xorMappedAddress)?.xorAddress(transactionID: parsed.message.transactionID)
        #expect(mapped == TransportAddress("192.0.2.1", 32853))
        #expect(parsed.fingerprintIsValid && parsed.verifyIntegrity(key: Self.password))
    }

    @Test func encodesWhatItParses() throws {
        let id = STUNTransactionID.random()
        let message = STUNMessage(method: .binding, messageClass: .success, transactionID: id, attributes: [
            .xorAddress(.xorMappedAddress, TransportAddress("2001:db8::1", 40000)!, transactionID: id),
            .string(.software, "atrium"),
        ])
        let bytes = message.encode(integrity: .shortTerm(password: "secret"), fingerprint: true)
        let parsed = try STUNMessage.parse(bytes)
        #expect(parsed.fingerprintIsValid && parsed.verifyIntegrity(key: Array("secret".utf8)))
        #expect(parsed.message.attribute(.xorMappedAddress)?.xorAddress(transactionID: id) == TransportAddress("2001:db8::1", 40000))
        #expect(parsed.message.attribute(.software)?.stringValue == "atrium")
        let sha256 = try STUNMessage.parse(message.encode(integrity: .sha256(key: [1, 2, 3])))
        #expect(sha256.verifyIntegrity(key: [1, 2, 3]) && !sha256.verifyIntegrity(key: [1, 2, 4]))
    }

    @Test func tamperingIsDetected() throws {
        var bytes = Self.sampleRequest
        bytes[30] ^= 0x01  // inside SOFTWARE
        let parsed = try STUNMessage.parse(bytes)
        #expect(!parsed.fingerprintIsValid)
        #expect(!parsed.verifyIntegrity(key: Self.password))
    }

    @Test func malformedInputIsRefused() {
        let bad: [[UInt8]] = [
            [], Array(Self.sampleRequest.prefix(19)),
            [0xC0] + Self.sampleRequest.dropFirst(),  // leading bits
            Array(Self.sampleRequest.dropLast(4)),  // length disagrees
        ]
        for b in bad { #expect(throws: STUNError.self) { try STUNMessage.parse(b) } }
        var noCookie = Self.sampleRequest
        noCookie[4] = 0
        #expect(throws: STUNError.self) { try STUNMessage.parse(noCookie) }
        var overrun = Self.sampleRequest
        overrun[22] = 0xFF  // SOFTWARE claims more than the message holds
        #expect(throws: STUNError.self) { try STUNMessage.parse(overrun) }
    }

    @Test func randomBytesNeverCrashTheParser() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes = Self.sampleRequest
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            if Bool.random(using: &generator) { bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator))) }
            if let parsed = try? STUNMessage.parse(bytes) {
                _ = parsed.fingerprintIsValid
                _ = parsed.verifyIntegrity(key: Self.password)
                for a in parsed.message.attributes {
                    _ = a.xorAddress(transactionID: parsed.message.transactionID)
                    _ = a.errorCodeValue
                }
            }
        }
    }

    @Test func demultiplexesByFirstByte() {
        Self.sampleRequest.withUnsafeBytes { #expect(STUNMessage.looksLikeSTUN($0)) }
        [UInt8](repeating: 0x80, count: 40).withUnsafeBytes { #expect(!STUNMessage.looksLikeSTUN($0)) }  // RTP
        [UInt8](repeating: 0x16, count: 40).withUnsafeBytes { #expect(!STUNMessage.looksLikeSTUN($0)) }  // DTLS
    }

    @Test func errorCodesAndLongTermKeys() {
        let e = STUNAttribute.errorCode(401, "Unauthorized")
        #expect(e.errorCodeValue?.code == 401 && e.errorCodeValue?.reason == "Unauthorized")
        // The long-term key is MD5 of "user:realm:pass" (16 bytes); TURN uses it.
        let key = STUNIntegrity.longTerm(username: "user", realm: "realm", password: "pass")
        #expect(key.count == 16)
        #expect(IPAddress("::ffff:127.0.0.1")?.bytes.count == 16 && IPAddress("10.0.0.1")?.description == "10.0.0.1")
    }
}
