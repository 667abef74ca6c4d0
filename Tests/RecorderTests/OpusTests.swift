import Foundation
import RecorderCore
import Testing

/// libopus itself as the reference, through Python's ctypes (libopus0 comes with ffmpeg): `samples`
/// asks opus_packet_get_nb_samples about each packet; `decode` feeds them in order to one stereo
/// 48 kHz decoder and reports what opus_decode returned for each (negative: an error).
func libopus(_ command: String, _ packets: [[UInt8]]) throws -> [Int] {
    let script = """
        import ctypes, sys
        lib = ctypes.CDLL("libopus.so.0")
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        err = ctypes.c_int()
        dec = lib.opus_decoder_create(48000, 2, ctypes.byref(err))
        pcm = (ctypes.c_int16 * (5760 * 2))()
        for h in sys.argv[2:]:
            data = bytes.fromhex(h)
            if sys.argv[1] == "samples":
                print(lib.opus_packet_get_nb_samples(data, len(data), 48000))
            else:
                print(lib.opus_decode(dec, data, len(data), pcm, 5760, 0))
        """
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("recorder-libopus-\(UUID().uuidString).txt")
    defer { try? FileManager.default.removeItem(at: file) }
    let hex = packets.map { $0.map { String(format: "%02x", $0) }.joined() }
    guard FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/libopus.so.0") || FileManager.default.fileExists(atPath: "/usr/lib/aarch64-linux-gnu/libopus.so.0") else {
        throw FixtureError("libopus not found: install ffmpeg: make deps-test")
    }
    _ = try FFmpeg.locate("python3", installHint: "install python3: make deps-test")
    try FFmpeg.run("sh", ["-c", "python3 -c \"$0\" \"$@\" > \(file.path)", script, command] + hex)
    let text = try String(contentsOf: file, encoding: .utf8)
    return text.split(separator: "\n").compactMap { Int($0) }
}

@Suite struct OpusPacketTests {
    @Test func samplesComeFromTheTOCConfigurationAndFrameCount() {
        // SILK NB 10 ms, SILK WB 60 ms, Hybrid FB 20 ms x2, CELT NB 2.5 ms x2, CELT FB 20 ms x6 (code 3).
        #expect(OpusPacket.samples([0 << 3 | 0, 0xAA]) == 480)
        #expect(OpusPacket.samples([11 << 3 | 0, 0xAA]) == 2880)
        #expect(OpusPacket.samples([15 << 3 | 1, 0xAA, 0xBB]) == 1920)
        #expect(OpusPacket.samples([16 << 3 | 2, 1, 0xAA, 0xBB]) == 240)
        #expect(OpusPacket.samples([31 << 3 | 0x04 | 3, 6]) == 5760)
        // A DTX packet, a TOC alone: one empty frame.
        #expect(OpusPacket.samples([9 << 3]) == 960)
    }

    @Test func malformedPacketsHaveNoSampleCount() {
        #expect(OpusPacket.samples([UInt8]()) == nil)
        #expect(OpusPacket.samples([31 << 3 | 3, 0]) == nil)  // code 3 with no frames
        #expect(OpusPacket.samples([3 << 3 | 3, 3]) == nil)  // 3 x 60 ms is over 120 ms
        #expect(OpusPacket.samples([31 << 3 | 3]) == nil)  // code 3 without its count byte
        #expect(OpusPacket.samples([31 << 3 | 2]) == nil)  // code 2 without the first length
        #expect(OpusPacket.samples([31 << 3 | 1, 0xAA]) == nil)  // code 1 needs two equal halves
    }

    @Test func everyConfigurationAndCodeAgreesWithLibopus() throws {
        var packets: [[UInt8]] = []
        for config in UInt8(0)..<32 {
            for stereo: UInt8 in [0, 4] {
                let toc = config << 3 | stereo
                packets += [[toc, 0xAA], [toc | 1, 0xAA, 0xBB], [toc | 2, 1, 0xAA, 0xBB]]
                packets += [1, 2, 3, 6, 48].map { [toc | 3, $0] }
            }
        }
        let reference = try libopus("samples", packets)
        #expect(reference.count == packets.count)
        for (packet, expected) in zip(packets, reference) {
            // libopus reports more than 120 ms as an invalid packet (negative).
            #expect(OpusPacket.samples(packet) == (expected > 0 ? expected : nil), "packet \(packet)")
        }
    }

    @Test(arguments: [
        (UInt8(9 << 3), 9600),  // SILK WB 20 ms, 200 ms
        (UInt8(31 << 3 | 0x04), 19_200),  // CELT FB 20 ms stereo, 400 ms
        (UInt8(15 << 3), 7 * 960 + 480 + 240 + 120),  // Hybrid FB 20 ms: down to CELT 2.5 ms
        (UInt8(11 << 3), 2880 * 3 + 1920 + 480),  // SILK WB 60 ms: then 40 and 10 ms frames
        (UInt8(28 << 3 | 0x04), 1000),  // not a multiple of 2.5 ms: 40 samples cannot be expressed
        (UInt8(31 << 3), 100),
    ])
    func concealmentCoversTheGapInValidPackets(toc: UInt8, samples: Int) throws {
        let packets = OpusPacket.concealment(samples: samples, like: toc)
        let covered = packets.reduce(0) { $0 + $1.samples }
        #expect(covered == samples - samples % 120)
        for p in packets {
            #expect(p.samples <= OpusPacket.maxSamples)
            #expect(OpusPacket.samples(p.packet) == p.samples)
            #expect(p.packet.count == 2 && p.packet[0] & 0x03 == 3, "code 3, CBR, no padding, empty frames")
            #expect(p.packet[0] & 0x04 == toc & 0x04, "the stereo bit is kept")
        }
        if samples >= OpusPacket.frameSamples(config: Int(toc >> 3)) {
            #expect(packets.first?.packet[0] == toc | 3, "the gap is concealed in the stream's own configuration first")
        }
        // A real decoder turns each into exactly that much concealed audio.
        if !packets.isEmpty {
            let decoded = try libopus("decode", packets.map(\.packet))
            #expect(decoded == packets.map(\.samples))
        }
    }
}

