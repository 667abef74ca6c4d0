import CSRTP
import Testing
@testable import RTC

/// Inbound AEAD_AES_128_GCM RTP is opened through OpenSSL directly (RTPGCMOpener); senders must
/// not be able to tell: it must accept what libsrtp accepts, with the same plaintext, and refuse
/// what libsrtp refuses, with the same status, and a refused packet must change nothing.
@Suite struct GCMOpeningTests {
    let key = (0..<16).map { UInt8($0 &* 7 &+ 3) }
    let salt = (0..<12).map { UInt8($0 &* 13 &+ 1) }

    static let authFail = SRTPError(srtp_err_status_auth_fail, "unprotect")
    static let replayFail = SRTPError(srtp_err_status_replay_fail, "unprotect")
    static let replayOld = SRTPError(srtp_err_status_replay_old, "unprotect")
    static let badParam = SRTPError(srtp_err_status_bad_param, "unprotect")

    /// A GCM context; `openSSL: false` keeps RTP in libsrtp.
    func context(_ direction: SRTPContext.Direction, openSSL: Bool = true) throws -> SRTPContext {
        try SRTPContext(profile: .aeadAES128GCM, masterKey: key, masterSalt: salt, direction: direction, openSSLGCM: openSSL)
    }

    /// The OpenSSL receiver and libsrtp's, fed the same packets.
    func receivers() throws -> (ours: SRTPContext, theirs: SRTPContext) {
        (try context(.inbound), try context(.inbound, openSSL: false))
    }

    /// Both receivers must answer `sealed` with `expected`: the plaintext or the refusal.
    func expectBoth(_ receivers: (ours: SRTPContext, theirs: SRTPContext), _ sealed: [UInt8], _ expected: Result<[UInt8], SRTPError>,
                    _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(open(receivers.ours, sealed) == expected, "\(what)", sourceLocation: sourceLocation)
        #expect(open(receivers.theirs, sealed) == expected, "\(what), libsrtp", sourceLocation: sourceLocation)
    }

    /// The plaintext, or why the packet was refused.
    func open(_ receiver: SRTPContext, _ packet: [UInt8]) -> Result<[UInt8], SRTPError> {
        Result { () throws(SRTPError) in try receiver.unprotect(packet) }
    }

    @Test func openedPacketsAreLibsrtps() throws {
        let sender = try context(.outbound, openSSL: false)
        let both = try receivers()
        // Two SSRCs, one wrapping its sequence number, varied header shapes, shuffled eight at a
        // time as a network reorders (across the wrap too).
        var sent: [(plain: [UInt8], sealed: [UInt8])] = []
        for n in 0..<400 {
            for (ssrc, start) in [(UInt32(0x1234_5678), UInt16(65_400)), (UInt32(0xCAFE_F00D), UInt16(7))] {
                let plain = rtpPacket(sequence: start &+ UInt16(n), ssrc: ssrc, payload: (n * 37) % 1_150 + 1,
                                      csrcs: n % 3, extensionWords: n % 4)
                sent.append((plain, try sender.protect(plain)))
            }
        }
        var random = SplitMix64(state: 7)
        for i in stride(from: 0, to: sent.count, by: 8) { sent[i..<min(i + 8, sent.count)].shuffle(using: &random) }
        for (n, (plain, sealed)) in sent.enumerated() { expectBoth(both, sealed, .success(plain), "packet \(n)") }
    }

    @Test func replaysAndOldPacketsAreRefusedAsLibsrtpDoes() throws {
        let sender = try context(.outbound, openSSL: false)
        let both = try receivers()
        // Index n is sequence number 65000 + n: the rollover counter goes to 1 at n = 536.
        let plain = (0...5_000).map { rtpPacket(sequence: UInt16(truncatingIfNeeded: 65_000 + $0), ssrc: 42, payload: 80) }
        let sealed = try plain.map { p throws(SRTPError) in try sender.protect(p) }
        let accepted: SRTPError? = nil
        var events: [(n: Int, refusal: SRTPError?)] = []
        for n in 0..<2_000 where ![530, 975, 976, 1_990].contains(n) {
            events.append((n, accepted))
            // Late from before the wrap (the old rollover counter), once.
            if n == 600 { events += [(530, accepted), (530, Self.replayFail), (600, Self.replayFail)] }
        }
        events += [
            (1_999, Self.replayFail),  // the highest again
            (1_990, accepted), (1_990, Self.replayFail),  // late within the window, once
            (976, accepted), (976, Self.replayFail),  // the oldest index the window holds: 1999 - 1023
            (975, Self.replayOld),  // one older, never seen: still refused
            (500, Self.replayOld), (1_500, Self.replayFail),
            (5_000, accepted),  // a jump past the whole window
            (3_976, Self.replayOld), (3_977, accepted), (1_999, Self.replayOld),
        ]
        for (n, refusal) in events {
            expectBoth(both, sealed[n], refusal.map { .failure($0) } ?? .success(plain[n]), "index \(n)")
        }
    }

