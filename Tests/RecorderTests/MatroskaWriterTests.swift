import Foundation
import RecorderCore
import Testing

/// One frame as a recorder hands it to the writer: on the file's timeline, tracks interleaved.
struct RecordedFrame {
    var track: UInt64
    var millis: Int64
    var keyframe: Bool
    var data: [UInt8]
}

extension MediaFixtures {
    var videoTrack: MatroskaTrack { MatroskaTrack(number: 1, kind: .video, codecID: "V_VP8", width: video.width, height: video.height) }
    var audioTrack: MatroskaTrack { .opus(number: 2, channels: channels, preSkip: preSkip) }

    /// The VP8 and Opus frames in timestamp order; video first on a tie, so its keyframe opens the cluster.
    var interleaved: [RecordedFrame] {
        let videoFrames = video.frames.map { RecordedFrame(track: 1, millis: video.millis($0), keyframe: $0.isVP8Keyframe, data: $0.data) }
        var samples = 0
        let audioFrames = audioPackets.map { packet in
            defer { samples += opusSamples(packet) }
            return RecordedFrame(track: 2, millis: Int64(samples / 48), keyframe: true, data: packet)
        }
        return (videoFrames + audioFrames).enumerated()
            .sorted { ($0.element.millis, $0.element.track, $0.offset) < ($1.element.millis, $1.element.track, $1.offset) }
            .map(\.element)
    }

    /// How long the recording really is: the later of the last video frame's end and the audio's end.
    var lengthMillis: Int64 {
        let frameMillis = 1000 * video.timebaseNumerator / video.timebaseDenominator
        let videoEnd = video.millis(video.frames.last!) + frameMillis
        let audioEnd = Int64(audioPackets.reduce(0) { $0 + opusSamples($1) } / 48)
        return max(videoEnd, audioEnd)
    }

    /// Writes the fixture through a `MatroskaWriter`, left open (not finished). Returns it with where
    /// each frame's block ends in the file.
    func record(to path: String) throws -> (writer: MatroskaWriter, blockEnds: [Int], frames: [RecordedFrame]) {
        let writer = try MatroskaWriter(
            path: path, docType: "webm", tracks: [videoTrack, audioTrack], title: "Atrium test meeting",
            date: Date(timeIntervalSince1970: 1_700_000_000)
        )
        let frames = interleaved
        var ends: [Int] = []
        for frame in frames {
            try writer.write(track: frame.track, timestampMillis: frame.millis, keyframe: frame.keyframe, frame: frame.data)
            ends.append(writer.bytesWritten)
        }
        try writer.flush()
        return (writer, ends, frames)
    }
}

/// What mkvmerge and mkvinfo say about a Matroska file.
struct MatroskaInspection {
    var json: [String: Any]
    /// `mkvinfo -a -P`: every element, cues included, with its position.
    var info: String

    init(_ path: String) throws {
        json = try MediaTool.identify(path)
        let run = try MediaTool.run("mkvinfo", ["-a", "-P", path])
        info = run.output + run.stderr
    }

    var errors: [String] { json["errors"] as? [String] ?? ["no errors list"] }
    var warnings: [String] { json["warnings"] as? [String] ?? ["no warnings list"] }
    var container: [String: Any] { json["container"] as? [String: Any] ?? [:] }
    var durationMillis: Double? { ((container["properties"] as? [String: Any])?["duration"] as? NSNumber).map { $0.doubleValue / 1e6 } }
    var codecIDs: [String] {
        (json["tracks"] as? [[String: Any]] ?? []).compactMap { ($0["properties"] as? [String: Any])?["codec_id"] as? String }
    }

    private var lines: [Substring] { info.split(separator: "\n") }

