import Foundation
import PluginKit
import RTC
import RecorderCore
import Testing

/// An RTP packet as it is on the wire: the 12-byte header (RFC 3550 §5.1: version 2, no padding,
/// extension or CSRCs) and the payload.
func rtpBytes(_ p: ReceivedPacket) -> [UInt8] {
    var bytes: [UInt8] = [0x80, (p.marker ? 0x80 : 0) | (p.payloadType & 0x7F)]
    withUnsafeBytes(of: p.sequenceNumber.bigEndian) { bytes += $0 }
    withUnsafeBytes(of: p.timestamp.bigEndian) { bytes += $0 }
    withUnsafeBytes(of: p.ssrc.bigEndian) { bytes += $0 }
    return bytes + p.payload
}

/// One packet a participant sends: which stream, the packet, and when the sender captured it
/// (µs from the start of its media).
struct OutgoingPacket {
    var stream: TapStream
    var packet: ReceivedPacket
    var mediaMicros: Int64
    /// The video frame (or audio packet) it carries, counted from the start of the stream.
    var index: Int
}

/// A participant's camera and microphone as a browser sends them: the fixtures' VP8 frames at their
/// IVF times and the Opus packets one after the other (20 ms each), looped to `micros`, as RTP.
struct TestParticipant {
    static let labels = ["room": "r1", "participant": "p1", "display": "Pat", "plugin": "x"]

    var camera: TapStream
    var microphone: TapStream

    init(handle: UInt64, streams: (video: UInt64, audio: UInt64), ssrcs: (video: UInt32, audio: UInt32)) {
        camera = TapStream(id: streams.video, handleID: handle, labels: Self.labels, isVideo: true, mid: "1", rid: nil, codec: "vp8",
                           payloadType: 96, clockRate: 90_000, ssrc: ssrcs.video, fmtp: nil)
        microphone = TapStream(id: streams.audio, handleID: handle, labels: Self.labels, isVideo: false, mid: "0", rid: nil, codec: "opus",
                               payloadType: 111, clockRate: 48_000, ssrc: ssrcs.audio, fmtp: "minptime=10;useinbandfec=1")
    }

    /// The video: frame i is the fixture's frame i mod its count, one fixture length later per loop.
    func video(_ f: MediaFixtures, micros: Int64, sequenceNumber: UInt16, timestampBase: UInt32, pictureID: Int = 0) -> [OutgoingPacket] {
        let frames = f.video.frames
        let period = frames[frames.count - 1].pts * 2 - frames[frames.count - 2].pts
        // `frame:` of the sender counts RTP ticks here: frames are placed at their IVF times.
        var sender = TestRTPSender(sequenceNumber: sequenceNumber, timestampBase: timestampBase, ticksPerFrame: 1)
        var out: [OutgoingPacket] = []
        for i in 0... {
            let frame = frames[i % frames.count]
            let pts = Int64(i / frames.count) * period + frame.pts
            let at = pts * 1_000_000 * f.video.timebaseNumerator / f.video.timebaseDenominator
            guard at < micros else { break }
            let ticks = pts * 90_000 * f.video.timebaseNumerator / f.video.timebaseDenominator
            for var p in sender.packets(frame: Int(ticks), vp8Payloads(frame.data, pictureID: UInt16((pictureID + i) & 0x7FFF))) {
                p.ssrc = camera.ssrc
                p.payloadType = camera.payloadType
                out.append(OutgoingPacket(stream: camera, packet: p, mediaMicros: at, index: i))
            }
        }
        return out
    }

    /// The audio: the fixture's Opus packets, looped, each at the time of the samples before it.
    func audio(_ f: MediaFixtures, micros: Int64, sequenceNumber: UInt16, timestampBase: UInt32) -> [OutgoingPacket] {
        var sender = TestRTPSender(sequenceNumber: sequenceNumber, timestampBase: timestampBase, ticksPerFrame: 1)
        var out: [OutgoingPacket] = []
        var samples = 0
        for i in 0... {
            let at = Int64(samples) * 1_000_000 / 48_000
            guard at < micros else { break }
            let data = f.audioPackets[i % f.audioPackets.count]
            for var p in sender.packets(frame: samples, [data]) {
                p.ssrc = microphone.ssrc
                p.payloadType = microphone.payloadType
                out.append(OutgoingPacket(stream: microphone, packet: p, mediaMicros: at, index: i))
            }
            samples += OpusPacket.samples(data) ?? 960
        }
        return out
    }
}

