import RecorderCore
import Testing

/// H.264 packets as RFC 6184 packetization-mode 1 senders make them: NAL units that fit go alone or,
/// when several fit together, in a STAP-A; larger ones are split into FU-A fragments.
func h264Payloads(_ nals: [[UInt8]], mtu: Int = testMTU) -> [[UInt8]] {
    var payloads: [[UInt8]] = []
    var i = 0
    while i < nals.count {
        let nal = nals[i]
        if nal.count > mtu {
            let indicator = nal[0] & 0xE0 | 28
            let pieces = chunks(Array(nal[1...]), of: mtu - 2)
            for (k, piece) in pieces.enumerated() {
                var header = nal[0] & 0x1F
                if k == 0 { header |= 0x80 }
                if k == pieces.count - 1 { header |= 0x40 }
                payloads.append([indicator, header] + piece)
            }
            i += 1
            continue
        }
        var group = [nal]
        var size = 1 + 2 + nal.count
        while i + group.count < nals.count, size + 2 + nals[i + group.count].count <= mtu {
            size += 2 + nals[i + group.count].count
            group.append(nals[i + group.count])
        }
        if group.count == 1 {
            payloads.append(nal)
        } else {
            var stap: [UInt8] = [group.map { $0[0] & 0x60 }.max()! | 24]
            for n in group { stap += [UInt8(n.count >> 8), UInt8(n.count & 0xFF)] + n }
            payloads.append(stap)
        }
        i += group.count
    }
    return payloads
}

/// Access units of an Annex-B stream whose encoder wrote an access unit delimiter before each.
func h264AccessUnits(_ stream: [UInt8]) -> [[[UInt8]]] {
    var units: [[[UInt8]]] = []
    for nal in annexBNALUnits(stream) {
        if nal[0] & 0x1F == 9 || units.isEmpty { units.append([]) }
        units[units.count - 1].append(nal)
    }
    return units
}

/// An access unit in AVCC form: each NAL unit after a 4-byte big-endian length.
func avcc(_ nals: [[UInt8]]) -> [UInt8] {
    var out: [UInt8] = []
    for n in nals {
        let length = UInt32(n.count)
        out += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        out += n
    }
    return out
}

func nalType(_ nal: [UInt8]) -> UInt8 { nal[0] & 0x1F }

@Suite struct H264AssemblerTests {
    /// A baseline SPS for 320x240 written by hand: profile 66, constraint flags C0, level 1.3,
    /// pic_order_cnt_type 2, one reference frame, 20x15 macroblocks, no cropping, no VUI.
    let sps: [UInt8] = [0x67, 0x42, 0xC0, 0x0D, 0xDA, 0x05, 0x07, 0xE4]
    let pps: [UInt8] = [0x68, 0xCE, 0x38, 0x80]
    let aud: [UInt8] = [0x09, 0xF0]

    func idr(_ length: Int, fill: UInt8) -> [UInt8] { [0x65, 0x88] + Array(repeating: fill, count: length) }
    func slice(_ length: Int, fill: UInt8, reference: Bool = true) -> [UInt8] {
        [reference ? 0x41 : 0x01, 0x9A] + Array(repeating: fill, count: length)
    }