@Suite struct OpusTimelineTests {
    /// A 20 ms CELT FB packet at RTP timestamp `ts`.
    func packet(_ seq: UInt16, _ ts: UInt32) -> ReceivedPacket {
        ReceivedPacket(sequenceNumber: seq, timestamp: ts, payloadType: 111, payload: [31 << 3, 0x11, 0x22, 0x33])
    }

    @Test func aLossAndADTXSilenceAreFilledExactly() {
        var timeline = OpusTimeline()
        let start: UInt32 = 0xFFFF_0000  // crosses the timestamp wrap on the way
        var written: [(packet: [UInt8], samples: Int, timestamp: Int64)] = []
        var seq: UInt16 = 1
        var ts = start
        func send(lossBefore: Bool = false) {
            written += timeline.push(packet(seq, ts), lossBefore: lossBefore)
            seq &+= 1
            ts &+= 960
        }
        for _ in 0..<5 { send() }
        #expect(timeline.samplesWritten == 5 * 960)
        #expect(timeline.startsSegment == false)
        // 10 packets (200 ms) lost.
        seq &+= 10
        ts &+= 10 * 960
        send(lossBefore: true)
        #expect(timeline.samplesWritten == 16 * 960)
        for _ in 0..<100 { send() }
        // DTX: 400 ms without packets, and no sequence gap.
        ts &+= 20 * 960
        send()
        send()
        let distance = Int64(ts &- start)  // to the end of the last packet sent
        #expect(timeline.samplesWritten == distance)
        #expect(written.reduce(0) { $0 + Int64($1.samples) } == distance)
        // Every entry starts where the one before ended.
        for (a, b) in zip(written, written.dropFirst()) { #expect(b.timestamp == a.timestamp + Int64(a.samples)) }
        #expect(written.first?.timestamp == Int64(start))
        let fills = written.filter { $0.packet.count == 2 }
        #expect(fills.reduce(0) { $0 + $1.samples } == (10 + 20) * 960)
        #expect(fills.allSatisfy { $0.packet[0] >> 3 == 31 })
    }

    @Test func aLongJumpIsADiscontinuityNotAGapToFill() {
        var timeline = OpusTimeline()
        _ = timeline.push(packet(1, 1000), lossBefore: false)
        #expect(timeline.startsSegment)
        _ = timeline.push(packet(2, 1960), lossBefore: false)
        #expect(!timeline.startsSegment)
        let out = timeline.push(packet(3, 1960 + 48_000 * 20), lossBefore: false)
        #expect(out.count == 1)
        #expect(timeline.startsSegment)
        #expect(timeline.samplesWritten == 3 * 960)
        // Going back more than a second is a restart too.
        let back = timeline.push(packet(4, 500), lossBefore: false)
        #expect(back.count == 1 && timeline.startsSegment)
        // The count carries on from there.
        #expect(timeline.push(packet(5, 500 + 960 * 3), lossBefore: true).reduce(0) { $0 + $1.samples } == 3 * 960)
        #expect(timeline.samplesWritten == 7 * 960)
    }

    @Test func emptyMalformedAndRepeatedPacketsAreSkipped() {
        var timeline = OpusTimeline()
        _ = timeline.push(packet(1, 0), lossBefore: false)
        #expect(timeline.push(ReceivedPacket(sequenceNumber: 2, timestamp: 960, payload: []), lossBefore: false).isEmpty)
        #expect(timeline.push(ReceivedPacket(sequenceNumber: 3, timestamp: 960, payload: [31 << 3 | 3, 0]), lossBefore: false).isEmpty)
        #expect(timeline.push(packet(4, 0), lossBefore: false).isEmpty)  // the same time again
        #expect(timeline.push(packet(5, 960), lossBefore: false).count == 1)
        #expect(timeline.samplesWritten == 2 * 960)
    }

    @Test func aGapShorterThanAConcealmentFrameIsCarriedToTheNext() {
        var timeline = OpusTimeline()
        _ = timeline.push(packet(1, 0), lossBefore: false)
        // 60 samples too far: nothing expresses that, so it waits.
        #expect(timeline.push(packet(2, 960 + 60), lossBefore: false).count == 1)
        #expect(timeline.samplesWritten == 2 * 960)
        // The next gap of 60 makes 120 (2.5 ms) with it.
        let out = timeline.push(packet(3, 2 * 960 + 120), lossBefore: false)
        #expect(out.map(\.samples) == [120, 960])
        #expect(timeline.samplesWritten == 3 * 960 + 120)
    }
}
