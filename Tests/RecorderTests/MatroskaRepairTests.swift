import Foundation
import RecorderCore
import Testing

@Suite struct MatroskaRepairTests {
    /// What ffmpeg may say about a file cut mid-element; anything else on stderr is a decode error.
    private func onlyPrematureEnd(_ stderr: String) -> Bool {
        stderr.split(separator: "\n").allSatisfy { $0.contains("File ended prematurely") || $0.contains("Last message repeated") }
    }

    @Test func aRecordingLeftByACrashPlaysAndRepairsIntoTheFinishedFile() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let finished = scratch.path("finished.webm"), crashed = scratch.path("crashed.webm")
        let (writer, _, frames) = try fixtures.record(to: finished)
        try FileManager.default.copyItem(atPath: finished, toPath: crashed)
        try writer.finish()

        // As the crash left it: no Duration, no Cues, but it plays, every frame.
        let decode = try MediaTool.decode(crashed)
        #expect(decode.status == 0 && decode.stderr == "", "\(decode.stderr)")
        #expect(try MediaTool.packetHashes(crashed, stream: "v:0") == fixtures.videoHashes)
        let before = try MatroskaInspection(crashed)
        #expect(before.errors.isEmpty)
        #expect(before.cuePoints == 0)

        let report = try MatroskaRepair.repair(path: crashed)
        #expect(report.truncatedBytes == 0)
        #expect(!report.alreadyFinished)
        #expect(report.blocks == frames.count)
        #expect(report.clusters == fixtures.video.frames.filter(\.isVP8Keyframe).count)
        #expect(abs(report.durationMillis - fixtures.lengthMillis) <= 34)
        // One implementation of finishing: the repaired file is the finished file, byte for byte.
        #expect(try fileBytes(crashed) == fileBytes(finished))

