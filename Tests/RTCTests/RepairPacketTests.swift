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
