import RecorderCore
import Testing

/// VP9 packets as RFC 9628 senders make them (non-flexible mode): a 15-bit picture id, B and E on
/// the first and last packet of the layer frame, layer indices when `spatialID` is given, and the
/// scalability structure with the layer sizes on the first packet when `layerSizes` is given.
func vp9Payloads(
    _ frame: [UInt8], pictureID: UInt16, interPredicted: Bool, spatialID: Int? = nil, layerSizes: [(Int, Int)]? = nil
) -> [[UInt8]] {
    let pieces = chunks(frame, of: testMTU - 20)
    return pieces.enumerated().map { i, piece in
        var b0: UInt8 = 0x80 | (interPredicted ? 0x40 : 0)
        if spatialID != nil { b0 |= 0x20 }
        if i == 0 { b0 |= 0x08 }
        if i == pieces.count - 1 { b0 |= 0x04 }
        if i == 0, layerSizes != nil { b0 |= 0x02 }
        var d: [UInt8] = [b0, 0x80 | UInt8(pictureID >> 8 & 0x7F), UInt8(pictureID & 0xFF)]
        if let spatialID { d += [UInt8(spatialID) << 1, 0] }  // TID 0, SID, TL0PICIDX
        if i == 0, let layerSizes {
            d.append(UInt8(layerSizes.count - 1) << 5 | 0x10)  // N_S, Y=1, G=0
            for (w, h) in layerSizes { d += [UInt8(w >> 8), UInt8(w & 0xFF), UInt8(h >> 8), UInt8(h & 0xFF)] }
        }
        return d + piece
    }
}

/// Whether a VP9 frame of profile 0 is a keyframe: show_existing_frame 0 and frame_type 0.
func vp9IsKeyframe(_ frame: [UInt8]) -> Bool { frame[0] & 0x0C == 0 }

@Suite struct VP9AssemblerTests {
    func realStream() throws -> [[UInt8]] {
        let ivf = try FFmpeg.encode(
            size: "320x240",
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-g", "10", "-b:v", "800k"],
            format: "ivf")
        return ivfFrames(ivf)
    }

    @Test(arguments: [true, false])
    func aRealStreamSurvivesReorderingByteForByte(sendsScalabilityStructure: Bool) throws {
        let source = try realStream()
        #expect(source.count == 30)
        #expect(vp9IsKeyframe(source[0]))
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        for (i, frame) in source.enumerated() {
            let key = vp9IsKeyframe(frame)
            let sizes = sendsScalabilityStructure && key ? [(320, 240)] : nil
            packets += sender.packets(frame: i, vp9Payloads(frame, pictureID: UInt16(i), interPredicted: !key, layerSizes: sizes))
        }
        var assembler = makeVideoFrameAssembler(.vp9)
        let frames = transmit(packets, through: &assembler, seed: sendsScalabilityStructure ? 7 : 8)
        #expect(frames.map(\.data) == source)
        #expect(frames.map(\.isKeyframe) == source.map(vp9IsKeyframe))
        #expect(frames.map(\.timestamp) == source.indices.map { sender.extendedTimestamp(frame: $0) })
        // From the scalability structure, or else from the keyframe's uncompressed header.
        #expect(frames.filter(\.isKeyframe).allSatisfy { $0.width == 320 && $0.height == 240 })
        #expect(frames.count(where: \.isKeyframe) >= 3)
        #expect(assembler.codecPrivate == nil)
    }

    @Test func aLostPacketFreezesUntilTheNextKeyframe() throws {
        let source = try realStream()
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        var firstPacketOfFrame: [Int] = []
        for (i, frame) in source.enumerated() {
            firstPacketOfFrame.append(packets.count)
            packets += sender.packets(frame: i, vp9Payloads(frame, pictureID: UInt16(i), interPredicted: !vp9IsKeyframe(frame)))
        }
        let keyframes = source.indices.filter { vp9IsKeyframe(source[$0]) }
        #expect(keyframes.starts(with: [0, 10]))
        var assembler = makeVideoFrameAssembler(.vp9)
        let frames = deliver(packets, dropping: [firstPacketOfFrame[4]], to: &assembler)
        let expected = Array(0..<4) + Array(10..<source.count)
        #expect(frames.map(\.timestamp) == expected.map { sender.extendedTimestamp(frame: $0) })
    }

    @Test func spatialLayersOfOnePictureGetASuperframeIndex() {
        let base = [0x82, 0x49, 0x83, 0x42] + Array(repeating: UInt8(1), count: 96)  // 100 bytes
        let upper = [0x82] + Array(repeating: UInt8(2), count: 1999)  // 2000 bytes: 2-byte sizes
        var sender = TestRTPSender()
        let payloads =
            vp9Payloads(base, pictureID: 9, interPredicted: false, spatialID: 0, layerSizes: [(320, 180), (640, 360)])
            + vp9Payloads(upper, pictureID: 9, interPredicted: false, spatialID: 1)
        var assembler = makeVideoFrameAssembler(.vp9)
        let frames = deliver(sender.packets(frame: 0, payloads), to: &assembler)
        #expect(frames.count == 1)
        let marker: UInt8 = 0b1100_0000 | 1 << 3 | 1  // 2 bytes per size, 2 frames
        #expect(frames.first?.data == base + upper + [marker, 100, 0, 0xD0, 0x07, marker])
        #expect(frames.first?.isKeyframe == true)
        #expect(frames.first?.width == 640)
        #expect(frames.first?.height == 360)
    }

    @Test func flexibleModeReferenceIndicesAreStripped() {
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.vp9)
        // I P L F B E V Z: a flexible-mode keyframe with layer indices and a scalability structure,
        // then an inter frame with two P_DIFFs (N set on the first).
        let key: [UInt8] = [0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xF0, 0x00, 0xEF]
        let inter: [UInt8] = [0x86, 0x00, 0x40]
        let keyPayload: [UInt8] = [0xBE, 0x05, 0x00, 0x10, 0x01, 0x40, 0x00, 0xF0] + key
        let interPayload: [UInt8] = [0xFC, 0x06, 0x00, 0x03, 0x04] + inter
        var frames = deliver(sender.packets(frame: 0, [keyPayload]), to: &assembler)
        frames += deliver(sender.packets(frame: 1, [interPayload]), to: &assembler)
        #expect(frames.map(\.data) == [key, inter])
        #expect(frames.map(\.isKeyframe) == [true, false])
        #expect(frames.first?.width == 320)
        #expect(frames.first?.height == 240)
    }
}
