import Testing
@testable import RTC

@Suite struct RepairPacketTests {
    @Test func aRetransmissionCarriesTheOriginalSequenceNumber() throws {
        var original = rtpPacket(sequence: 0x1234, ssrc: 0xAAAA_AAAA, payload: 40)
        original[1] = 0x80 | 96  // marker set
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1_500, alignment: 8)
        defer { out.deallocate() }
        let length = try original.withUnsafeMutableBytes { bytes in
            let view = try RTPPacketView(buffer: bytes, length: bytes.count)
            var values = OutgoingExtensionValues()
            values.transportSequence = 77
            var ids = OutgoingExtensionIDs()
            ids.transportWideCC = 5
            return try #require(OutgoingRTP.write(view, ssrc: 0xBBBB_BBBB, ids: ids, values: values, into: out, repair: (97, 9)))
        }
        let repaired = try RTPPacketView(buffer: out, length: length)
        #expect(repaired.payloadType == 97)
        #expect(repaired.marker)
        #expect(repaired.sequenceNumber == 9)
        #expect(repaired.ssrc == 0xBBBB_BBBB)
        #expect(repaired.payloadLength == 42)
        #expect(out[repaired.payloadOffset] == 0x12 && out[repaired.payloadOffset + 1] == 0x34)
        #expect(Array(out[(repaired.payloadOffset + 2)..<length]) == Array(original[12...]))
    }

    @Test func paddingOnlyFiller() throws {
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 1_500, alignment: 8)
        defer { out.deallocate() }
        var values = OutgoingExtensionValues()
        values.transportSequence = 1
        var ids = OutgoingExtensionIDs()
        ids.transportWideCC = 5
        let length = try #require(OutgoingRTP.writePadding(ssrc: 5, payloadType: 97, sequenceNumber: 3, timestamp: 9, padding: 255,
                                                           ids: ids, values: values, into: out))
        let view = try RTPPacketView(buffer: out, length: length)
        #expect(view.payloadLength == 0)
        #expect(length == 12 + 8 + 255)
        #expect(OutgoingRTP.writePadding(ssrc: 5, payloadType: 97, sequenceNumber: 3, timestamp: 9, padding: 255, ids: ids, values: values,
                                         into: UnsafeMutableRawBufferPointer(rebasing: out[0..<100])) == nil)
    }
}

@Suite struct MissingPacketsTests {
    let ms: UInt64 = 1_000_000

    @Test func aGapIsAskedForAfterTheReorderWaitAndRetried() {
        var m = MissingPackets()
        m.received(10, now: 0)
        m.received(13, now: 1 * ms)  // 11 and 12 missing
        #expect(m.due(now: 5 * ms).isEmpty)  // maybe only reordered
        m.received(11, now: 6 * ms)
        #expect(m.due(now: 20 * ms) == [12])
        #expect(m.due(now: 30 * ms).isEmpty)
        #expect(m.due(now: 90 * ms) == [12])
        m.received(12, now: 95 * ms)
        #expect(m.isEmpty)
        #expect(m.recovered == 1 && m.requested == 2)
    }

    @Test func givesUpAfterItsRequestsAndAcrossTheWrap() {
        var m = MissingPackets()
        m.received(65_534, now: 0)
        m.received(1, now: 0)  // 65535 and 0 missing
        var asked: [UInt16] = []
        for t in stride(from: UInt64(20), through: 1_000, by: 20) { asked += m.due(now: t * ms) }
        #expect(asked.filter { $0 == 65_535 }.count == MissingPackets.maximumRequests)
        #expect(asked.filter { $0 == 0 }.count == MissingPackets.maximumRequests)
        #expect(m.isEmpty)
    }

    @Test func aJumpIsARestartNotALoss() {
        var m = MissingPackets()
        m.received(100, now: 0)
        m.received(100 + UInt16(MissingPackets.capacity) + 10, now: 0)
        #expect(m.isEmpty)
        // Many small gaps: never more than `capacity` tracked.
        var n = MissingPackets()
        var s: UInt16 = 0
        for _ in 0..<1_000 {
            s &+= 3
            n.received(s, now: 0)
        }
        #expect(n.due(now: 20 * ms).count <= MissingPackets.capacity)
    }
}

@Suite struct NegotiatedExtensionTests {
    @Test func anExtensionTheAnswerDroppedIsNotWritten() throws {
        func media(_ extmaps: [String]) throws -> MediaDescription {
            let lines = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0",
                         "a=mid:0", "a=rtpmap:96 VP8/90000"] + extmaps.map { "a=extmap:\($0)" }
            return try SessionDescription.parse(lines.joined(separator: "\r\n") + "\r\n").media[0]
        }
        let offered = OutgoingExtensionIDs(try media(["1 \(RTPHeaderExtensionURI.mid)", "5 \(RTPHeaderExtensionURI.transportWideCC)"]))
        #expect(offered.mid == 1 && offered.transportWideCC == 5)
        let kept = offered.kept(by: try media(["1 \(RTPHeaderExtensionURI.mid)"]))
        #expect(kept.mid == 1 && kept.transportWideCC == 0)
        // An answer naming it under another id did not keep ours either.
        #expect(offered.kept(by: try media(["3 \(RTPHeaderExtensionURI.transportWideCC)"])).transportWideCC == 0)
    }
}