        let again = try MatroskaRepair.repair(path: finished)
        #expect(again.alreadyFinished)
        #expect(again.truncatedBytes == 0 && again.blocks == frames.count && again.durationMillis == report.durationMillis)
        #expect(try fileBytes(crashed) == fileBytes(finished))
    }

    @Test func aFinishInterruptedBeforeTheSegmentSizeIsDoneAgain() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let finished = scratch.path("finished.webm"), interrupted = scratch.path("interrupted.webm")
        let (writer, _, frames) = try fixtures.record(to: finished)
        try writer.finish()
        // finish() patches the Segment size last: a crash just before leaves Cues, Duration, SeekHead
        // and Cluster sizes in place and the Segment size unknown.
        var bytes = try fileBytes(finished)
        let segment = try #require((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual(EBMLID.segment.bytes) })
        bytes.replaceSubrange((segment + 4)..<(segment + 12), with: EBML.unknownSize)
        // ...and, say, half of the Cues reached the disk.
        let cues = try #require((0..<(bytes.count - 4)).last { bytes[$0..<($0 + 4)].elementsEqual(EBMLID.cues.bytes) })
        bytes.removeLast((bytes.count - cues) / 2)
        try writeFile(interrupted, bytes)

        let report = try MatroskaRepair.repair(path: interrupted)
        #expect(!report.alreadyFinished)
        #expect(report.blocks == frames.count)
        #expect(report.truncatedBytes == bytes.count - cues)
        #expect(try fileBytes(interrupted) == fileBytes(finished))
    }

    /// Cut points: fractions of the clusters' bytes, and just inside the header of the second cluster.
    static let cuts: [Double] = [0.13, 0.5, 0.77, 0.999, -1]

    @Test(arguments: cuts)
    func aRecordingCutAnywhereDecodesAndRepairs(fraction: Double) throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("cut.webm")
        let (writer, ends, frames) = try fixtures.record(to: path)
        let full = try fileBytes(path)
        let firstBlockEnd = ends[0]
        let cut: Int
        if fraction < 0 {
            // Five bytes into the Cluster header written just before the second keyframe's block.
            let secondKey = frames.indices.filter { frames[$0].track == 1 && frames[$0].keyframe }[1]
            cut = ends[secondKey - 1] + 5
        } else {
            cut = firstBlockEnd + Int(Double(full.count - firstBlockEnd) * fraction)
        }
        try writer.finish()
        try writeFile(path, full[..<cut])

        let complete = frames.indices.filter { ends[$0] <= cut }
        let completeVideo = complete.filter { frames[$0].track == 1 }.count
        let lastCompleteEnd = complete.map { ends[$0] }.max()!

        let decode = try MediaTool.decode(path)
        #expect(decode.status == 0)
        #expect(onlyPrematureEnd(decode.stderr), "\(decode.stderr)")
        #expect(try MediaTool.decodedVideoFrames(path) >= completeVideo)

        let report = try MatroskaRepair.repair(path: path)
        #expect(!report.alreadyFinished)
        #expect(report.blocks == complete.count)
        #expect(report.truncatedBytes == cut - lastCompleteEnd)

        let repaired = try MediaTool.decode(path)
        #expect(repaired.status == 0 && repaired.stderr == "", "\(repaired.stderr)")
        #expect(try MediaTool.decodedVideoFrames(path) == completeVideo)
        #expect(try MediaTool.packetHashes(path, stream: "v:0") == Array(fixtures.videoHashes.prefix(completeVideo)))
        let inspection = try MatroskaInspection(path)
        #expect(inspection.errors.isEmpty && inspection.warnings.isEmpty, "\(inspection.errors) \(inspection.warnings)")
        let duration = try #require(inspection.durationMillis)
        #expect(abs(duration - Double(report.durationMillis)) < 1)
        let lastMillis = complete.map { frames[$0].millis }.max()!
        #expect(duration >= Double(lastMillis) && duration <= Double(lastMillis) + 34)
        let keyframesKept = complete.filter { frames[$0].track == 1 && frames[$0].keyframe }.count
        #expect(inspection.cuePoints == keyframesKept)
        #expect(inspection.cueTargets == inspection.clusters.map(\.position))
        #expect(try MatroskaRepair.repair(path: path).alreadyFinished)
    }

    @Test func ffmpegsOwnWebMIsLeftAloneWhenWholeAndRepairedWhenCut() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let ivf = scratch.path("v.ivf"), ogg = scratch.path("a.ogg"), path = scratch.path("ffmpeg.webm"), cut = scratch.path("cut.webm")
        try writeFile(ivf, fixtures.ivf)
        try writeFile(ogg, fixtures.ogg)
        let mux = try MediaTool.run("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-i", ivf, "-i", ogg, "-map", "0", "-map", "1", "-c", "copy", path])
        #expect(mux.status == 0, "\(mux.stderr)")
        let whole = try fileBytes(path)

        let report = try MatroskaRepair.repair(path: path)
        #expect(report.alreadyFinished)
        #expect(report.blocks == fixtures.video.frames.count + fixtures.audioPackets.count)
        #expect(try fileBytes(path) == whole)

        // Cut inside an element, two bytes past a SimpleBlock ID (0xA3) from 60 % on: the frames'
        // sizes vary from one encode of the fixtures to the next, and a cut that happened to fall
        // between two elements leaves nothing to truncate.
        let from = whole.count * 6 / 10
        let cutAt = try #require((from..<whole.count).first { whole[$0] == 0xA3 }) + 2
        try writeFile(cut, whole[..<cutAt])
        let repaired = try MatroskaRepair.repair(path: cut)
        #expect(!repaired.alreadyFinished && repaired.truncatedBytes > 0)
        let decode = try MediaTool.decode(cut)
        #expect(decode.status == 0 && decode.stderr == "", "\(decode.stderr)")
        let inspection = try MatroskaInspection(cut)
        #expect(inspection.errors.isEmpty && inspection.warnings.isEmpty, "\(inspection.errors) \(inspection.warnings)")
        #expect(abs((inspection.durationMillis ?? 0) - Double(repaired.durationMillis)) < 1)
    }

    @Test func aFileThatIsNotMatroskaIsLeftAlone() throws {
        let fixtures = try MediaFixtures.shared.get()
        let scratch = try Scratch()
        defer { scratch.remove() }
        var notMatroska: [String: [UInt8]] = [
            "audio.ogg": fixtures.ogg,
            "empty": [],
            "text": Array("just some notes about the meeting\n".utf8),
        ]
        // An EBML file of another kind.
        var other: [UInt8] = []
        EBMLElement.master(.ebml, [.uint(.ebmlVersion, 1), .string(.docType, "notmatroska")]).encode(into: &other)
        notMatroska["other-ebml"] = other + [0x18, 0x53, 0x80, 0x67, 0x80]
        for (name, bytes) in notMatroska {
            let path = scratch.path(name)
            try writeFile(path, bytes)
            let error = try #require(throws: RecordingError.self, "\(name)") { try MatroskaRepair.repair(path: path) }
            #expect(error.code == .notMatroska, "\(name): \(error)")
            #expect(try fileBytes(path) == bytes, "\(name)")
        }
    }

    /// A small recording made of made-up frames, for hammering repair without any decoder.
    private func syntheticRecording(_ path: String) throws -> [UInt8] {
        let writer = try MatroskaWriter(
            path: path, docType: "webm",
            tracks: [MatroskaTrack(number: 1, kind: .video, codecID: "V_VP8", width: 64, height: 48), .opus(number: 2, channels: 1)],
            date: Date(timeIntervalSince1970: 0)
        )
        for i in 0..<60 {
            let millis = Int64(i * 20)
            try writer.write(track: 2, timestampMillis: millis, keyframe: true, frame: [UInt8](repeating: UInt8(i), count: 5 + i % 7))
            if i % 2 == 0 { try writer.write(track: 1, timestampMillis: millis, keyframe: i % 20 == 0, frame: [UInt8](repeating: 0xAA, count: 30 + i)) }
        }
        try writer.flush()
        return try fileBytes(path)
    }

    /// A WebM writer of one small VP8 track, for files built byte by byte around a few frames.
    private func smallVP8Writer(_ path: String) throws -> MatroskaWriter {
        try MatroskaWriter(path: path, docType: "webm",
                           tracks: [MatroskaTrack(number: 1, kind: .video, codecID: "V_VP8", width: 64, height: 48)],
                           date: Date(timeIntervalSince1970: 0))
    }

    /// Found by fuzz-matroska-repair: a Segment whose declared size ends inside the header of the
    /// Cues after the clusters trapped ("negative value is not representable") on the length left.
    @Test func cuesWhoseHeaderCrossesTheSegmentEndDoNotTrap() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("finished.webm")
        let writer = try smallVP8Writer(path)
        for i in 0..<10 { try writer.write(track: 1, timestampMillis: Int64(i * 40), keyframe: true, frame: [UInt8](repeating: 0xAA, count: 30)) }
        try writer.finish()
        var bytes = try fileBytes(path)
        let cuesID: [UInt8] = [0x1C, 0x53, 0xBB, 0x6B]
        let cues = try #require((0...(bytes.count - 4)).last { Array(bytes[$0..<($0 + 4)]) == cuesID })
        // The Segment's size is the 8-byte VINT after its ID; its data starts right after it.
        let segment = try #require((0...(bytes.count - 4)).first { Array(bytes[$0..<($0 + 4)]) == [0x18, 0x53, 0x80, 0x67] })
        #expect(bytes[segment + 4] == 0x01, "the writer gives the Segment an 8-byte size")
        let declared = UInt64(cues + 2 - (segment + 12))
        for i in 0..<7 { bytes[segment + 5 + i] = UInt8(truncatingIfNeeded: declared >> (8 * UInt64(6 - i))) }
        try? FileManager.default.removeItem(atPath: path)
        try writeFile(path, bytes)
        do {
            _ = try MatroskaRepair.repair(path: path)
            #expect(try MatroskaRepair.repair(path: path).alreadyFinished)
        } catch let error as RecordingError {
            #expect(try fileBytes(path) == bytes, "a refused repair changed the file: \(error)")
        }
    }

    /// A cluster's size, patched at repair, must cover the children after its last block: here a
    /// CRC-32 that ends the cluster before Tags. Patched to the last block, it fell between the
    /// cluster and the Tags, and the repaired file no longer read (the fuzzer found this).
    @Test func childrenAfterTheLastBlockStayInsideTheRepairedCluster() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.path("crashed.webm")
        let writer = try smallVP8Writer(path)
        for i in 0..<6 { try writer.write(track: 1, timestampMillis: Int64(i * 40), keyframe: i % 5 == 0, frame: [UInt8](repeating: 0xAA, count: 30)) }
        // Five blocks in a cluster; the keyframe after them starts the next cluster, which sends the
        // first to the file. As a crash leaves it (no finish), then a CRC-32 in the first cluster and
        // an empty Tags after it.
        let crc: [UInt8] = [0xBF, 0x84, 0, 0, 0, 0]
        let tags: [UInt8] = [0x12, 0x54, 0xC3, 0x67, 0x80]
        let written = try fileBytes(path)
        try? FileManager.default.removeItem(atPath: path)
        try writeFile(path, written + crc + tags)

        let report = try MatroskaRepair.repair(path: path)
        #expect(!report.alreadyFinished && report.blocks == 5 && report.truncatedBytes == 0, "\(report)")
        let again = try MatroskaRepair.repair(path: path)
        #expect(again.alreadyFinished && again.blocks == 5)
        // ffmpeg reads the five blocks (the frames are not real VP8, so it is not asked to decode).
        #expect(try MediaTool.packetHashes(path, stream: "v:0").count == 5)
    }

    @Test func repairSurvivesCutsAndGarbageAnywhere() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let source = try syntheticRecording(scratch.path("source.webm"))
        let path = scratch.path("victim.webm")

        var outcomes: [String: Int] = [:]
        func attempt(_ bytes: [UInt8]) throws {
            try? FileManager.default.removeItem(atPath: path)
            try writeFile(path, bytes)
            do {
                let report = try MatroskaRepair.repair(path: path)
                outcomes["repaired", default: 0] += 1
                #expect(report.blocks <= 90)
                #expect(try MatroskaRepair.repair(path: path).alreadyFinished, "a repaired file needs no second repair")
            } catch let error as RecordingError {
                outcomes[error.code.description, default: 0] += 1
                #expect(try fileBytes(path) == bytes, "a refused repair changed the file: \(error)")
            }
        }

        // Every cut through the headers, then cuts across the clusters.
        for cut in Array(0..<400) + Array(stride(from: 400, to: source.count, by: 37)) { try attempt(Array(source[..<cut])) }
        // Random damage: a seeded generator, so a failure can be replayed.
        var random = SeededGenerator(seed: 0x5EED)
        for _ in 0..<300 {
            var bytes = source
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            if Bool.random(using: &random) { bytes.removeLast(Int.random(in: 0..<(bytes.count / 2), using: &random)) }
            try attempt(bytes)
        }
        // A zero-filled tail, as a file system can leave after a power cut, is cut off like a torn block.
        try attempt(source + [UInt8](repeating: 0, count: 4096))
        #expect(outcomes["repaired", default: 0] > 100, "\(outcomes)")
        #expect(outcomes["unsupportedLayout", default: 0] > 0 && outcomes["notMatroska", default: 0] > 0, "\(outcomes)")
    }
}
