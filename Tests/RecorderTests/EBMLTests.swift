import RecorderCore
import Testing

@Suite struct EBMLTests {
    @Test func sizesTakeTheShortestVINTThatIsNotAllOnes() {
        #expect(EBML.size(0) == [0x80])
        #expect(EBML.size(1) == [0x81])
        #expect(EBML.size(126) == [0xFE])
        // 127 in one byte would be 0xFF, which means "unknown size".
        #expect(EBML.size(127) == [0x40, 0x7F])
        #expect(EBML.size(128) == [0x40, 0x80])
        #expect(EBML.size(16_382) == [0x7F, 0xFE])
        #expect(EBML.size(16_383) == [0x20, 0x3F, 0xFF])
        #expect(EBML.size((1 << 56) - 2) == [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE])
    }

    @Test func aSizeCanBeWidenedForALaterPatch() {
        #expect(EBML.size(5, length: 8) == [0x01, 0, 0, 0, 0, 0, 0, 5])
        #expect(EBML.size(300, length: 4) == [0x10, 0x00, 0x01, 0x2C])
        #expect(EBML.unknownSize == [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func unsignedIntegersAreMinimalBigEndian() {
        #expect(EBML.uint(0) == [0x00])
        #expect(EBML.uint(1) == [0x01])
        #expect(EBML.uint(255) == [0xFF])
        #expect(EBML.uint(256) == [0x01, 0x00])
        #expect(EBML.uint(1_000_000) == [0x0F, 0x42, 0x40])
        #expect(EBML.uint(.max) == [UInt8](repeating: 0xFF, count: 8))
    }

    @Test func floatsAreEightBytes() {
        #expect(EBML.float(48_000) == [0x40, 0xE7, 0x70, 0x00, 0x00, 0x00, 0x00, 0x00])
        #expect(EBML.readFloat(EBML.float(3_020.5)[...]) == 3_020.5)
    }

    @Test func idsKeepTheirMarkerBits() {
        #expect(EBMLID.segment.bytes == [0x18, 0x53, 0x80, 0x67])
        #expect(EBMLID.timestampScale.bytes == [0x2A, 0xD7, 0xB1])
        #expect(EBMLID.seekHead.bytes == [0x11, 0x4D, 0x9B, 0x74])
        #expect(EBMLID.simpleBlock.bytes == [0xA3])
    }

    @Test func elementsEncodeAsIDSizeAndData() {
        #expect(EBMLElement.uint(.timestampScale, 1_000_000).encoded == [0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40])
        #expect(EBMLElement.string(.docType, "webm").encoded == [0x42, 0x82, 0x84, 0x77, 0x65, 0x62, 0x6D])
        #expect(EBMLElement.float(.duration, 0).encoded.count == 11)
        let video = EBMLElement.master(.video, [.uint(.pixelWidth, 320), .uint(.pixelHeight, 240)])
        #expect(video.encoded == [0xE0, 0x87, 0xB0, 0x82, 0x01, 0x40, 0xBA, 0x81, 0xF0])
        #expect(EBMLElement.date(.dateUTC, nanosecondsSince2001: 1).encoded == [0x44, 0x61, 0x88, 0, 0, 0, 0, 0, 0, 0, 1])
    }

    @Test func voidsTakeExactlyTheirLength() {
        #expect(EBMLElement.void(totalLength: 2).encoded == [0xEC, 0x80])
        #expect(EBMLElement.void(totalLength: 11).encoded == [0xEC, 0x89] + [UInt8](repeating: 0, count: 9))
        for length in [2, 3, 100, 128, 129, 130, 200, 5000] {
            let void = EBMLElement.void(totalLength: length).encoded
            #expect(void.count == length)
            #expect(EBML.readHeader(void, at: 0).map { $0.headerLength + Int($0.size!) } == length)
        }
    }

    @Test func anElementFillsAReservedSpaceWithAVoidOrAWiderSize() throws {
        let element = EBMLElement.uint(.seekPosition, 1234)  // 53 AC 82 04 D2: 5 bytes
        #expect(element.filling(4) == nil)
        #expect(element.filling(5) == element.encoded)
        // One byte left over is too small for a Void: the size field grows instead.
        let six = try #require(element.filling(6))
        #expect(six == [0x53, 0xAC, 0x40, 0x02, 0x04, 0xD2])
        let seven = try #require(element.filling(7))
        #expect(seven == element.encoded + [0xEC, 0x80])
        let many = try #require(element.filling(300))
        #expect(many.count == 300)
        #expect(EBML.readHeader(many, at: 5)?.id == EBMLElement.voidID)
    }

    @Test func headersReadBackAndCutOrInvalidOnesAreRefused() throws {
        let header = try #require(EBML.readHeader(EBMLID.cluster.bytes + EBML.unknownSize, at: 0))
        #expect(header == EBML.ElementHeader(id: .cluster, size: nil, headerLength: 12))
        #expect(EBML.readHeader([0xA3, 0x40, 0x85], at: 0) == EBML.ElementHeader(id: .simpleBlock, size: 0x85, headerLength: 3))
        #expect(EBML.readHeader([0x1A, 0x45], at: 0) == nil)  // cut inside the ID
        #expect(EBML.readHeader([0xA3, 0x40], at: 0) == nil)  // cut inside the size
        #expect(EBML.readHeader([0x00, 0x81], at: 0) == nil)  // no length marker in the first byte
        #expect(EBML.readHeader([0x08, 0x11, 0x22, 0x33, 0x44, 0x81], at: 0) == nil)  // a 5-byte ID
        #expect(EBML.readHeader([0xA3, 0x81], at: 5) == nil)
        #expect(EBML.readHeader([0xA3, 0x81], at: -1) == nil)
    }
}
