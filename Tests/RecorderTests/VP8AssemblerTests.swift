import RecorderCore
import Testing

/// VP8 packets as RFC 7741 senders make them: X set, a 15-bit picture id, S with PID 0 on the first
/// packet, N on non-reference frames.
func vp8Payloads(_ frame: [UInt8], pictureID: UInt16, nonReference: Bool = false) -> [[UInt8]] {
    chunks(frame, of: testMTU - 4).enumerated().map { i, chunk in
        let first: UInt8 = 0x80 | (i == 0 ? 0x10 : 0) | (nonReference ? 0x20 : 0)
        return [first, 0x80, 0x80 | UInt8(pictureID >> 8 & 0x7F), UInt8(pictureID & 0xFF)] + chunk
    }
}

/// A made-up VP8 frame: the 3-byte payload header (P bit 0 on keyframes), and on keyframes the
/// start code and size fields, then `length` bytes of filler.
func vp8Frame(keyframe: Bool, width: Int = 640, height: Int = 480, scaleBits: Int = 0, length: Int, fill: UInt8) -> [UInt8] {
    var frame: [UInt8] = [keyframe ? 0x10 : 0x11, 0x02, 0x00]
    if keyframe {
        let w = width | scaleBits << 14
        let h = height | scaleBits << 14
        frame += [0x9D, 0x01, 0x2A, UInt8(w & 0xFF), UInt8(w >> 8), UInt8(h & 0xFF), UInt8(h >> 8)]
    }
    return frame + Array(repeating: fill, count: length)
}

/// Pushes `packets` in order, as a reorder buffer would release them, leaving out the indices in
/// `dropped` and flagging the packet after each gap with `lossBefore`.
func deliver(_ packets: [ReceivedPacket], dropping dropped: Set<Int> = [], to assembler: inout any VideoFrameAssembler) -> [VideoFrame] {
    var frames: [VideoFrame] = []
    var loss = false
    for (i, p) in packets.enumerated() {
        if dropped.contains(i) {
            loss = true
            continue
        }
        frames += assembler.push(p, lossBefore: loss)
        loss = false
    }
    return frames
}

@Suite struct VP8AssemblerTests {
    @Test func aRealStreamSurvivesReorderingAndWrapsByteForByte() throws {
        let ivf = try FFmpeg.encode(
            size: "320x240", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-g", "10", "-b:v", "800k"],
            format: "ivf")
        let source = ivfFrames(ivf)
        #expect(source.count == 30)
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        for (i, frame) in source.enumerated() {
            packets += sender.packets(frame: i, vp8Payloads(frame, pictureID: UInt16(32_760 + i) & 0x7FFF))
        }
        #expect(packets.count > source.count, "some frames span several packets")
        var assembler = makeVideoFrameAssembler(.vp8)
        let frames = transmit(packets, through: &assembler)
        #expect(frames.map(\.data) == source)
        #expect(frames.map(\.timestamp) == source.indices.map { sender.extendedTimestamp(frame: $0) })
        #expect(frames.map(\.isKeyframe) == source.map { $0[0] & 0x01 == 0 })
        #expect(frames.first?.isKeyframe == true)
        #expect(frames.first?.width == 320)
        #expect(frames.first?.height == 240)
        #expect(frames.dropFirst().first?.width == nil)
        #expect(!assembler.needsKeyframe)
        #expect(assembler.codecPrivate == nil)
    }

    /// Frames 0 and 6 are keyframes, each frame 3 packets.
    func stream(nonReference: Set<Int> = []) -> (packets: [ReceivedPacket], sender: TestRTPSender) {
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        for i in 0..<9 {
            let frame = vp8Frame(keyframe: i % 6 == 0, length: 3000, fill: UInt8(i))
            packets += sender.packets(frame: i, vp8Payloads(frame, pictureID: UInt16(i), nonReference: nonReference.contains(i)))
        }
        return (packets, sender)
    }