    /// The number after `marker` on a line, e.g. the 1234 of "Cluster at 1234".
    private static func number(after marker: String, in line: Substring) -> Int? {
        guard let range = line.range(of: marker) else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// Each cluster's position and the first block in it, as mkvinfo prints that block ("key, track number 1, ...").
    var clusters: [(position: Int, firstBlock: String)] {
        var clusters: [(position: Int, firstBlock: String)] = []
        for line in lines {
            if let position = Self.number(after: "+ Cluster at ", in: line) {
                clusters.append((position, ""))
            } else if let range = line.range(of: "+ Simple block: "), let last = clusters.indices.last, clusters[last].firstBlock.isEmpty {
                clusters[last].firstBlock = String(line[range.upperBound...])
            }
        }
        return clusters
    }

    /// Where each CuePoint points, as a position in the file (mkvinfo prints it relative to the Segment's data).
    var cueTargets: [Int] {
        guard let segment = lines.first(where: { $0.contains("+ Segment: size") }), let at = Self.number(after: " at ", in: segment) else { return [] }
        let segmentData = at + 12  // the Segment's 4-byte ID and 8-byte size
        return lines.compactMap { Self.number(after: "+ Cue cluster position: ", in: $0) }.map { $0 + segmentData }
    }

    var cuePoints: Int { lines.filter { $0.contains("+ Cue point") }.count }
}

@Suite struct MatroskaWriterTests {
    @Test func vp8AndOpusPlayBitExactAndSeekAfterFinish() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("meeting.webm")
        let (writer, _, frames) = try fixtures.record(to: path)
        #expect(writer.lastTimestampMillis == frames.last?.millis)
        try writer.finish()

        let decode = try MediaTool.decode(path)
        #expect(decode.status == 0)
        #expect(decode.stderr == "")

        let streams = try MediaTool.run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name,codec_type,width,height,channels", "-of", "csv=p=0", path])
        #expect(streams.output.split(separator: "\n") == ["vp8,video,320,240", "opus,audio,\(fixtures.channels)"])
        let packets = try MediaTool.run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags", "-of", "csv=p=0", path])
        #expect(packets.output.split(separator: "\n").first?.hasPrefix("K") == true)

        // Every payload, video and audio, arrives unchanged.
        #expect(try MediaTool.packetHashes(path, stream: "v:0") == fixtures.videoHashes)
        #expect(try MediaTool.packetHashes(path, stream: "a:0") == fixtures.audioHashes)

        let inspection = try MatroskaInspection(path)
        #expect(inspection.errors.isEmpty)
        #expect(inspection.warnings.isEmpty)
        #expect(inspection.container["recognized"] as? Bool == true)
        #expect(inspection.container["supported"] as? Bool == true)
        #expect(inspection.codecIDs == ["V_VP8", "A_OPUS"])
        let duration = try #require(inspection.durationMillis)
        #expect(abs(duration - Double(fixtures.lengthMillis)) <= 34, "Duration \(duration) ms, recorded \(fixtures.lengthMillis) ms")
        #expect(inspection.info.contains("Document type: webm"))
        #expect(inspection.info.contains("Seek head"))
        #expect(inspection.info.contains("Codec-inherent delay: 00:00:00.006500000"))
        #expect(inspection.info.contains("Seek pre-roll: 00:00:00.080000000"))
        #expect(inspection.info.contains("Codec's private data: size 19"))
        // Each keyframe opened a cluster, and each such cluster is a seek point.
        let keyframes = fixtures.video.frames.filter(\.isVP8Keyframe).count
        #expect(keyframes >= 3)
        let clusters = inspection.clusters
        #expect(clusters.count == keyframes)
        #expect(clusters.allSatisfy { $0.firstBlock.hasPrefix("key, track number 1,") })
        #expect(inspection.cueTargets == clusters.map(\.position))

        let seek = try MediaTool.run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-ss", "1.5", "-i", path, "-frames:v", "1", "-f", "null", "-"])
        #expect(seek.status == 0)
        #expect(seek.stderr == "")
    }

    @Test func audioOnlyGetsAClusterAndASeekPointEveryFewSeconds() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("voice.webm")
        let writer = try MatroskaWriter(path: path, docType: "webm", tracks: [fixtures.audioTrack])
        writer.maxClusterMillis = 1000
        var samples = 0
        for packet in fixtures.audioPackets {
            try writer.write(track: 2, timestampMillis: Int64(samples / 48), keyframe: false, frame: packet)
            samples += opusSamples(packet)
        }
        try writer.finish()

