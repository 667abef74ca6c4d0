import Testing
import RTC

/// The pieces the host's media path is built from: answers to captured offers, completion with the
/// host's transport, reception statistics, the retransmission ring, outgoing header rewriting.
@Suite struct AnswerAndTransportTests {
    static let transport = LocalTransport(
        ice: IceCredentials(ufrag: "abcd1234", password: "0123456789abcdefghijklmn"),
        fingerprint: Fingerprint(algorithm: "sha-256", hex: Array(repeating: "AB", count: 32).joined(separator: ":")),
        setup: .passive,
        candidates: LocalTransport.hostCandidates(addresses: [IPAddress("10.99.0.1")!, IPAddress("192.0.2.7")!], udpPort: 10_000, tcpPort: 10_001)
    )

    @Test(arguments: SDPFixture.captured)
    func completedAnswerToACapturedOfferReadsBack(_ name: String) throws {
        let offer = try SDPFixture.parsed(name)
        var answer = offer.answer()
        let rejected = answer.complete(with: Self.transport)
        // What a browser checks: every section answered in order with the offer's mid, BUNDLE over
        // the accepted ones, the host's credentials, fingerprint and candidates in each.
        let reparsed = try SessionDescription.parse(answer.serialized)
        #expect(reparsed == answer)
        #expect(answer.iceLite)
        #expect(answer.media.count == offer.media.count)
        for (o, a) in zip(offer.media, answer.media) {
            #expect(a.mid == o.mid)
            #expect(a.kind == o.kind)
            if a.isRejected {
                #expect(a.candidates.isEmpty && a.iceUfrag == nil)
                continue
            }
            #expect(a.iceUfrag == "abcd1234" && a.icePwd == "0123456789abcdefghijklmn")
            #expect(a.setup == .passive && a.rtcpMux && a.endOfCandidates)
            #expect(a.candidates.count == 4)
            #expect(a.port == 10_000)
            #expect(a.payloadTypes.count == 1, "one codec per section")
            #expect(a.direction == o.direction.answering(canSend: true, canReceive: true))
        }
        let accepted = answer.media.filter { !$0.isRejected }.compactMap(\.mid)
        #expect((answer.bundleGroup?.mids ?? []) == accepted)
        // Data channels are refused cleanly until SCTP exists.
        let applications = offer.media.filter { $0.kind == .application }.compactMap(\.mid)
        #expect(rejected == applications)
        #expect(answer.media.filter { $0.kind == .application }.allSatisfy { $0.isRejected })
    }

    @Test func answerPicksOpusAndVP8AndKeepsOnlyKnownFeedbackAndExtensions() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video")
        let answer = offer.answer()
        let audio = try #require(answer.media.first { $0.kind == .audio })
        let video = try #require(answer.media.first { $0.kind == .video })
        #expect(audio.codecs.map { $0.name.lowercased() } == ["opus"])
        #expect(video.codecs.map { $0.name.uppercased() } == ["VP8"])
        #expect(video.codecs[0].retransmissionPayloadType == nil)
        #expect(Set(video.rtcpFeedback.map(\.type)).isSubset(of: ["nack", "ccm", "goog-remb"]))
        #expect(!video.extensionMaps.contains { $0.uri == RTPHeaderExtensionURI.transportWideCC })
        // The offer's ids are kept for what is accepted.
        let offeredMid = try #require(offer.media[0].extensionID(uri: RTPHeaderExtensionURI.mid))
        #expect(audio.extensionID(uri: RTPHeaderExtensionURI.mid) == offeredMid)
    }

    @Test func answerRejectsASectionWithNoAcceptableCodec() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video")
        var preferences = AnswerPreferences()
        preferences.videoCodecs = ["H265"]
        let answer = offer.answer(preferences: preferences)
        #expect(answer.media.first { $0.kind == .video }?.isRejected == true)
        #expect(answer.media.first { $0.kind == .audio }?.isRejected == false)
    }

    @Test func hostCandidatesPreferUDPAndEarlierAddresses() {
        let c = Self.transport.candidates
        #expect(c.map(\.transport) == [.udp, .tcp, .udp, .tcp])
        #expect(c[1].tcpType == .passive)
        #expect(c[0].priority > c[2].priority && c[2].priority > c[1].priority)
        #expect(Set(c.map(\.foundation)).count == 4)
    }
}