    @Test func aLostPacketDropsItsFrameAndFreezesUntilTheNextKeyframe() {
        let (packets, sender) = stream()
        var assembler = makeVideoFrameAssembler(.vp8)
        #expect(assembler.needsKeyframe)
        // Frame 3 loses its middle packet (index 3 * 3 + 1).
        var frames = deliver(Array(packets[0..<18]), dropping: [10], to: &assembler)
        #expect(frames.map(\.timestamp) == [0, 1, 2].map { sender.extendedTimestamp(frame: $0) })
        #expect(assembler.needsKeyframe)
        frames = deliver(Array(packets[18...]), to: &assembler)
        #expect(frames.map(\.timestamp) == [6, 7, 8].map { sender.extendedTimestamp(frame: $0) })
        #expect(frames.first?.isKeyframe == true)
        #expect(!assembler.needsKeyframe)
    }

    @Test func losingTheMarkerPacketDropsTheFrameToo() {
        let (packets, sender) = stream()
        var assembler = makeVideoFrameAssembler(.vp8)
        let frames = deliver(packets, dropping: [5], to: &assembler)  // frame 1's last packet
        #expect(frames.map(\.timestamp) == [0, 6, 7, 8].map { sender.extendedTimestamp(frame: $0) })
    }

    @Test func aLostNonReferenceFrameDoesNotFreeze() {
        let (packets, sender) = stream(nonReference: [3])
        var assembler = makeVideoFrameAssembler(.vp8)
        let frames = deliver(packets, dropping: [10], to: &assembler)
        #expect(frames.map(\.timestamp) == [0, 1, 2, 4, 5, 6, 7, 8].map { sender.extendedTimestamp(frame: $0) })
        #expect(!assembler.needsKeyframe)
    }

    @Test func aWholeFrameLostFreezesButALostPaddingPacketDoesNot() {
        var (packets, sender) = stream()
        // A padding-only packet between frames 2 and 3, then the following sequence numbers move up.
        let padding = ReceivedPacket(sequenceNumber: packets[8].sequenceNumber &+ 1, timestamp: packets[8].timestamp, payload: [])
        for i in 9..<packets.count { packets[i].sequenceNumber &+= 1 }
        packets.insert(padding, at: 9)
        var assembler = makeVideoFrameAssembler(.vp8)
        var frames = deliver(packets, dropping: [9], to: &assembler)
        #expect(frames.count == 9, "picture ids 2 and 3 are consecutive: nothing but padding went")
        #expect(!assembler.needsKeyframe)

        // Frame 3 lost whole: picture id 4 does not follow 2.
        (packets, sender) = stream()
        assembler = makeVideoFrameAssembler(.vp8)
        frames = deliver(packets, dropping: [9, 10, 11], to: &assembler)
        #expect(frames.map(\.timestamp) == [0, 1, 2, 6, 7, 8].map { sender.extendedTimestamp(frame: $0) })
    }

    @Test func nothingComesOutBeforeTheFirstKeyframe() {
        let (packets, sender) = stream()
        var assembler = makeVideoFrameAssembler(.vp8)
        // Joining mid-stream: the first packets seen are frame 2's.
        let frames = deliver(Array(packets[6...]), to: &assembler)
        // The first timestamp seen is the reference of the extension: here one past the wrap.
        #expect(frames.map(\.timestamp) == [6, 7, 8].map { Int64(packets[$0 * 3].timestamp) })
        #expect(frames.map(\.timestamp) == [6, 7, 8].map { sender.extendedTimestamp(frame: $0) - (1 << 32) })
    }

    @Test func keyframeSizeIgnoresTheScaleBits() {
        var sender = TestRTPSender()
        let frame = vp8Frame(keyframe: true, width: 1280, height: 720, scaleBits: 2, length: 50, fill: 7)
        var assembler = makeVideoFrameAssembler(.vp8)
        let frames = deliver(sender.packets(frame: 0, vp8Payloads(frame, pictureID: 1)), to: &assembler)
        #expect(frames.count == 1)
        #expect(frames.first?.width == 1280)
        #expect(frames.first?.height == 720)
        #expect(frames.first?.data == frame)
    }

    @Test func descriptorsOfEveryShapeAreStripped() {
        // X with I (7-bit id), L, T and K; then X with nothing; then no X at all.
        let frame = vp8Frame(keyframe: true, length: 5, fill: 1)
        let payloads: [[UInt8]] = [
            [0x90, 0xF0, 0x05, 0x11, 0x40] + frame[0..<6],
            [0x80, 0x00] + frame[6..<10],
            [0x00] + frame[10...],
        ]
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.vp8)
        let frames = deliver(sender.packets(frame: 0, payloads), to: &assembler)
        #expect(frames.map(\.data) == [frame])
    }
}