/// Drives a RecordingEngine on a clock of its own (its folder is `scratch`, for the test to remove): packets are queued with the time they arrive and
/// delivered in that order, the engine ticks every 10 ms, and NACKs are answered from what was sent
/// (the sender's retransmission history) one round trip later.
final class EngineHarness: RecordingRequests {
    let scratch: Scratch
    let engine: RecordingEngine
    /// The host's monotonic clock (µs); the recording starts at its first value.
    private(set) var now: Int64 = 1_000_000_000
    private let epoch = Date(timeIntervalSince1970: 1_790_000_000)
    var date: Date { epoch.addingTimeInterval(Double(now) / 1_000_000) }

    private var inFlight: [(arrival: Int64, order: Int, stream: UInt64, bytes: [UInt8], rtcp: Bool)] = []
    private var order = 0
    private var history: [UInt64: [UInt16: [UInt8]]] = [:]
    private(set) var keyframeRequests: [(stream: UInt64, at: Int64)] = []
    private(set) var nacks: [(stream: UInt64, sequenceNumber: UInt16, at: Int64)] = []
    /// Whether the sender answers a NACK of this packet.
    var retransmits: (_ stream: UInt64, _ sequenceNumber: UInt16) -> Bool = { _, _ in true }
    var roundTripMicros: Int64 = 30_000

    init(configure: (inout RecorderConfig) -> Void = { _ in }) throws {
        scratch = try Scratch()
        var config = RecorderConfig()
        config.directory = scratch.directory
        config.rooms = ["r1"]
        configure(&config)
        engine = RecordingEngine(config: config)
        engine.requests = self
    }

    func start(_ streams: TapStream...) {
        for s in streams { engine.streamStarted(s, now: now, date: date) }
    }

    func end(_ streams: TapStream...) {
        for s in streams { engine.streamEnded(s.id, now: now) }
    }

    /// Sends `packets`, the first one's capture at `start`: each arrives `network` after its capture
    /// time, or never when `network` says nil (the sender still has it for retransmission).
    func send(_ packets: [OutgoingPacket], start: Int64, network: (OutgoingPacket) -> Int64? = { _ in 20_000 }) {
        for p in packets {
            let bytes = rtpBytes(p.packet)
            history[p.stream.id, default: [:]][p.packet.sequenceNumber] = bytes
            if let delay = network(p) { queue(start + p.mediaMicros + delay, p.stream.id, bytes, rtcp: false) }
        }
    }

    func sendRTCP(_ stream: TapStream, _ packets: [RTCPPacket], arrival: Int64) throws {
        queue(arrival, stream.id, try RTCPPacket.encodeCompound(packets), rtcp: true)
    }

    private func queue(_ arrival: Int64, _ stream: UInt64, _ bytes: [UInt8], rtcp: Bool) {
        inFlight.append((arrival, order, stream, bytes, rtcp))
        order += 1
    }

    /// Ticks every 10 ms until `end`, delivering what arrived since the last tick first.
    func run(until end: Int64) {
        while now < end {
            now += 10_000
            let due = inFlight.filter { $0.arrival <= now }.sorted { ($0.arrival, $0.order) < ($1.arrival, $1.order) }
            inFlight.removeAll { $0.arrival <= now }
            for d in due {
                d.bytes.withUnsafeBytes { bytes in
                    if d.rtcp {
                        engine.rtcp(stream: d.stream, bytes)
                    } else {
                        engine.rtp(stream: d.stream, bytes, arrivalMicros: d.arrival)
                    }
                }
            }
            engine.tick(now: now, date: date)
        }
    }

    /// The time the last packet queued arrives.
    var lastArrival: Int64 { inFlight.map(\.arrival).max() ?? now }

    func requestKeyframe(stream: UInt64) { keyframeRequests.append((stream, now)) }

    func requestRetransmission(stream: UInt64, _ sequenceNumbers: [UInt16]) {
        for s in sequenceNumbers {
            nacks.append((stream, s, now))
            if retransmits(stream, s), let bytes = history[stream]?[s] { queue(now + roundTripMicros, stream, bytes, rtcp: false) }
        }
    }

    /// The recording's manifest as written.
    func manifest(_ r: MeetingRecording) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: r.directory + "/meeting.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// What the real tools see in a recorded file.
struct RecordedFile {
    var codecs: [String]
    var video: [(pts: Double, flags: String)]
    var audio: [(pts: Double, flags: String)]
    var videoHashes: [String]
    var audioHashes: [String]
    var audioSamples: Int