@Suite struct ReceiveStatisticsTests {
    @Test func countsLossAcrossTheSequenceWrapAndEchoesTheSenderReport() {
        var s = RTPReceiveStatistics(ssrc: 7, clockRate: 90_000)
        var seq: UInt16 = 65_530
        var t: UInt64 = 1_000_000_000
        for i in 0..<20 {
            if i != 5 && i != 9 { s.update(sequenceNumber: seq, timestamp: UInt32(i) * 3000, arrivalNanos: t) }
            seq &+= 1
            t += 33_333_333
        }
        s.senderReportReceived(compactNTP: 0x1234_5678, at: t)
        let (block, lost) = s.reportBlock(now: t + 500_000_000)
        #expect(block.ssrc == 7)
        #expect(block.extendedHighestSequenceNumber == 65_536 + 13)
        #expect(block.cumulativeLost == 2)
        #expect(lost == 2)
        #expect(block.fractionLost == UInt8(2 * 256 / 20))
        #expect(block.lastSenderReport == 0x1234_5678)
        #expect(block.delaySinceLastSenderReport == 32_768)
        // Steady timing: no jitter.
        #expect(block.jitter == 0)
        // The next interval starts from here.
        s.update(sequenceNumber: seq, timestamp: 20 * 3000, arrivalNanos: t + 600_000_000)
        #expect(s.reportBlock(now: t + 700_000_000).lostInInterval == 0)
    }

    @Test func aRestartedSourceDoesNotCountAsLoss() {
        var s = RTPReceiveStatistics(ssrc: 1, clockRate: 48_000)
        for i in 0..<10 { s.update(sequenceNumber: UInt16(100 + i), timestamp: UInt32(i * 960), arrivalNanos: UInt64(i) * 20_000_000) }
        for i in 0..<10 { s.update(sequenceNumber: UInt16(40_000 + i), timestamp: UInt32(i * 960), arrivalNanos: UInt64(10 + i) * 20_000_000) }
        #expect(s.cumulativeLost == 0)
    }
}

extension RetransmissionBuffer {
    /// The stored packet of `sequence`, as a retransmission would send it.
    func packet(_ sequence: UInt16, now: UInt64) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 4096)
        guard let n = out.withUnsafeMutableBytes({ copy(sequenceNumber: sequence, now: now, into: $0) }) else { return nil }
        return Array(out[0..<n])
    }
}

