import Testing
@testable import RTC

/// Outbound AEAD_AES_128_GCM RTP is sealed through OpenSSL directly (RTPGCMSealer); receivers
/// must not be able to tell: the bytes must be libsrtp's, across header shapes, a sequence-number
/// wrap and repeated sequence numbers (retransmissions).
@Suite struct GCMSealingTests {
    let key = (0..<16).map { UInt8($0 &* 7 &+ 3) }
    let salt = (0..<12).map { UInt8($0 &* 13 &+ 1) }

    @Test func sealedPacketsAreLibsrtpsBytes() throws {
        let ours = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .outbound)
        let theirs = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .outbound, openSSLGCM: false)
        let receiver = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .inbound)
        // Two SSRCs, starting just before the sequence number wraps, with varied header shapes.
        for n in 0..<300 {
            for (ssrc, start) in [(UInt32(0x1234_5678), UInt16(65_400)), (UInt32(0xCAFE_F00D), UInt16(7))] {
                let plain = rtpPacket(sequence: start &+ UInt16(n), ssrc: ssrc, payload: (n * 37) % 1_150 + 1,
                                      csrcs: n % 3, extensionWords: n % 4)
                let sealed = try ours.protect(plain)
                #expect(sealed == (try theirs.protect(plain)), "packet \(n) of \(String(ssrc, radix: 16))")
                #expect(try receiver.unprotect(sealed) == plain)
            }
        }
    }

    @Test func aRetransmissionIsSealedAgainAsLibsrtpDoes() throws {
        let ours = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .outbound)
        let theirs = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .outbound, openSSLGCM: false)
        var sent: [[UInt8]] = []
        for s in UInt16(65_530)...UInt16(65_535) { sent.append(rtpPacket(sequence: s, ssrc: 9, payload: 100)) }
        for s in UInt16(0)...UInt16(5) { sent.append(rtpPacket(sequence: s, ssrc: 9, payload: 100)) }
        for p in sent { #expect(try ours.protect(p) == (try theirs.protect(p))) }
        // NACK answers after the wrap: the old rollover counter for the old numbers.
        for p in [sent[2], sent[8], sent[0]] { #expect(try ours.protect(p) == (try theirs.protect(p))) }
    }

    @Test func malformedPacketsAreRefused() throws {
        let ours = try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: .outbound)
        #expect(throws: SRTPError.self) { try ours.protect([0x80, 96, 0, 1]) }  // shorter than a header
        var bad = rtpPacket(sequence: 1, ssrc: 1, payload: 0, extensionWords: 2)
        bad.removeLast(4)  // the extension says more than there is
        #expect(throws: SRTPError.self) { try ours.protect(bad) }
        let truncated = Array(rtpPacket(sequence: 1, ssrc: 1, payload: 0, csrcs: 15).dropLast(8))  // fewer CSRCs than counted
        #expect(throws: SRTPError.self) { try ours.protect(truncated) }
    }
}