    /// First audio packet's time minus first video packet's, in ms.
    var avOffsetMillis: Double { ((audio.first?.pts ?? .nan) - (video.first?.pts ?? .nan)) * 1_000 }

    /// Reads `path` with ffmpeg and ffprobe; it must decode (-xerror) with nothing on stderr, hold
    /// VP8 and Opus, and start its video on a keyframe.
    init(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let decoded = try MediaTool.decode(path)
        #expect(decoded.status == 0, "ffmpeg exit \(decoded.status)", sourceLocation: sourceLocation)
        #expect(decoded.stderr == "", sourceLocation: sourceLocation)
        let streams = try MediaTool.run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path])
        codecs = streams.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.sorted()
        #expect(codecs == ["opus", "vp8"], sourceLocation: sourceLocation)
        func packets(_ stream: String) throws -> [(pts: Double, flags: String)] {
            let run = try MediaTool.run("ffprobe", ["-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time,flags", "-of", "json", path])
            guard run.status == 0, let json = try JSONSerialization.jsonObject(with: run.stdout) as? [String: Any] else { throw ToolFailure(run: run) }
            return (json["packets"] as? [[String: Any]] ?? []).map { p in
                (Double(p["pts_time"] as? String ?? "") ?? .nan, p["flags"] as? String ?? "")
            }
        }
        video = try packets("v:0")
        audio = try packets("a:0")
        #expect(video.first?.flags.hasPrefix("K") == true, "the first video packet is a keyframe", sourceLocation: sourceLocation)
        videoHashes = try MediaTool.packetHashes(path, stream: "v:0")
        audioHashes = try MediaTool.packetHashes(path, stream: "a:0")
        audioSamples = try MediaTool.decodedAudioSamples(path)
    }
}

/// `count` elements of `xs` repeated from its start.
func looped<T>(_ xs: [T], _ count: Int) -> [T] { (0..<count).map { xs[$0 % xs.count] } }

/// The Recorder's engine end to end, on a clock the test drives: RTP and RTCP built from real VP8
/// and Opus, loss, reordering, retransmission, sender reports, wraps, a reconnect and a crash, each
/// file checked with ffmpeg, ffprobe and the manifest.
@Suite struct RecordingEngineTests {
    let fixtures: MediaFixtures

    init() throws {
        fixtures = try MediaFixtures.shared.get()
        try #require(fixtures.video.frames.count == fixtures.videoHashes.count)
        try #require(fixtures.audioPackets.count == fixtures.audioHashes.count)
        try #require(fixtures.audioPackets.allSatisfy { OpusPacket.samples($0) == 960 }, "the Opus fixture is in 20 ms packets")
    }

    /// 48 kHz samples in `millis` of audio, and the ±40 ms the decoded length may differ by.
    static func samples(millis: Int64) -> Int { Int(millis) * 48 }
    static let lengthTolerance = 40 * 48

    /// Indices of the frames ffmpeg wrote as keyframes, looped to `count`.
    func keyframes(_ count: Int) -> [Int] { (0..<count).filter { fixtures.video.frames[$0 % fixtures.video.frames.count].isVP8Keyframe } }

    /// 5 s of one participant into room r1 (recorded by the `rooms` policy) with a random sequence
    /// number and timestamp start, a 20 ms network, then `stop`.
    @Test func aCleanStreamIsRecordedExactly() throws {
        var random = SeededGenerator(seed: 11)
        let h = try EngineHarness()
        defer { h.scratch.remove() }
        let p = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (.random(in: 1...UInt32.max, using: &random), .random(in: 1...UInt32.max, using: &random)))
        let video = p.video(fixtures, micros: 5_000_000, sequenceNumber: .random(in: 0...60_000, using: &random), timestampBase: .random(in: 0...0x7FFF_FFFF, using: &random))
        let audio = p.audio(fixtures, micros: 5_000_000, sequenceNumber: .random(in: 0...60_000, using: &random), timestampBase: .random(in: 0...0x7FFF_FFFF, using: &random))
        h.start(p.camera, p.microphone)
        let recording = try #require(h.engine.active.first)
        #expect(recording.reason == .config)
        h.send(video + audio, start: h.now + 50_000)
        h.run(until: h.lastArrival + 100_000)
        let r = try h.engine.stop(id: nil, room: "r1", date: h.date)
        #expect(r === recording)
        #expect(r.files.count == 1)
        let path = try #require(r.files.first?.path)
        #expect((path as NSString).lastPathComponent == "participant-p1.webm")

