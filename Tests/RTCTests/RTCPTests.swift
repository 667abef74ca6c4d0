import Testing
@testable import RTC

/// RTCP packets built by hand from the RFC layouts, round trips, and malformed input.
@Suite struct RTCPTests {
    static func hex(_ s: String) -> [UInt8] { hexBytes(s) }

    /// A sender report with one report block, then an SDES with a CNAME (RFC 3550 §6.4.1, §6.5).
    static let senderReportAndCNAME = hex("""
        81 C8 00 0C  12 34 56 78
        E9 1B 2C 3D  80 00 00 00  00 01 5F 90  00 00 00 64  00 01 86 A0
        9A BC DE F0  40 FF FF FE  00 01 00 2A  00 00 00 10  2C 3D 80 00  00 01 00 00
        81 CA 00 04  12 34 56 78  01 06 61 74 72 69 75 6D  00 00 00 00
        """)

    /// A receiver report and a BYE with a reason.
    static let receiverReportAndBye = hex("""
        81 C9 00 07  11 11 11 11
        22 22 22 22  00 00 00 03  00 00 FF FF  00 00 00 05  00 00 00 00  00 00 00 00
        81 CB 00 02  11 11 11 11  03 62 79 65
        """)

    /// Feedback as a browser sends it: NACK, PLI, FIR, REMB, and an APP packet.
    static let feedback = hex("""
        81 CD 00 05  11 11 11 11  22 22 22 22  00 64 80 11  00 75 00 00  01 2C 00 00
        81 CE 00 02  11 11 11 11  22 22 22 22
        84 CE 00 04  11 11 11 11  00 00 00 00  22 22 22 22  07 00 00 00
        8F CE 00 05  11 11 11 11  00 00 00 00  52 45 4D 42  01 0E DC 6C  22 22 22 22
        82 CC 00 03  11 11 11 11  61 62 63 64  01 02 03 04
        """)

    /// Transport-wide CC feedback: base 1000, 5 packets, reference time 16 (1.024 s), count 1; one
    /// two-bit vector (small, small, lost, large, small), deltas 4, 8, -4 (large), 16 ticks, then
    /// one byte of RTCP padding.
    static let transportFeedback = hex("""
        AF CD 00 06  11 11 11 11  22 22 22 22
        03 E8 00 05  00 00 10 01
        D4 90  04 08 FF FC 10  01
        """)

    /// Transport-wide CC feedback: base 0, 20 packets, reference time -1; a run of 15 received,
    /// then a one-bit vector (lost, received, lost, lost, lost); 16 small deltas of 1 tick.
    static let transportFeedbackRunAndVector = hex("""
        8F CD 00 09  11 11 11 11  22 22 22 22
        00 00 00 14  FF FF FF 07
        20 0F  90 00
        01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01
        """)

    // MARK: Hand-built vectors