    @Test func theFirstPacketOfAnSSRCIsTakenAtRolloverZero() throws {
        let sender = try context(.outbound, openSSL: false)
        let both = try receivers()
        // The sender starts at 65534 (ROC 0) and wraps to ROC 1. The receiver first hears 65535,
        // then an older number it never saw, then the wrap, out of order.
        let plain = [65_534, 65_535, 0, 1].map { rtpPacket(sequence: UInt16($0), ssrc: 5, payload: 20) }
        let sealed = try plain.map { p throws(SRTPError) in try sender.protect(p) }
        let events: [(Int, SRTPError?)] = [(1, nil), (0, nil), (0, Self.replayFail), (3, nil), (2, nil), (1, Self.replayFail)]
        for (i, refusal) in events { expectBoth(both, sealed[i], refusal.map { .failure($0) } ?? .success(plain[i]), "packet \(i)") }
    }

    @Test func aDamagedPacketIsRefusedAndChangesNothing() throws {
        let sender = try context(.outbound, openSSL: false)
        let both = try receivers()
        // 12 bytes of header, a CSRC at 12, an extension at 16 (its data at 20), the payload at 24.
        let plain = (0..<2).map { rtpPacket(sequence: UInt16(40_000 + $0), ssrc: 77, payload: 60, csrcs: 1, extensionWords: 1) }
        let sealed = try plain.map { p throws(SRTPError) in try sender.protect(p) }
        // The first packet of the SSRC (no stream yet), then the next (a stream); each damaged
        // copy refused, and the genuine packet still accepted after them, so nothing moved: not
        // the window (its index not marked), nor the highest index (byte 2 moves it 8192 ahead).
        for (i, p) in sealed.enumerated() {
            var damaged = [(0, UInt8(0x10)), (2, 0x20)] + [1, 3, 4, 9, 13, 16, 21, 24, p.count - 17].map { ($0, UInt8(0x08)) }
            damaged += [(p.count - 16, 0x08), (p.count - 1, 0x80)]  // the tag
            for (byte, bit) in damaged {
                var bad = p
                bad[byte] ^= bit
                expectBoth(both, bad, .failure(Self.authFail), "packet \(i), byte \(byte) flipped")
            }
            expectBoth(both, Array(p.dropLast()), .failure(Self.authFail), "packet \(i) cut by a byte")
            expectBoth(both, p, .success(plain[i]), "packet \(i) itself")
        }
    }

    @Test func malformedPacketsAreRefused() throws {
        let sender = try context(.outbound, openSSL: false)
        let both = try receivers()
        let plain = rtpPacket(sequence: 9, ssrc: 3, payload: 40)
        let sealed = try sender.protect(plain)
        // Too short for the header it announces: libsrtp's bad_param on both paths.
        var longExtension = rtpPacket(sequence: 9, ssrc: 3, payload: 0, extensionWords: 1) + [UInt8](repeating: 0, count: 40)
        longExtension[15] = 0xFF
        let headerless: [[UInt8]] = [[], [0x80, 96, 0, 9], Array(sealed.prefix(11)),
                                     Array(rtpPacket(sequence: 9, ssrc: 3, payload: 30, csrcs: 15).prefix(60)), longExtension]
        for (i, bad) in headerless.enumerated() { expectBoth(both, bad, .failure(Self.badParam), "malformed \(i)") }
        // A header but no room for the tag: bad_param here; libsrtp refuses too, though with
        // cipher_fail or parse_err (its length check wraps around under 16 bytes).
        for cut in [12, 13, 27] {
            #expect(open(both.ours, Array(sealed.prefix(cut))) == .failure(Self.badParam), "\(cut) bytes")
            #expect(throws: SRTPError.self, "\(cut) bytes, libsrtp") { try both.theirs.unprotect(Array(sealed.prefix(cut))) }
        }
        expectBoth(both, sealed, .success(plain), "the genuine packet after them")
    }

    @Test func theSSRCsTrackedAreBounded() throws {
        let sender = try context(.outbound)
        let receiver = try context(.inbound)
        func sealed(_ ssrc: UInt32, sequence: UInt16 = 1) throws -> [UInt8] {
            try sender.protect(rtpPacket(sequence: sequence, ssrc: ssrc, payload: 10))
        }
        // Forged first packets take no place in the table.
        for ssrc in UInt32(1_000)..<1_300 {
            var forged = try sealed(ssrc)
            forged[forged.count - 1] ^= 1
            #expect(open(receiver, forged) == .failure(Self.authFail))
        }
        let limit = UInt32(RTPGCMOpener.maximumStreams)
        for ssrc in 1...limit { #expect(try receiver.unprotect(try sealed(ssrc)).count == 22) }
        #expect(open(receiver, try sealed(limit + 1)) == .failure(SRTPError(srtp_err_status_no_ctx, "unprotect (too many SSRCs)")))
        // The streams it has go on.
        #expect(try receiver.unprotect(try sealed(limit, sequence: 2)).count == 22)
        #expect(try receiver.unprotect(try sealed(1, sequence: 2)).count == 22)
    }
}