    @Test func stapAAndFUAMakeOneAVCCAccessUnitAndTheAvcC() {
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.h264)
        let firstSlice = idr(50, fill: 1)
        let secondSlice = idr(3000, fill: 2)
        let key = h264Payloads([aud, sps, pps, firstSlice, secondSlice])
        #expect(key.count == 4)
        #expect(key[0][0] & 0x1F == 24 && key[1][0] & 0x1F == 28)
        var frames = deliver(sender.packets(frame: 0, key), to: &assembler)
        let filler: [UInt8] = [0x0C, 0xFF, 0xFF, 0x80]
        let inter = slice(40, fill: 3)
        frames += deliver(sender.packets(frame: 1, h264Payloads([aud, inter, filler])), to: &assembler)
        #expect(frames.map(\.data) == [avcc([sps, pps, firstSlice, secondSlice]), avcc([inter])])
        #expect(frames.map(\.isKeyframe) == [true, false])
        #expect(frames.first?.width == 320)
        #expect(frames.first?.height == 240)
        // AVCDecoderConfigurationRecord: version 1, profile, compatibility, level, 4-byte lengths,
        // one SPS, one PPS.
        #expect(assembler.codecPrivate == [1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1, 0, 8] + sps + [1, 0, 4] + pps)
    }

    @Test func anIDRWaitsForItsParameterSets() {
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.h264)
        var frames = deliver(sender.packets(frame: 0, h264Payloads([idr(2000, fill: 1)])), to: &assembler)
        frames += deliver(sender.packets(frame: 1, h264Payloads([slice(100, fill: 2)])), to: &assembler)
        #expect(frames.isEmpty)
        #expect(assembler.needsKeyframe)
        #expect(assembler.codecPrivate == nil)
        frames = deliver(sender.packets(frame: 2, h264Payloads([sps, pps, idr(2000, fill: 3)])), to: &assembler)
        #expect(frames.count == 1)
        #expect(frames.first?.isKeyframe == true)
        #expect(!assembler.needsKeyframe)
    }

    @Test func aMissingFragmentDropsTheAccessUnitAndFreezes() {
        var sender = TestRTPSender()
        var packets = sender.packets(frame: 0, h264Payloads([sps, pps, idr(100, fill: 1)]))
        let firstLost = packets.count + 1
        packets += sender.packets(frame: 1, h264Payloads([slice(3000, fill: 2)]))  // 3 fragments
        packets += sender.packets(frame: 2, h264Payloads([slice(100, fill: 3)]))
        packets += sender.packets(frame: 3, h264Payloads([sps, pps, idr(100, fill: 4)]))
        var assembler = makeVideoFrameAssembler(.h264)
        let frames = deliver(packets, dropping: [firstLost], to: &assembler)
        #expect(frames.map(\.timestamp) == [0, 3].map { sender.extendedTimestamp(frame: $0) })
        #expect(!assembler.needsKeyframe)
    }

    @Test func aLostNonReferenceSliceDoesNotFreeze() {
        var sender = TestRTPSender()
        var packets = sender.packets(frame: 0, h264Payloads([sps, pps, idr(100, fill: 1)]))
        let firstLost = packets.count + 1
        packets += sender.packets(frame: 1, h264Payloads([slice(3000, fill: 2, reference: false)]))
        packets += sender.packets(frame: 2, h264Payloads([slice(100, fill: 3)]))
        var assembler = makeVideoFrameAssembler(.h264)
        let frames = deliver(packets, dropping: [firstLost], to: &assembler)
        #expect(frames.map(\.timestamp) == [0, 2].map { sender.extendedTimestamp(frame: $0) })
        #expect(!assembler.needsKeyframe)
    }

    @Test func malformedPayloadsAreDroppedWithoutTrapping() {
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.h264)
        _ = deliver(sender.packets(frame: 0, h264Payloads([sps, pps, idr(10, fill: 1)])), to: &assembler)
        let bad: [[UInt8]] = [
            [0x78, 0x00, 0x10, 0x41],  // STAP-A whose size runs past the end
            [0x7C, 0x01, 0x02],  // FU-A middle fragment with no start
            [0x7A, 0x00],  // STAP-B (interleaved mode)
            [0x41],  // a slice with nothing in it
        ]
        for (i, payload) in bad.enumerated() {
            #expect(deliver(sender.packets(frame: i + 1, [payload]), to: &assembler).isEmpty)
        }
        #expect(assembler.needsKeyframe)
    }

    func realStream(_ size: String, frames: Int = 20, _ arguments: [String]) throws -> [UInt8] {
        try FFmpeg.encode(size: size, frames: frames, ["-c:v", "libx264", "-preset", "veryfast"] + arguments, format: "h264")
    }

    @Test func aRealStreamSurvivesReorderingWithTheSameNALUnits() throws {
        let stream = try realStream(
            "320x240", ["-profile:v", "baseline", "-x264-params", "aud=1:keyint=10:min-keyint=10:scenecut=0"])
        let units = h264AccessUnits(stream)
        #expect(units.count == 20)
        var sender = TestRTPSender()
        var packets: [ReceivedPacket] = []
        for (i, unit) in units.enumerated() { packets += sender.packets(frame: i, h264Payloads(unit)) }
        var assembler = makeVideoFrameAssembler(.h264)
        let frames = transmit(packets, through: &assembler, seed: 3)
        #expect(frames.map(\.data) == units.map { avcc($0.filter { nalType($0) != 9 }) })
        #expect(frames.map(\.isKeyframe) == units.map { $0.contains { nalType($0) == 5 } })
        #expect(frames.count(where: \.isKeyframe) == 2)
        #expect(frames.first?.width == 320)
        #expect(frames.first?.height == 240)
        // The same avcC as ffmpeg writes into an MP4 of this stream.
        let reference = try FFmpeg.mp4ConfigurationBox(stream, inputFormat: "h264", box: "avcC")
        #expect(assembler.codecPrivate == reference)
    }

    @Test(arguments: [
        // High profile without cropping; with scaling matrices (cqm=jvt) and 8 rows cropped;
        // High 4:4:4 with odd sizes (crop units of one sample); interlaced (crop units of 4 rows).
        ("1280x720", ["-profile:v", "high"], 1280, 720),
        ("640x360", ["-profile:v", "high", "-x264-params", "cqm=jvt"], 640, 360),
        ("320x180", ["-vf", "scale=321:181", "-profile:v", "high444", "-pix_fmt", "yuv444p"], 321, 181),
        ("1280x720", ["-profile:v", "high", "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1"], 1280, 720),
    ])
    func sizeFromARealSequenceParameterSet(size: String, arguments: [String], width: Int, height: Int) throws {
        let stream = try realStream(size, frames: 1, arguments)
        let nals = annexBNALUnits(stream)
        #expect(nals.contains { nalType($0) == 7 } && nals.contains { nalType($0) == 5 })
        var sender = TestRTPSender()
        var assembler = makeVideoFrameAssembler(.h264)
        let frames = deliver(sender.packets(frame: 0, h264Payloads(nals)), to: &assembler)
        #expect(frames.count == 1)
        #expect(frames.first?.width == width)
        #expect(frames.first?.height == height)
        // Beyond Baseline, Main and Extended the avcC ends with the chroma format and bit depths
        // (ISO/IEC 14496-15 §5.3.3.1).
        let sps = try #require(nals.first { nalType($0) == 7 })
        let avcC = try #require(assembler.codecPrivate)
        #expect(Array(avcC.prefix(4)) == [1, sps[1], sps[2], sps[3]])
        let pps = try #require(nals.first { nalType($0) == 8 })
        #expect(avcC.count == 6 + 2 + sps.count + 1 + 2 + pps.count + 4)
        let chromaFormat: UInt8 = arguments.contains("yuv444p") ? 3 : 1
        #expect(Array(avcC.suffix(4)) == [0xFC | chromaFormat, 0xF8, 0xF8, 0])
    }
}