    @Test func parsesASenderReportAndCNAME() throws {
        let packets = try RTCPPacket.parseCompound(Self.senderReportAndCNAME)
        #expect(packets.count == 2)
        guard case .senderReport(let sr) = packets.first, case .sourceDescription(let sdes) = packets.last else {
            Issue.record("wrong packet types: \(packets)")
            return
        }
        #expect(sr.ssrc == 0x1234_5678)
        #expect(sr.ntpTimestamp == 0xE91B_2C3D_8000_0000 && sr.compactNTPTimestamp == 0x2C3D_8000)
        #expect(sr.rtpTimestamp == 90000 && sr.packetCount == 100 && sr.octetCount == 100_000)
        #expect(sr.reports == [ReportBlock(
            ssrc: 0x9ABC_DEF0, fractionLost: 64, cumulativeLost: -2, extendedHighestSequenceNumber: 65578,
            jitter: 16, lastSenderReport: 0x2C3D_8000, delaySinceLastSenderReport: 65536)])
        #expect(sr.profileExtension.isEmpty)
        #expect(sdes.chunks.count == 1 && sdes.chunks[0].ssrc == 0x1234_5678 && sdes.chunks[0].cname == "atrium")
        #expect(try RTCPPacket.encodeCompound(packets) == Self.senderReportAndCNAME)
    }

    @Test func parsesAReceiverReportAndBye() throws {
        let packets = try RTCPPacket.parseCompound(Self.receiverReportAndBye)
        #expect(packets == [
            .receiverReport(ReceiverReport(ssrc: 0x1111_1111, reports: [
                ReportBlock(ssrc: 0x2222_2222, fractionLost: 0, cumulativeLost: 3, extendedHighestSequenceNumber: 0xFFFF, jitter: 5),
            ])),
            .goodbye(Goodbye(ssrcs: [0x1111_1111], reason: "bye")),
        ])
        #expect(try RTCPPacket.encodeCompound(packets) == Self.receiverReportAndBye)
    }

    @Test func parsesFeedbackAndKeepsAPPAsBytes() throws {
        let packets = try RTCPPacket.parseCompound(Self.feedback)
        #expect(packets == [
            .genericNACK(GenericNACK(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222, items: [
                .init(packetID: 100, lostBitmask: 0x8011), .init(packetID: 117), .init(packetID: 300),
            ])),
            .pictureLossIndication(PictureLossIndication(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222)),
            .fullIntraRequest(FullIntraRequest(senderSSRC: 0x1111_1111, entries: [.init(ssrc: 0x2222_2222, sequenceNumber: 7)])),
            .remb(REMB(senderSSRC: 0x1111_1111, bitrate: 1_500_000, ssrcs: [0x2222_2222])),
            .raw(RawRTCPPacket(packetType: .application, count: 2, payload: [0x11, 0x11, 0x11, 0x11, 0x61, 0x62, 0x63, 0x64, 1, 2, 3, 4])),
        ])
        #expect(try RTCPPacket.encodeCompound(packets) == Self.feedback)
    }

    @Test func parsesTransportFeedbackWithATwoBitVector() throws {
        let packets = try RTCPPacket.parseCompound(Self.transportFeedback)
        guard case .transportFeedback(let fb) = packets.first, packets.count == 1 else {
            Issue.record("expected one transport feedback: \(packets)")
            return
        }
        #expect(fb.baseSequenceNumber == 1000 && fb.packetStatusCount == 5)
        #expect(fb.referenceTime == 16 && fb.feedbackPacketCount == 1)
        #expect(fb.packetStatuses == [.receivedSmallDelta, .receivedSmallDelta, .notReceived, .receivedLargeDelta, .receivedSmallDelta])
        #expect(fb.receiveDeltas == [4, 8, -4, 16])
        #expect(fb.packetResults == [
            .init(sequenceNumber: 1000, arrivalTime: 1_025_000),
            .init(sequenceNumber: 1001, arrivalTime: 1_027_000),
            .init(sequenceNumber: 1002, arrivalTime: nil),
            .init(sequenceNumber: 1003, arrivalTime: 1_026_000),
            .init(sequenceNumber: 1004, arrivalTime: 1_030_000),
        ])
        // The builder chooses the same chunk and padding for the same arrivals.
        let built = try TransportFeedback(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222, feedbackPacketCount: 1, packets: fb.packetResults)
        #expect(built == fb)
        #expect(try RTCPPacket.transportFeedback(built).encode() == Self.transportFeedback)
    }

    @Test func parsesTransportFeedbackWithARunAndAOneBitVector() throws {
        let packets = try RTCPPacket.parseCompound(Self.transportFeedbackRunAndVector)
        guard case .transportFeedback(let fb) = packets.first else {
            Issue.record("expected transport feedback: \(packets)")
            return
        }
        #expect(fb.referenceTime == -1 && fb.feedbackPacketCount == 7)
        #expect(fb.chunks.first == .runLength(.receivedSmallDelta, count: 15))
        let lost = fb.packetResults.filter { $0.arrivalTime == nil }.map(\.sequenceNumber)
        #expect(lost == [15, 17, 18, 19])
        // Reference time -1 is -64 ms; each packet arrives 250 µs after the one before.
        #expect(fb.packetResults.first?.arrivalTime == -64_000 + 250)
        #expect(fb.packetResults[16].arrivalTime == -64_000 + 250 * 16)
        let built = try TransportFeedback(senderSSRC: 0x1111_1111, mediaSSRC: 0x2222_2222, feedbackPacketCount: 7, packets: fb.packetResults)
        #expect(try RTCPPacket.transportFeedback(built).encode() == Self.transportFeedbackRunAndVector)
    }

    // MARK: Helpers

    @Test func nackListAndPIDBLPAgree() {
        let lost: [UInt16] = [100, 101, 105, 116, 117, 300]
        let items = GenericNACK.items(lostSequenceNumbers: lost)
        #expect(items == [
            .init(packetID: 100, lostBitmask: 0b1000_0000_0001_0001),
            .init(packetID: 117, lostBitmask: 0),
            .init(packetID: 300, lostBitmask: 0),
        ])
        #expect(GenericNACK.lostSequenceNumbers(items) == lost)
        // Across the wrap, and with a duplicate.
        let wrapping: [UInt16] = [65534, 65535, 65535, 0, 3]
        let nack = GenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: wrapping)
        #expect(nack.items == [.init(packetID: 65534, lostBitmask: 0b1_0011)])
        #expect(nack.lostSequenceNumbers == [65534, 65535, 0, 3])
    }

    @Test func rembBitrateKeepsEighteenBitsOfMantissa() throws {
        let (exponent, mantissa) = REMB.exponentAndMantissa(bitrate: 1_500_000)
        #expect(exponent == 3 && mantissa == 187_500)
        #expect(REMB.bitrate(exponent: exponent, mantissa: mantissa) == 1_500_000)
        let packet = RTCPPacket.remb(REMB(senderSSRC: 9, bitrate: 1_500_000, ssrcs: [1, 2]))
        #expect(try RTCPPacket.parseCompound(packet.encode()) == [packet])
        // Below 2^18 the value is exact; above, the low bits are dropped, never rounded up.
        #expect(REMB.exponentAndMantissa(bitrate: 262_143) == (0, 262_143))
        #expect(REMB.exponentAndMantissa(bitrate: 262_144) == (1, 131_072))
        let odd: UInt64 = 1_500_007
        let (e, m) = REMB.exponentAndMantissa(bitrate: odd)
        let back = REMB.bitrate(exponent: e, mantissa: m)
        #expect(back <= odd && odd - back < 1 << e && m < 1 << 18)
        // The largest wire values clamp rather than overflow.
        #expect(REMB.bitrate(exponent: 63, mantissa: 0x3_FFFF) == REMB.maximumBitrate)
        #expect(REMB.exponentAndMantissa(bitrate: .max) == (46, 0x3_FFFF))
    }

    // MARK: Round trips

    @Test func everyPacketTypeRoundTrips() throws {
        let block = ReportBlock(
            ssrc: 7, fractionLost: 255, cumulativeLost: -8_388_608, extendedHighestSequenceNumber: 0x0003_0010,
            jitter: 1234, lastSenderReport: 0xDEAD_BEEF, delaySinceLastSenderReport: 99)
        let packets: [RTCPPacket] = [
            .senderReport(SenderReport(ssrc: 1, ntpTimestamp: 0x0102_0304_0506_0708, rtpTimestamp: 3, packetCount: 4, octetCount: 5, reports: [block, block])),
            .senderReport(SenderReport(ssrc: 1, ntpTimestamp: 0, rtpTimestamp: 0, packetCount: 0, octetCount: 0, profileExtension: [9, 9, 9, 9])),
            .receiverReport(ReceiverReport(ssrc: 2, reports: [block])),
            .receiverReport(ReceiverReport(ssrc: 2)),
            .sourceDescription(SourceDescription(chunks: [
                .init(ssrc: 1, items: [.cname("{a1b2c3}"), .init(type: .tool, text: "atrium")]),
                .init(ssrc: 2, items: [.cname("abc")]),
                .init(ssrc: 3, items: []),
            ])),
            .goodbye(Goodbye(ssrcs: [1, 2, 3])),
            .goodbye(Goodbye(ssrcs: [4], reason: "shutting down")),
            .genericNACK(GenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [1, 2, 3, 40, 41, 1000])),
            .pictureLossIndication(PictureLossIndication(senderSSRC: 1, mediaSSRC: 2)),
            .fullIntraRequest(FullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 2, sequenceNumber: 1), .init(ssrc: 3, sequenceNumber: 255)])),
            .remb(REMB(senderSSRC: 1, bitrate: 1000 << 18, ssrcs: [])),  // exact: mantissa 256000, exponent 10
            .transportFeedback(try TransportFeedback(senderSSRC: 1, mediaSSRC: 2, feedbackPacketCount: 9, packets: [
                .init(sequenceNumber: 5, arrivalTime: 10_000), .init(sequenceNumber: 6, arrivalTime: nil),
                .init(sequenceNumber: 9, arrivalTime: 90_000),
            ])),
            .raw(RawRTCPPacket(packetType: .extendedReport, count: 0, payload: [0, 0, 0, 1, 4, 0, 0, 2, 0xAA, 0xBB, 0xCC, 0xDD, 1, 2, 3, 4])),
            .raw(RawRTCPPacket(packetType: .transportLayerFeedback, count: 3, payload: Array(0..<16))),  // TMMBR
            .raw(RawRTCPPacket(packetType: .payloadSpecificFeedback, count: 15, payload: [0, 0, 0, 1, 0, 0, 0, 0, 0x41, 0x42, 0x43, 0x44])),
            .raw(RawRTCPPacket(packetType: .application, count: 0, payload: [1, 2, 3])),  // needs padding
        ]
        for packet in packets {
            let bytes = try packet.encode()
            #expect(bytes.count % 4 == 0 && bytes[0] >> 6 == 2)
            #expect(((Int(bytes[2]) << 8 | Int(bytes[3])) + 1) * 4 == bytes.count)
            let parsed = try RTCPPacket.parseCompound(bytes)
            #expect(parsed == [packet])
            #expect(try parsed[0].encode() == bytes)
        }
        let compound = try RTCPPacket.encodeCompound(packets)
        #expect(try RTCPPacket.parseCompound(compound) == packets)
    }

    @Test func transportFeedbackRoundTripsLossesAndLargeDeltas() throws {
        // Starts just before the sequence number wrap; 40 packets lost in a row; a 100 ms jump
        // and a packet that arrived 2 ms before the one sent ahead of it.
        var packets: [TransportFeedback.PacketResult] = []
        var time: Int64 = 123_456_000
        for seq in 65530...65535 {
            time += 500
            packets.append(.init(sequenceNumber: UInt16(seq), arrivalTime: time))
        }
        for seq in 0..<40 { packets.append(.init(sequenceNumber: UInt16(seq), arrivalTime: nil)) }
        time += 100_000
        packets.append(.init(sequenceNumber: 40, arrivalTime: time))
        packets.append(.init(sequenceNumber: 41, arrivalTime: time - 2_000))
        for seq in 42..<60 {
            time += 1_000
            packets.append(.init(sequenceNumber: UInt16(seq), arrivalTime: seq % 5 == 0 ? nil : time))
        }
        let feedback = try TransportFeedback(senderSSRC: 0xAB, mediaSSRC: 0xCD, feedbackPacketCount: 200, packets: packets)
        #expect(feedback.baseSequenceNumber == 65530 && feedback.packetStatusCount == 66)
        #expect(feedback.chunks.contains { if case .runLength(.notReceived, let n) = $0 { n >= 14 } else { false } })
        #expect(feedback.receiveDeltas.contains(400) && feedback.receiveDeltas.contains(-8))

        let bytes = try RTCPPacket.transportFeedback(feedback).encode()
        guard case .transportFeedback(let parsed) = try RTCPPacket.parseCompound(bytes).first else {
            Issue.record("no transport feedback")
            return
        }
        #expect(parsed == feedback)
        // Times come back in the reference time base, here the same since it is under 2^23 · 64 ms.
        #expect(parsed.packetResults == packets)

        // Leaving lost packets out of the list means the same.
        let withoutLosses = try TransportFeedback(
            senderSSRC: 0xAB, mediaSSRC: 0xCD, feedbackPacketCount: 200, packets: packets.filter { $0.arrivalTime != nil })
        #expect(withoutLosses == feedback)

        // Arrival times are rounded to 250 µs without drift.
        let rounded = try TransportFeedback(senderSSRC: 1, mediaSSRC: 2, feedbackPacketCount: 0, packets: [
            .init(sequenceNumber: 1, arrivalTime: 64_100), .init(sequenceNumber: 2, arrivalTime: 64_400),
            .init(sequenceNumber: 3, arrivalTime: 64_700),
        ])
        #expect(rounded.packetResults.map(\.arrivalTime) == [64_000, 64_500, 64_750])

        // A gap too long for a 16-bit delta, or sequence numbers out of order, cannot be written.
        #expect(throws: RTCPError.self) {
            try TransportFeedback(senderSSRC: 1, mediaSSRC: 2, feedbackPacketCount: 0, packets: [
                .init(sequenceNumber: 1, arrivalTime: 0), .init(sequenceNumber: 2, arrivalTime: 9_000_000),
            ])
        }
        #expect(throws: RTCPError.self) {
            try TransportFeedback(senderSSRC: 1, mediaSSRC: 2, feedbackPacketCount: 0, packets: [
                .init(sequenceNumber: 2, arrivalTime: 0), .init(sequenceNumber: 1, arrivalTime: 1),
            ])
        }
    }

    // MARK: Malformed input

    static func expectError(_ code: RTCPError.Code, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let packets = try RTCPPacket.parseCompound(bytes)
            Issue.record("parsed \(packets), expected \(code)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func malformedPacketsAreRefusedWithAReason() {
        let sr = Self.senderReportAndCNAME
        Self.expectError(.truncated, [])
        Self.expectError(.truncated, Array(sr.prefix(3)))
        Self.expectError(.truncated, sr + [0x80, 0xC9])  // trailing bytes shorter than a header

        var version = sr
        version[0] = 0x41
        Self.expectError(.unsupportedVersion, version)

        Self.expectError(.lengthOverrun, Array(sr.prefix(sr.count - 4)))  // SDES claims 4 more bytes
        var overrun = sr
        overrun[3] = 0x40
        Self.expectError(.lengthOverrun, overrun)

        // Report count 2 with room for one block.
        var blocks = sr
        blocks[0] = 0x82
        Self.expectError(.truncated, blocks)
        // A receiver report whose length stops inside its block.
        Self.expectError(.truncated, Self.hex("81 C9 00 03  11 11 11 11  22 22 22 22  00 00 00 03"))

        // Padding bit with a zero count, and with a count larger than the packet.
        Self.expectError(.badPadding, Self.hex("A0 C9 00 02  11 11 11 11  00 00 00 00"))
        Self.expectError(.badPadding, Self.hex("A0 C9 00 02  11 11 11 11  00 00 00 09"))
        // Padding that eats into the SSRC.
        Self.expectError(.truncated, Self.hex("A0 C9 00 02  11 11 11 11  00 00 00 08"))

        // Feedback with sizes that disagree with their contents.
        Self.expectError(.truncated, Self.hex("81 CE 00 01  11 11 11 11"))  // PLI without media SSRC
        Self.expectError(.malformed, Self.hex("84 CE 00 03  11 11 11 11  00 00 00 00  22 22 22 22"))  // half a FIR entry
        Self.expectError(.truncated, Self.hex("8F CE 00 04  11 11 11 11  00 00 00 00  52 45 4D 42  02 0E DC 6C"))  // REMB
        var tooManyStatuses = Self.transportFeedback
        tooManyStatuses[15] = 0x09  // 9 packets: needs a second chunk
        Self.expectError(.truncated, tooManyStatuses)
        var reserved = Self.transportFeedback
        reserved[20] = 0xFC  // two-bit vector starting with the reserved symbol
        Self.expectError(.malformed, reserved)
        // SDES item running past the packet.
        Self.expectError(.truncated, Self.hex("81 CA 00 02  12 34 56 78  01 09 61 74"))
        // BYE reason running past the packet.
        Self.expectError(.truncated, Self.hex("81 CB 00 02  12 34 56 78  07 62 79 65"))
    }

    @Test func aBadPacketAfterGoodOnesFailsTheCompound() {
        let bad = Self.senderReportAndCNAME + Self.hex("81 CD 00 09  11 11 11 11")
        do {
            _ = try RTCPPacket.parseCompound(bad)
            Issue.record("parsed a compound with a bad third packet")
        } catch {
            #expect(error.code == .lengthOverrun)
            #expect(error.reason.contains("byte 72"))
        }
        let badContents = Self.senderReportAndCNAME + Self.hex("84 CE 00 03  11 11 11 11  00 00 00 00  22 22 22 22")
        do {
            _ = try RTCPPacket.parseCompound(badContents)
            Issue.record("parsed a compound with a bad third packet")
        } catch {
            #expect(error.code == .malformed)
            #expect(error.reason.hasPrefix("packet 2 (type 206) at byte 72"))
        }
    }

    @Test func valuesTheWireCannotCarryAreRefused() {
        let tooMany = RTCPPacket.receiverReport(ReceiverReport(ssrc: 1, reports: Array(repeating: ReportBlock(ssrc: 2), count: 32)))
        var out: [UInt8] = [1, 2, 3]
        #expect(throws: RTCPError.self) { try tooMany.encode(into: &out) }
        #expect(out == [1, 2, 3])
        let longReason = RTCPPacket.goodbye(Goodbye(ssrcs: [1], reason: String(repeating: "x", count: 256)))
        #expect(throws: RTCPError.self) { try longReason.encode() }
        // Cumulative loss saturates at 24 bits.
        let clamped = RTCPPacket.receiverReport(ReceiverReport(ssrc: 1, reports: [ReportBlock(ssrc: 2, cumulativeLost: 10_000_000)]))
        guard case .receiverReport(let rr) = try? RTCPPacket.parseCompound(clamped.encode()).first else {
            Issue.record("no receiver report")
            return
        }
        #expect(rr.reports.first?.cumulativeLost == 0x7F_FFFF)
    }

    // MARK: Mutations


    @Test func mutatedCompoundsParseOrThrowAndNeverCrash() throws {
        let seeds = [Self.senderReportAndCNAME, Self.receiverReportAndBye, Self.feedback, Self.transportFeedback,
                     Self.transportFeedbackRunAndVector, Self.receiverReportAndBye + Self.feedback + Self.transportFeedback]
        var generator = SplitMix64(state: 0x5EED)
        var parsedCount = 0
        var failedCount = 0
        for iteration in 0..<30_000 {
            var bytes = seeds[iteration % seeds.count]
            switch Int.random(in: 0..<5, using: &generator) {
            case 0:  // random bytes
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:  // single bit flips, often in headers, lengths and counts
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let i = Bool.random(using: &generator) ? Int.random(in: 0..<min(24, bytes.count), using: &generator) : Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[i] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
                }
            case 2:  // truncation, or cutting a piece out
                let cut = Int.random(in: 0..<bytes.count, using: &generator)
                if Bool.random(using: &generator) {
                    bytes = Array(bytes.prefix(cut))
                } else {
                    bytes.removeSubrange(cut..<min(bytes.count, cut + Int.random(in: 1...8, using: &generator)))
                }
            case 3:  // a random packet of a known type, with a plausible header and random contents
                let words = Int.random(in: 0...12, using: &generator)
                let type = UInt8.random(in: 200...207, using: &generator)
                let first = 0x80 | UInt8.random(in: 0...0x3F, using: &generator)
                bytes += [first, type, 0, UInt8(words)] + (0..<words * 4).map { _ in UInt8.random(in: 0...255, using: &generator) }
            default:  // a mutation and extra bytes
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                bytes += (0..<Int.random(in: 0...12, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }

            let parsed: [RTCPPacket]
            do {
                parsed = try RTCPPacket.parseCompound(bytes)
                parsedCount += 1
            } catch {
                failedCount += 1
                continue
            }
            // What parses re-encodes to something that parses the same (or is refused cleanly).
            for packet in parsed {
                switch packet {
                case .transportFeedback(let fb): #expect(fb.packetResults.count == Int(fb.packetStatusCount))
                case .genericNACK(let nack): _ = nack.lostSequenceNumbers
                case .sourceDescription(let sdes): _ = sdes.chunks.map(\.cname)
                default: break
                }
            }
            if let encoded = try? RTCPPacket.encodeCompound(parsed) {
                #expect(try RTCPPacket.parseCompound(encoded) == parsed, "iteration \(iteration)")
            }
            // The in-place rewrite accepts whatever the parser accepts.
            var copy = bytes
            let rewritten = copy.withUnsafeMutableBytes { buffer in
                try? RTCPPacket.rewriteFeedbackSSRCs(in: buffer, senderSSRC: 1, mediaSSRC: { $0 &+ 1 })
            }
            #expect(rewritten != nil, "iteration \(iteration)")
        }
        // Both outcomes were exercised.
        #expect(parsedCount > 1_000 && failedCount > 1_000)
    }

    // MARK: Relaying feedback

    @Test func rewritesFeedbackSSRCsInPlace() throws {
        let rr = Self.receiverReportAndBye.prefix(32)
        var datagram = Array(rr) + Self.feedback + Self.transportFeedback
        let rewritten = try datagram.withUnsafeMutableBytes { buffer in
            try RTCPPacket.rewriteFeedbackSSRCs(in: buffer, senderSSRC: 0xAAAA_AAAA) { $0 == 0x2222_2222 ? 0xBBBB_BBBB : nil }
        }
        #expect(rewritten == 4)
        let packets = try RTCPPacket.parseCompound(datagram)
        let original = try RTCPPacket.parseCompound(Array(rr) + Self.feedback + Self.transportFeedback)
        #expect(packets[0] == original[0])  // the receiver report is not feedback
        #expect(packets[1] == .genericNACK(GenericNACK(senderSSRC: 0xAAAA_AAAA, mediaSSRC: 0xBBBB_BBBB, lostSequenceNumbers: [100, 101, 105, 116, 117, 300])))
        #expect(packets[2] == .pictureLossIndication(PictureLossIndication(senderSSRC: 0xAAAA_AAAA, mediaSSRC: 0xBBBB_BBBB)))
        #expect(packets[3] == .fullIntraRequest(FullIntraRequest(senderSSRC: 0xAAAA_AAAA, mediaSSRC: 0, entries: [.init(ssrc: 0xBBBB_BBBB, sequenceNumber: 7)])))
        #expect(packets[4] == .remb(REMB(senderSSRC: 0xAAAA_AAAA, bitrate: 1_500_000, ssrcs: [0xBBBB_BBBB])))
        #expect(packets[5] == original[5])  // APP
        #expect(packets[6] == original[6])  // transport-wide feedback belongs to the transport, not relayed
        #expect(datagram.count == rr.count + Self.feedback.count + Self.transportFeedback.count)

        // Only the SSRC bytes changed.
        let before = Array(rr) + Self.feedback + Self.transportFeedback
        let changed = zip(before, datagram).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        // Sender and media of NACK and PLI, FIR sender and entry, REMB sender and listed source.
        let ssrcOffsets = [36, 40, 60, 64, 72, 80, 92, 108]
        #expect(Set(changed.map { $0 / 4 * 4 }) == Set(ssrcOffsets))

        // Keeping the sender SSRC and mapping nothing changes nothing.
        var untouched = before
        let count = try untouched.withUnsafeMutableBytes { try RTCPPacket.rewriteFeedbackSSRCs(in: $0, senderSSRC: nil) { _ in nil } }
        #expect(count == 4 && untouched == before)

        // A bad packet anywhere means nothing is written.
        var bad = Self.feedback + Self.hex("84 CE 00 03  11 11 11 11  00 00 00 00  22 22 22 22")
        let copy = bad
        #expect(throws: RTCPError.self) {
            try bad.withUnsafeMutableBytes { try RTCPPacket.rewriteFeedbackSSRCs(in: $0, senderSSRC: 5) { _ in 6 } }
        }
        #expect(bad == copy)
    }
}
