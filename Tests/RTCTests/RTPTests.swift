import Testing
@testable import RTC

@Suite struct RTPTests {
    /// An Opus-like packet with a one-byte extension block: mid "0" (id 4), audio level (id 1), twcc (id 3).
    static let packet: [UInt8] = [
        0x90, 0xEF, 0x12, 0x34,  // V=2, X=1, M=1, PT=111, seq 0x1234
        0x00, 0x00, 0x10, 0x00,  // timestamp 4096
        0xDE, 0xAD, 0xBE, 0xEF,  // SSRC
        0xBE, 0xDE, 0x00, 0x02,  // one-byte extensions, 2 words
        0x40, 0x30,  // id 4 len 1: "0"
        0x10, 0x85,  // id 1 len 1: voice, level 5
        0x31, 0x01, 0x02,  // id 3 len 2: 0x0102
        0x00,  // padding
        0x01, 0x02, 0x03,  // payload
    ]

    func withView<R>(_ bytes: [UInt8], _ body: (RTPPacketView) throws -> R) throws -> R {
        var copy = bytes
        return try copy.withUnsafeMutableBytes { b in try body(try RTPPacketView(buffer: b, length: bytes.count)) }
    }

    @Test func readsTheHeaderAndExtensions() throws {
        try withView(Self.packet) { p in
            #expect(p.marker && p.payloadType == 111 && p.sequenceNumber == 0x1234 && p.timestamp == 4096 && p.ssrc == 0xDEAD_BEEF)
            #expect(p.headerExtensionString(id: 4) == "0")
            #expect(p.audioLevel(id: 1)! == (true, 5))
            #expect(p.transportSequenceNumber(id: 3) == 0x0102)
            #expect(p.headerExtension(id: 9) == nil)
            #expect(p.payloadOffset == 24 && p.payloadLength == 3)
        }
    }

    @Test func rewritesInPlace() throws {
        var bytes = Self.packet
        try bytes.withUnsafeMutableBytes { b in
            let p = try RTPPacketView(buffer: b, length: Self.packet.count)
            p.rewrite(ssrc: 1, sequenceNumber: 7, timestamp: 9, payloadType: 96)
            #expect(p.ssrc == 1 && p.sequenceNumber == 7 && p.timestamp == 9 && p.payloadType == 96 && p.marker)
        }
        #expect(bytes[12...] == Self.packet[12...])
    }

    @Test func twoByteExtensionsAndPadding() throws {
        let bytes: [UInt8] = [0xB0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2,
                              0x10, 0x00, 0x00, 0x01, 0x05, 0x02, 0x68, 0x69,  // id 5 len 2 "hi"
                              0xAA, 0xBB, 0x00, 0x02]  // payload AA BB, 2 bytes of padding
        try withView(bytes) { p in
            #expect(p.headerExtensionString(id: 5) == "hi")
            #expect(p.payloadLength == 2)
        }
    }

    @Test func refusesMalformedPackets() {
        var generator = SystemRandomNumberGenerator()
        #expect(throws: RTPError.self) { try withView(Array(Self.packet.prefix(11))) { _ in } }
        var v1 = Self.packet
        v1[0] = 0x50
        #expect(throws: RTPError.self) { try withView(v1) { _ in } }
        var longExt = Self.packet
        longExt[15] = 0x40
        #expect(throws: RTPError.self) { try withView(longExt) { _ in } }
        for _ in 0..<20_000 {
            var b = Self.packet
            for _ in 0..<3 { b[Int.random(in: 0..<b.count, using: &generator)] = .random(in: 0...255, using: &generator) }
            b = Array(b.prefix(Int.random(in: 0...b.count, using: &generator)))
            _ = try? withView(b) { p in
                _ = (p.headerExtensionString(id: 4), p.audioLevel(id: 1), p.transportSequenceNumber(id: 3), p.absoluteSendTime(id: 2))
            }
        }
    }

    @Test func classifiesDatagramsOnOnePort() {
        func kind(_ b: [UInt8]) -> PacketKind { b.withUnsafeBytes { PacketKind.classify($0) } }
        #expect(kind([0x00, 0x01]) == .stun)
        #expect(kind([22, 0xFE]) == .dtls)
        #expect(kind([0x80, 111]) == .rtp)
        #expect(kind([0x80, 200]) == .rtcp)
        #expect(kind([0x81, 205]) == .rtcp)
        #expect(kind([0x40]) == .unknown)
        #expect(kind([]) == .unknown)
    }
}