@Suite struct RetransmissionAndRewriteTests {
    @Test func theRingReturnsRecentPacketsOnlyAndReusesItsSlots() {
        let ring = RetransmissionBuffer(capacity: 16)
        for seq in UInt16(0)..<40 {
            let packet: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF)] + Array(repeating: UInt8(seq & 0xFF), count: 8)
            packet.withUnsafeBytes { ring.store($0, sequenceNumber: seq, now: UInt64(seq) * 10_000_000) }
        }
        let now: UInt64 = 400_000_000
        #expect(ring.packet(39, now: now)?.last == 39)
        #expect(ring.packet(24, now: now)?.count == 12)
        #expect(ring.packet(23, now: now) == nil, "overwritten by 39")
        #expect(ring.packet(39, now: now + 3_000_000_000) == nil, "too old to help")
    }

    /// 1.5 Mbit/s of 1,200-byte packets for 3 s: the ring grows until a lap holds a second of them,
    /// and stops there; every packet of the last second comes back intact, across the growths.
    @Test func theRingGrowsToHoldItsMaximumAgeAndNoMore() {
        let ring = RetransmissionBuffer(capacity: 512)
        func packet(_ n: Int) -> [UInt8] { [0x80, 96, UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + (0..<1_196).map { UInt8(truncatingIfNeeded: $0 &+ n) } }
        let interval: UInt64 = 6_400_000  // 156 packets a second
        var now: UInt64 = 1_000_000_000
        for n in 0..<470 {
            packet(n).withUnsafeBytes { ring.store($0, sequenceNumber: UInt16(n), now: now) }
            if n < 469 { now += interval }
        }
        #expect(ring.bytesReserved == 256 * 1024, "187 kB a second fits 256 kB, not 128 kB")
        for n in 470 - 150..<470 {
            #expect(ring.packet(UInt16(n), now: now) == packet(n), "packet \(n)")
        }
        #expect(ring.packet(470 - 160, now: now) == nil, "older than a second")
    }

    /// Right after a growth, the bigger ring has room for positions older than what was carried
    /// over; packets there must not be returned (their bytes were never copied). Fast 1,200-byte
    /// packets: the ring grows 32 → 64 → 128 kB within a fraction of a second.
    @Test func aGrowthNeverReturnsBytesItDidNotCarryOver() {
        let ring = RetransmissionBuffer(capacity: 512)
        func packet(_ n: Int) -> [UInt8] { [0x80, 96, UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + (0..<1_196).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ n) } }
        var now: UInt64 = 1_000_000_000
        var sizes: [Int] = []
        for n in 0..<120 {
            packet(n).withUnsafeBytes { ring.store($0, sequenceNumber: UInt16(n), now: now) }
            if sizes.last != ring.bytesReserved { sizes.append(ring.bytesReserved) }
            now += 1_000_000
        }
        #expect(sizes == [32 * 1024, 64 * 1024, 128 * 1024])
        // Whatever is returned is exactly what was stored; what the growths dropped is nil.
        var returned = 0
        for n in 0..<120 {
            if let bytes = ring.packet(UInt16(n), now: now) {
                #expect(bytes == packet(n), "packet \(n)")
                returned += 1
            }
        }
        #expect(returned >= 54, "at least the last 64 kB carried over, and what came after")
        #expect(ring.packet(119, now: now) == packet(119))
    }

    /// Bytes overwritten in the ring are never returned, even while the sequence number's slot
    /// still names the packet (a 16-slot buffer cannot grow past 32 kB; its slot 0 is left alone).
    @Test func overwrittenBytesAreNeverReturned() {
        let ring = RetransmissionBuffer(capacity: 16, maxAge: 60_000_000_000)
        let packet = [UInt8](repeating: 7, count: 2_000)
        let sequences = [0] + Array(1...15) + Array(17...21)
        for (i, n) in sequences.enumerated() {
            packet.withUnsafeBytes { ring.store($0, sequenceNumber: UInt16(n), now: UInt64(i) * 1_000_000) }
        }
        #expect(ring.bytesReserved == 32 * 1024)
        let now: UInt64 = 30_000_000
        #expect(ring.packet(21, now: now)?.count == 2_000)
        #expect(ring.packet(8, now: now)?.count == 2_000)
        #expect(ring.packet(0, now: now) == nil, "its bytes were written over")
    }

    /// Three subscribers of one received packet: the first keeps the payload in the shared ring,
    /// the second has the same payload, the third a VP8 descriptor rewritten in its first bytes.
    /// Each buffer keeps only what is its own, and each retransmission is its packet, byte for byte.
    @Test func subscribersOfOnePacketShareItsPayload() {
        let shared = SharedPayloads()
        let rings = (0..<3).map { _ in RetransmissionBuffer(capacity: 512, shared: shared) }
        let payload = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        func packet(_ subscriber: Int, _ n: Int) -> [UInt8] {
            var p: [UInt8] = [0x80, 96, UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF), 0, 0, 0, UInt8(subscriber), 0, 0, 0, UInt8(subscriber)]
            var body = payload
            body[0] = UInt8(n & 0xFF)
            if subscriber == 2 { body[3] = 0xEE }  // a rewritten picture ID
            p += body
            return p
        }
        var now: UInt64 = 1_000_000_000
        for n in 0..<300 {
            for (i, ring) in rings.enumerated() {
                let bytes = packet(i, n)
                bytes.withUnsafeBytes { b in
                    let share = shared.share(b, payloadLength: payload.count, key: UInt64(n + 1), now: now)
                    #expect(share != nil, "subscriber \(i) shares packet \(n)")
                    ring.store(b, sequenceNumber: UInt16(n), now: now, sharing: share)
                }
            }
            now += 5_000_000
        }
        for (i, ring) in rings.enumerated() {
            for n in [299, 250, 200] { #expect(ring.packet(UInt16(n), now: now) == packet(i, n), "subscriber \(i), packet \(n)") }
            // Each keeps 12 header bytes a packet (28 for subscriber 2, whose first payload bytes
            // differ): a second of them fits the 4 kB a sharing buffer starts with, or 8 kB.
            #expect(ring.bytesReserved <= 8 * 1024, "subscriber \(i)")
        }
        #expect(shared.bytesReserved >= 200 * 1_000, "a second of payloads, once")
    }

    /// What is not the same is not shared: a different payload (another plugin's packet in the
    /// same callback), a short one, or none while no received packet is being handled.
    @Test func onlyTheSamePayloadIsShared() {
        let shared = SharedPayloads()
        let a = [UInt8](repeating: 1, count: 12) + [UInt8](repeating: 0xAA, count: 500)
        var b = a
        b[12 + 100] = 0xBB
        a.withUnsafeBytes { #expect(shared.share($0, payloadLength: 500, key: 7, now: 1) != nil) }
        b.withUnsafeBytes { #expect(shared.share($0, payloadLength: 500, key: 7, now: 1) == nil, "differs past the descriptor") }
        a.withUnsafeBytes { #expect(shared.share($0, payloadLength: 400, key: 7, now: 1) == nil, "another length") }
        a.withUnsafeBytes { #expect(shared.share($0, payloadLength: 40, key: 8, now: 1) == nil, "too short to share") }
        a.withUnsafeBytes { #expect(shared.share($0, payloadLength: 500, key: 0, now: 1) == nil, "no received packet") }
    }

    /// The slots follow the packet rate: a second at 50 packets/s fits the first 64, at 156
    /// packets/s they double to 256, and a packet of the last second is still found after each
    /// doubling. They never pass `capacity`.
    @Test func theSlotsGrowWithThePacketRate() {
        func run(packetsPerSecond: UInt64, count: Int, capacity: Int = 512) -> (RetransmissionBuffer, UInt64) {
            let ring = RetransmissionBuffer(capacity: capacity)
            var now: UInt64 = 1_000_000_000
            for n in 0..<count {
                let packet: [UInt8] = [0x80, 96, UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + [UInt8](repeating: UInt8(n & 0xFF), count: 100)
                packet.withUnsafeBytes { ring.store($0, sequenceNumber: UInt16(n), now: now) }
                now += 1_000_000_000 / packetsPerSecond
            }
            return (ring, now)
        }
        let (slow, _) = run(packetsPerSecond: 50, count: 300)
        #expect(slow.slotsReserved == 64)
        let (fast, now) = run(packetsPerSecond: 156, count: 600)
        #expect(fast.slotsReserved == 256)
        for n in 600 - 150..<600 { #expect(fast.packet(UInt16(n), now: now)?[3] == UInt8(n & 0xFF), "packet \(n)") }
        let (capped, _) = run(packetsPerSecond: 1_000, count: 2_000, capacity: 100)
        #expect(capped.slotsReserved == 100)
    }

    /// A shared tail that the shared ring has since written over is not resent with someone
    /// else's bytes: the packet is gone.
    @Test func aSharedTailWrittenOverIsNotResent() {
        let shared = SharedPayloads(maximumSize: 32 * 1024, maxAge: 1_000_000_000)
        let ring = RetransmissionBuffer(capacity: 512, shared: shared)
        let first = [UInt8](repeating: 1, count: 12) + [UInt8](repeating: 0xAA, count: 1_000)
        first.withUnsafeBytes { b in
            ring.store(b, sequenceNumber: 1, now: 10, sharing: shared.share(b, payloadLength: 1_000, key: 1, now: 10))
        }
        #expect(ring.packet(1, now: 20) == first)
        // 40 more payloads of other packets: the 32 kB shared ring (at its maximum) laps.
        for k in 2...41 {
            let other = [UInt8](repeating: 2, count: 12) + [UInt8](repeating: UInt8(k), count: 1_000)
            other.withUnsafeBytes { _ = shared.share($0, payloadLength: 1_000, key: UInt64(k), now: 20) }
        }
        #expect(ring.packet(1, now: 30) == nil)
    }

    @Test func outgoingHeaderKeepsPayloadAndTimingAndWritesOnlyNegotiatedExtensions() throws {
        // A packet with a foreign one-byte extension block (id 5, 2 bytes) and padding.
        var input: [UInt8] = [0xB0, 0xE0, 0x12, 0x34, 0, 0, 0x10, 0, 0xAA, 0xBB, 0xCC, 0xDD,
                              0xBE, 0xDE, 0x00, 0x01, 0x51, 0x01, 0x02, 0x00,
                              1, 2, 3, 4, 5, 0, 0, 3]
        var ids = OutgoingExtensionIDs()
        ids.mid = 3
        ids.absSendTime = 2
        var output = [UInt8](repeating: 0, count: 200)
        let mid: [UInt8] = Array("v1".utf8)
        let written = try input.withUnsafeMutableBytes { inBuffer in
            let view = try RTPPacketView(buffer: inBuffer, length: inBuffer.count)
            return mid.withUnsafeBytes { midBytes in
                var values = OutgoingExtensionValues()
                values.mid = midBytes
                values.absSendTime = 0x123456
                values.audioLevel = (true, 30)  // not negotiated: left out
                return output.withUnsafeMutableBytes { OutgoingRTP.write(view, ssrc: 0x0102_0304, ids: ids, values: values, into: $0) }
            }
        }
        let n = try #require(written)
        let packet = Array(output.prefix(n))
        var copy = packet
        let view = try copy.withUnsafeMutableBytes { b in try RTPPacketView(buffer: b, length: b.count) }
        #expect(view.ssrc == 0x0102_0304)
        #expect(view.sequenceNumber == 0x1234 && view.timestamp == 0x1000 && view.marker && view.payloadType == 96)
        #expect(Array(packet[view.payloadOffset..<(view.payloadOffset + view.payloadLength)]) == [1, 2, 3, 4, 5])
        #expect(packet[0] & 0x20 == 0, "no padding")
        #expect(view.headerExtensionString(id: 3) == "v1")
        #expect(view.absoluteSendTime(id: 2) == 0x123456)
        #expect(view.headerExtension(id: 5) == nil, "the sender's own extension is dropped")
        #expect(view.audioLevel(id: 1) == nil)
    }

    @Test func paddingOnlyPacketsAreNotForwarded() throws {
        var input: [UInt8] = [0xA0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4]
        var output = [UInt8](repeating: 0, count: 64)
        let written = try input.withUnsafeMutableBytes { b in
            let view = try RTPPacketView(buffer: b, length: b.count)
            return output.withUnsafeMutableBytes { OutgoingRTP.write(view, ssrc: 1, ids: OutgoingExtensionIDs(), values: OutgoingExtensionValues(), into: $0) }
        }
        #expect(written == nil)
    }
}