        let decode = try MediaTool.decode(path)
        #expect(decode.status == 0 && decode.stderr == "", "\(decode.stderr)")
        #expect(try MediaTool.packetHashes(path, stream: "a:0") == fixtures.audioHashes)
        let inspection = try MatroskaInspection(path)
        #expect(inspection.errors.isEmpty && inspection.warnings.isEmpty)
        // A cluster, and a seek point, every second: at 0, 1, 2 and 3 s of a 3.02 s recording.
        let lastMillis = try #require(writer.lastTimestampMillis)
        #expect(inspection.clusters.count == Int(lastMillis / 1000) + 1)
        #expect(inspection.cueTargets == inspection.clusters.map(\.position))
    }

    @Test func writesThatTheFormatCannotHoldAreRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let h264 = MatroskaTrack(number: 1, kind: .video, codecID: "V_MPEG4/ISO/AVC", width: 16, height: 16)
        #expect(throws: RecordingError.self) { try MatroskaWriter(path: scratch.path("a.webm"), docType: "webm", tracks: [h264]) }
        #expect(throws: RecordingError.self) { try MatroskaWriter(path: scratch.path("b.mkv"), docType: "mkv", tracks: [h264]) }
        #expect(throws: RecordingError.self) { try MatroskaWriter(path: scratch.path("c.mkv"), docType: "matroska", tracks: [h264, h264]) }

        let writer = try MatroskaWriter(path: scratch.path("d.mkv"), docType: "matroska", tracks: [h264])
        try writer.write(track: 1, timestampMillis: 100, keyframe: true, frame: [0, 0, 0, 1, 0x65])
        let back = try #require(throws: RecordingError.self) { try writer.write(track: 1, timestampMillis: 99, keyframe: false, frame: [1]) }
        #expect(back.code == .invalidArgument)
        #expect(throws: RecordingError.self) { try writer.write(track: 2, timestampMillis: 100, keyframe: true, frame: [1]) }
        try writer.finish()
        let closed = try #require(throws: RecordingError.self) { try writer.write(track: 1, timestampMillis: 200, keyframe: true, frame: [1]) }
        #expect(closed.code == .closed)
    }

    @Test func aLongGapStartsANewClusterBeforeTheBlockOffsetOverflows() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("gap.webm")
        let writer = try MatroskaWriter(path: path, docType: "webm", tracks: [.opus(number: 1, channels: 1)])
        writer.maxClusterMillis = 60_000
        // Silence-only frames ("TOC byte, no data"): 20 ms each, then a 40 s jump past an int16 of milliseconds.
        for millis in stride(from: Int64(0), to: 200, by: 20) { try writer.write(track: 1, timestampMillis: millis, keyframe: true, frame: [0xF8]) }
        for millis in stride(from: Int64(40_000), to: 40_200, by: 20) { try writer.write(track: 1, timestampMillis: millis, keyframe: true, frame: [0xF8]) }
        try writer.finish()

        let inspection = try MatroskaInspection(path)
        #expect(inspection.errors.isEmpty && inspection.warnings.isEmpty)
        #expect(inspection.cuePoints == 2)
        let timestamps = try MediaTool.run("ffprobe", ["-v", "error", "-show_entries", "packet=pts", "-of", "csv=p=0", path])
        let pts = timestamps.output.split(separator: "\n").compactMap { Int($0) }
        #expect(pts.count == 20)
        // ffmpeg shifts Opus by its CodecDelay; the spacing is what was written.
        #expect(pts.last.flatMap { last in pts.first.map { last - $0 } } == 40_180)
    }
}

/// An H.264 Annex-B stream cut into access units (at each access unit delimiter), its NAL units
/// without start codes.
struct AnnexBStream {
    var accessUnits: [[[UInt8]]]