        let frames = video.last!.index + 1, packets = audio.count
        #expect(frames == 150 && packets == 250)
        let file = try RecordedFile(path)
        #expect(file.videoHashes == looped(fixtures.videoHashes, frames))
        #expect(file.audioHashes == looped(fixtures.audioHashes, packets))
        #expect(abs(file.audioSamples - Self.samples(millis: 5_000)) <= Self.lengthTolerance, "decoded \(file.audioSamples) samples")
        // Both streams were captured and arrived together: no offset between them.
        #expect(abs(file.avOffsetMillis) <= 30, "A/V offset \(file.avOffsetMillis) ms")
        // Finished by the stop: a Duration, and a cue per keyframe.
        let mkv = try MatroskaInspection(path)
        #expect(mkv.errors.isEmpty && mkv.warnings.isEmpty, "\(mkv.errors) \(mkv.warnings)")
        #expect(abs((mkv.durationMillis ?? 0) - 5_000) <= 40, "Duration \(mkv.durationMillis ?? -1) ms")
        #expect(mkv.cuePoints == keyframes(frames).count)

        let m = try h.manifest(r)
        #expect(m["state"] as? String == "finished")
        #expect(m["room"] as? String == "r1")
        #expect(m["reason"] as? String == "config")
        let participants = m["participants"] as? [[String: Any]] ?? []
        #expect(participants.count == 1)
        #expect(participants.first?["participant"] as? String == "p1")
        #expect(participants.first?["display"] as? String == "Pat")
        let entries = participants.first?["files"] as? [[String: Any]] ?? []
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry["file"] as? String == "participant-p1.webm")
        #expect(entry["state"] as? String == "finished")
        // The media started 50 ms after the recording and took 20 ms to arrive.
        let offset = entry["offset_ms"] as? Int ?? -1
        #expect((60...80).contains(offset), "offset_ms \(offset)")
        let duration = entry["duration_ms"] as? Int ?? -1
        #expect(abs(duration - 5_000) <= 100, "duration_ms \(duration)")
        let tracks = (entry["tracks"] as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "")/\($0["codec"] ?? "")/\($0["mid"] ?? "")/\($0["lost_packets"] ?? "")" }
        #expect(tracks.sorted() == ["audio/opus/0/0", "video/vp8/1/0"])
    }

    /// Every packet is delayed by 20–80 ms (so they arrive out of order) and a few are lost; the
    /// engine NACKs them and the sender's retransmissions fill the gaps within the reorder wait.
    /// `unanswered`: video frame and audio packet whose first packet is lost for good.
    func lossyRun(seed: UInt64, unanswered: (video: Int, audio: Int)? = nil) throws
        -> (harness: EngineHarness, recording: MeetingRecording, video: [OutgoingPacket], audio: [OutgoingPacket], lostForGood: [OutgoingPacket])
    {
        var random = SeededGenerator(seed: seed)
        let h = try EngineHarness()
        let p = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (0x1111_1111, 0x2222_2222))
        let video = p.video(fixtures, micros: 5_000_000, sequenceNumber: 1_000, timestampBase: 123_456)
        let audio = p.audio(fixtures, micros: 5_000_000, sequenceNumber: 2_000, timestampBase: 654_321)
        // Lost on the way, answered when NACKed: packets of video frames 10, 45 (all of it) and 101,
        // audio packets 30 and 171.
        var dropped = Set([10, 101].compactMap { i in video.firstIndex { $0.index == i } }.map { video[$0].packet.sequenceNumber })
        dropped.formUnion(video.filter { $0.index == 45 }.map(\.packet.sequenceNumber))
        let droppedAudio = Set([30, 171].map { audio[$0].packet.sequenceNumber })
        let lostForGood = unanswered.map { u in [video.first { $0.index == u.video }!, audio[u.audio]] } ?? []
        h.retransmits = { stream, sequenceNumber in
            !lostForGood.contains { $0.stream.id == stream && $0.packet.sequenceNumber == sequenceNumber }
        }
        h.start(p.camera, p.microphone)
        h.send(video + audio, start: h.now + 50_000) { packet in
            let lost = packet.stream.isVideo ? dropped.contains(packet.packet.sequenceNumber) : droppedAudio.contains(packet.packet.sequenceNumber)
            let gone = lostForGood.contains { $0.stream.id == packet.stream.id && $0.packet.sequenceNumber == packet.packet.sequenceNumber }
            let delay = 20_000 + Int64.random(in: 0...60_000, using: &random)
            return lost || gone ? nil : delay
        }
        h.run(until: h.lastArrival + 100_000)
        // Every lost packet was asked for.
        let asked = Set(h.nacks.map { "\($0.stream)/\($0.sequenceNumber)" })
        for s in dropped { #expect(asked.contains("1/\(s)"), "video \(s) NACKed") }
        for s in droppedAudio { #expect(asked.contains("2/\(s)"), "audio \(s) NACKed") }
        for p in lostForGood { #expect(asked.contains("\(p.stream.id)/\(p.packet.sequenceNumber)")) }
        let r = try h.engine.stop(id: nil, room: "r1", date: h.date)
        return (h, r, video, audio, lostForGood)
    }

    @Test func reorderedAndRetransmittedPacketsGiveTheCleanRecording() throws {
        let run = try lossyRun(seed: 5)
        defer { run.harness.scratch.remove() }
        let path = try #require(run.recording.files.first?.path)
        let file = try RecordedFile(path)
        #expect(file.videoHashes == looped(fixtures.videoHashes, run.video.last!.index + 1))
        #expect(file.audioHashes == looped(fixtures.audioHashes, run.audio.count))
        #expect(abs(file.audioSamples - Self.samples(millis: 5_000)) <= Self.lengthTolerance, "decoded \(file.audioSamples) samples")
        #expect(abs(file.avOffsetMillis) <= 30, "A/V offset \(file.avOffsetMillis) ms")
        let tracks = (run.recording.files.first?.tracks ?? []).map { $0.input?.lostPackets ?? -1 }
        #expect(tracks == [0, 0], "nothing counted lost")
    }

    /// A video packet (frame 40, a delta frame) and an audio packet the sender never retransmits:
    /// video freezes until the next keyframe, which the engine asks for; audio is concealed.
    @Test func aPacketLostForGoodFreezesVideoUntilAKeyframeAndConcealsAudio() throws {
        let run = try lossyRun(seed: 6, unanswered: (video: 40, audio: 120))
        defer { run.harness.scratch.remove() }
        let frames = run.video.last!.index + 1
        let nextKeyframe = try #require(keyframes(frames).first { $0 > 40 })
        #expect(!keyframes(frames).contains(40))
        let file = try RecordedFile(try #require(run.recording.files.first?.path))
        let shown = (0..<frames).filter { $0 < 40 || $0 >= nextKeyframe }
        #expect(file.videoHashes == shown.map { fixtures.videoHashes[$0 % fixtures.videoHashes.count] })
        // The lost audio packet is replaced by one concealment packet of its length; nothing else changes.
        var expected = looped(fixtures.audioHashes, run.audio.count)
        #expect(file.audioHashes.count == expected.count)
        if file.audioHashes.count == expected.count {
            expected[120] = file.audioHashes[120]
            #expect(file.audioHashes == expected)
            #expect(file.audioHashes[120] != fixtures.audioHashes[120 % fixtures.audioHashes.count])
        }
        #expect(abs(file.audioSamples - Self.samples(millis: 5_000)) <= Self.lengthTolerance, "decoded \(file.audioSamples) samples")
        // A keyframe was asked for once the loss was given up (after the reorder wait), before the next one came.
        let lostAt = run.lostForGood[0]
        let captured = run.harness.keyframeRequests.filter { $0.stream == 1 }.map(\.at)
        let lossTime = 1_000_000_000 + 50_000 + lostAt.mediaMicros
        let keyTime = 1_000_000_000 + 50_000 + run.video.first { $0.index == nextKeyframe }!.mediaMicros
        #expect(captured.contains { $0 > lossTime + 400_000 && $0 < keyTime }, "keyframe requests at \(captured)")
        let lost = (run.recording.files.first?.tracks ?? []).map { ($0.isVideo, $0.input?.lostPackets ?? -1) }
        #expect(lost.map(\.1) == [1, 1], "\(lost)")
    }

    /// Random sequence numbers and timestamps, and sender reports that say the audio was captured 300
    /// ms after the video it arrives with: the file puts the audio 300 ms after the video. The first
    /// reports come before any RTP (before the reorder wait ends and the first frames are placed).
    @Test func senderReportsDecideTheLipSync() throws {
        var random = SeededGenerator(seed: 21)
        let h = try EngineHarness()
        defer { h.scratch.remove() }
        let p = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (.random(in: 1...UInt32.max, using: &random), .random(in: 1...UInt32.max, using: &random)))
        let videoBase = UInt32.random(in: 0...UInt32.max, using: &random), audioBase = UInt32.random(in: 0...UInt32.max, using: &random)
        let video = p.video(fixtures, micros: 3_000_000, sequenceNumber: .random(in: 0...UInt16.max, using: &random), timestampBase: videoBase)
        let audio = p.audio(fixtures, micros: 3_000_000, sequenceNumber: .random(in: 0...UInt16.max, using: &random), timestampBase: audioBase)
        let start = h.now + 50_000
        // The sender's NTP clock at the video's first frame.
        let ntpStart: UInt64 = 3_900_000_000 << 32
        func ntp(_ micros: Int64) -> UInt64 { ntpStart + UInt64(micros) * (1 << 32) / 1_000_000 }
        for second in 0..<3 {
            let m = Int64(second) * 1_000_000
            let arrival = second == 0 ? h.now + 10_000 : start + m + 20_000
            try h.sendRTCP(p.camera, [.senderReport(SenderReport(ssrc: p.camera.ssrc, ntpTimestamp: ntp(m), rtpTimestamp: videoBase &+ UInt32(m * 90 / 1_000),
                                                                  packetCount: 0, octetCount: 0))], arrival: arrival)
            try h.sendRTCP(p.microphone, [.senderReport(SenderReport(ssrc: p.microphone.ssrc, ntpTimestamp: ntp(m + 300_000),
                                                                      rtpTimestamp: audioBase &+ UInt32(m * 48 / 1_000), packetCount: 0, octetCount: 0))],
                           arrival: arrival)
        }
        h.start(p.camera, p.microphone)
        h.send(video + audio, start: start)
        h.run(until: h.lastArrival + 100_000)
        let r = try h.engine.stop(id: nil, room: "r1", date: h.date)
        let file = try RecordedFile(try #require(r.files.first?.path))
        #expect(abs(file.avOffsetMillis - 300) <= 30, "A/V offset \(file.avOffsetMillis) ms")
        #expect(file.videoHashes == looped(fixtures.videoHashes, video.last!.index + 1))
        #expect(file.audioHashes == looped(fixtures.audioHashes, audio.count))
    }

    /// Sequence numbers from 65500 and timestamps just before 2^32: both wrap in the first second.
    @Test func sequenceNumberAndTimestampWrapsAreInvisible() throws {
        let h = try EngineHarness()
        defer { h.scratch.remove() }
        let p = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (0x0101_0101, 0x0202_0202))
        let video = p.video(fixtures, micros: 3_000_000, sequenceNumber: 65_500, timestampBase: UInt32.max - 45_000)
        let audio = p.audio(fixtures, micros: 3_000_000, sequenceNumber: 65_500, timestampBase: UInt32.max - 24_000)
        #expect(video.contains { $0.packet.sequenceNumber == 0 } && audio.contains { $0.packet.sequenceNumber == 0 })
        h.start(p.camera, p.microphone)
        h.send(video + audio, start: h.now + 50_000)
        h.run(until: h.lastArrival + 100_000)
        let r = try h.engine.stop(id: nil, room: "r1", date: h.date)
        let file = try RecordedFile(try #require(r.files.first?.path))
        #expect(file.videoHashes == looped(fixtures.videoHashes, video.last!.index + 1))
        #expect(file.audioHashes == looped(fixtures.audioHashes, audio.count))
        #expect(abs(file.audioSamples - Self.samples(millis: 3_000)) <= Self.lengthTolerance, "decoded \(file.audioSamples) samples")
        #expect(abs(file.avOffsetMillis) <= 30, "A/V offset \(file.avOffsetMillis) ms")
        let last = try #require(file.video.last?.pts)
        #expect(abs(last * 1_000 - 2_967) <= 15, "last video frame at \(last) s")
    }

    /// The participant's streams end after 2.5 s and new ones (a new PeerConnection: new handle,
    /// stream ids, SSRCs, numbering) start 2 s later: the same file goes on, and its audio is as long
    /// as the wall clock (the 2 s gap concealed).
    @Test func aReconnectContinuesTheFileWithTheGapConcealed() throws {
        let h = try EngineHarness()
        defer { h.scratch.remove() }
        let first = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (0x0A0A_0A0A, 0x0B0B_0B0B))
        let second = TestParticipant(handle: 8, streams: (3, 4), ssrcs: (0x0C0C_0C0C, 0x0D0D_0D0D))
        let v1 = first.video(fixtures, micros: 2_500_000, sequenceNumber: 100, timestampBase: 10_000)
        let a1 = first.audio(fixtures, micros: 2_500_000, sequenceNumber: 200, timestampBase: 20_000)
        let v2 = second.video(fixtures, micros: 2_500_000, sequenceNumber: 40_000, timestampBase: 3_000_000_000, pictureID: 5_000)
        let a2 = second.audio(fixtures, micros: 2_500_000, sequenceNumber: 50_000, timestampBase: 4_000_000_000)
        h.start(first.camera, first.microphone)
        let start = h.now + 50_000
        h.send(v1 + a1, start: start)
        h.run(until: start + 2_500_000 + 100_000)
        h.end(first.camera, first.microphone)
        h.run(until: start + 4_500_000 - 10_000)
        h.start(second.camera, second.microphone)
        h.send(v2 + a2, start: start + 4_500_000)
        h.run(until: h.lastArrival + 100_000)
        let r = try h.engine.stop(id: nil, room: "r1", date: h.date)
        #expect(r.files.count == 1, "one file: \(r.files.map { $0.path ?? "-" })")
        let file = try RecordedFile(try #require(r.files.first?.path))
        let frames = v1.last!.index + 1
        #expect(file.videoHashes == looped(fixtures.videoHashes, frames) + looped(fixtures.videoHashes, v2.last!.index + 1))
        #expect(abs(file.audioSamples - Self.samples(millis: 7_000)) <= Self.lengthTolerance, "decoded \(file.audioSamples) samples")
        // The second video starts where the wall clock says, 4.5 s after the first.
        let resumed = try #require(file.video.dropFirst(frames).first?.pts)
        #expect(abs((resumed - (file.video.first?.pts ?? 0)) * 1_000 - 4_500) <= 30, "second video at \(resumed) s")
        let m = try h.manifest(r)
        let entries = (m["participants"] as? [[String: Any]])?.first?["files"] as? [[String: Any]] ?? []
        #expect(entries.count == 1)
        #expect((entries.first?["tracks"] as? [Any])?.count == 2)
    }

    /// A crash: 3 s written, no stop. A copy of the file as the kernel has it decodes; repaired, it
    /// decodes without a word.
    @Test func aFileLeftByACrashDecodesAndRepairsClean() throws {
        let h = try EngineHarness()
        defer { h.scratch.remove() }
        let p = TestParticipant(handle: 7, streams: (1, 2), ssrcs: (0x0E0E_0E0E, 0x0F0F_0F0F))
        h.start(p.camera, p.microphone)
        h.send(p.video(fixtures, micros: 3_000_000, sequenceNumber: 1, timestampBase: 1) + p.audio(fixtures, micros: 3_000_000, sequenceNumber: 1, timestampBase: 1),
               start: h.now + 50_000)
        h.run(until: h.lastArrival + 100_000)
        let recording = try #require(h.engine.active.first)
        let path = try #require(recording.files.first?.path)
        let copy = h.scratch.path("crashed.webm")
        try writeFile(copy, try fileBytes(path))
        h.engine.stopAll(date: h.date)

        let crashed = try MediaTool.decode(copy)
        #expect(crashed.status == 0, "\(crashed.stderr)")
        let report = try MatroskaRepair.repair(path: copy)
        #expect(!report.alreadyFinished)
        #expect(report.blocks > 0)
        let file = try RecordedFile(copy)
        let mkv = try MatroskaInspection(copy)
        #expect(mkv.errors.isEmpty && mkv.warnings.isEmpty, "\(mkv.errors) \(mkv.warnings)")
        #expect(abs((mkv.durationMillis ?? 0) - Double(report.durationMillis)) < 1)
        // Written up to the holdback behind the end (0.8 s) and the last flush (0.5 s).
        #expect(file.audioSamples >= Self.samples(millis: 1_500), "decoded \(file.audioSamples) samples")
        #expect(file.videoHashes == Array(looped(fixtures.videoHashes, 90).prefix(file.videoHashes.count)))
    }
}