    init(_ bytes: [UInt8]) {
        var units: [[UInt8]] = []
        var start: Int?
        var i = 0
        while i + 3 <= bytes.count {
            if bytes[i] == 0, bytes[i + 1] == 0, bytes[i + 2] == 1 {
                if let start {
                    // A 4-byte start code's leading zero belongs to the next start code, not this unit.
                    var end = i
                    if end > start, bytes[end - 1] == 0 { end -= 1 }
                    units.append(Array(bytes[start..<end]))
                }
                start = i + 3
                i += 3
            } else {
                i += 1
            }
        }
        if let start, start < bytes.count { units.append(Array(bytes[start...])) }
        accessUnits = []
        for unit in units where !unit.isEmpty {
            if unit[0] & 0x1F == 9 || accessUnits.isEmpty { accessUnits.append([]) }
            if unit[0] & 0x1F != 9 { accessUnits[accessUnits.count - 1].append(unit) }
        }
        accessUnits.removeAll { $0.isEmpty }
    }

    func first(type: UInt8) -> [UInt8]? { accessUnits.joined().first { $0[0] & 0x1F == type } }
}

@Suite struct MatroskaH264Tests {
    @Test func h264InMatroskaDecodesToTheSamePictures() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let source = scratch.path("camera.h264"), path = scratch.path("camera.mkv")
        let encode = try MediaTool.run("ffmpeg", [
            "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2",
            "-c:v", "libx264", "-profile:v", "baseline", "-g", "30", "-x264-params", "aud=1", "-f", "h264", source,
        ])
        #expect(encode.status == 0, "\(encode.stderr)")
        let stream = AnnexBStream(try fileBytes(source))
        #expect(stream.accessUnits.count == 60)
        let sps = try #require(stream.first(type: 7)), pps = try #require(stream.first(type: 8))
        let avcC = try #require(H264SequenceParameterSet.avcC(sps: sps, pps: pps))

        let writer = try MatroskaWriter(
            path: path, docType: "matroska",
            tracks: [MatroskaTrack(number: 1, kind: .video, codecID: "V_MPEG4/ISO/AVC", codecPrivate: avcC, width: 320, height: 240)]
        )
        for (index, unit) in stream.accessUnits.enumerated() {
            var frame: [UInt8] = []
            for nal in unit {
                frame.append(contentsOf: [UInt8(nal.count >> 24 & 0xFF), UInt8(nal.count >> 16 & 0xFF), UInt8(nal.count >> 8 & 0xFF), UInt8(nal.count & 0xFF)])
                frame.append(contentsOf: nal)
            }
            let idr = unit.contains { $0[0] & 0x1F == 5 }
            try writer.write(track: 1, timestampMillis: Int64(index * 1000 / 30), keyframe: idr, frame: frame)
        }
        try writer.finish()

        let decode = try MediaTool.decode(path)
        #expect(decode.status == 0 && decode.stderr == "", "\(decode.stderr)")
        // Decoded pictures, hashed: the same from the Annex-B source and from the Matroska file.
        func pictureHashes(_ file: String) throws -> [String] {
            let run = try MediaTool.run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", file, "-map", "0:v:0", "-f", "framemd5", "-"])
            return run.output.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) } }
        }
        let sourcePictures = try pictureHashes(source)
        #expect(sourcePictures.count == 60)
        #expect(try pictureHashes(path) == sourcePictures)

        let inspection = try MatroskaInspection(path)
        #expect(inspection.errors.isEmpty && inspection.warnings.isEmpty, "\(inspection.errors) \(inspection.warnings)")
        #expect(inspection.codecIDs == ["V_MPEG4/ISO/AVC"])
        #expect(inspection.info.contains("Document type: matroska"))
        let idrs = stream.accessUnits.filter { $0.contains { $0[0] & 0x1F == 5 } }.count
        #expect(idrs >= 2)
        #expect(inspection.clusters.count == idrs && inspection.cueTargets == inspection.clusters.map(\.position))
        let duration = try #require(inspection.durationMillis)
        #expect(abs(duration - 2000) <= 34)
    }
}
