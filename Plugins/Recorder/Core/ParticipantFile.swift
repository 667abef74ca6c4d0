public import AtriumJSON
import Foundation

/// One participant's audio and video in one WebM (MKV when a track is H.264), written as it happens.
///
/// The file opens once every stream attached so far has a first frame (video from a keyframe, so
/// its size and codec data are known), or after `openAfterMicros` with what has come; a stream
/// that comes later fills a track of the same kind and codec that lost its stream (a reconnect),
/// or goes to a file of its own. Frames are interleaved by time `holdback` behind real time, so
/// the file's blocks are in order across tracks.
public final class ParticipantFile {
    public struct Track {
        public var number: UInt64
        public var isVideo: Bool
        public var codec: String
        public var mid: String
        public var input: TrackInput?
    }

    public let participant: String
    public private(set) var display: String?
    let directory: String
    let baseName: String
    let clusterMillis: Int
    public private(set) var path: String?
    public private(set) var tracks: [Track] = []
    private var waiting: [TrackInput] = []
    private var writer: MatroskaWriter?
    private var queue: [(input: ObjectIdentifier, frame: TimedFrame)] = []
    private let createdAt: Int64
    /// File time 0 on the recorder's clock.
    public private(set) var startMicros: Int64?
    public private(set) var lastMillis: Int64 = 0
    private var lastMillisByTrack: [UInt64: Int64] = [:]
    /// Per audio track: where its last packet ends (ms) and that packet's TOC byte, for concealment.
    private var audioEnds: [UInt64: (millis: Int64, toc: UInt8)] = [:]
    public private(set) var finished = false
    public private(set) var blocks = 0
    /// When the last attached stream ended (for the reconnect grace period).
    public private(set) var orphanedSince: Int64?

    /// Video frames are at least this far apart (100 per second; WebRTC sends at most 60), and the
    /// track says so (DefaultDuration): a reader that times frames in the units of the frame rate it
    /// finds (ffmpeg does) then never sees two on one tick. Capture jitter under load sends frames
    /// a few ms apart; they move by at most these 10 ms.
    static let minimumFrameMillis: Int64 = 10

    public init(participant: String, display: String?, directory: String, baseName: String, clusterMillis: Int, now: Int64) {
        self.participant = participant
        self.display = display
        self.directory = directory
        self.baseName = baseName
        self.clusterMillis = clusterMillis
        createdAt = now
    }

    public var isOpen: Bool { writer != nil }

    /// The inputs that feed this file now.
    public var inputs: [TrackInput] { waiting + tracks.compactMap(\.input) }

    /// Whether `input` can go into this file: before it opens, any stream; after, only one that
    /// takes over a track of its kind and codec whose stream ended.
    public func canAttach(_ input: TrackInput) -> Bool {
        guard !finished else { return false }
        guard isOpen else { return !waiting.contains { $0.description.isVideo == input.description.isVideo } }
        return tracks.contains { $0.isVideo == input.description.isVideo && $0.codec == input.description.codec && ($0.input?.ended ?? true) }
    }

    public func attach(_ input: TrackInput, display: String?) {
        if let display { self.display = display }
        orphanedSince = nil
        if isOpen, let i = tracks.firstIndex(where: { $0.isVideo == input.description.isVideo && $0.codec == input.description.codec && ($0.input?.ended ?? true) }) {
            tracks[i].input = input
        } else {
            waiting.append(input)
        }
    }

    /// Frames of an attached input, in its order.
    public func add(_ frames: [TimedFrame], from input: TrackInput) {
        let id = ObjectIdentifier(input)
        for f in frames { queue.append((id, f)) }
    }

    /// Opens the file when it can, and writes what is older than `now − holdback`. Returns the
    /// inputs that did not make it into the file when it opened (they need a file of their own).
    public func tick(now: Int64, holdbackMicros: Int64, openAfterMicros: Int64) throws -> [TrackInput] {
        var leftOut: [TrackInput] = []
        if !isOpen {
            let ready = !waiting.isEmpty && waiting.allSatisfy { input in queue.contains { $0.input == ObjectIdentifier(input) } }
            let due = now - createdAt >= openAfterMicros && !queue.isEmpty
            guard ready || due else { return [] }
            leftOut = try open()
        }
        if inputs.isEmpty || inputs.allSatisfy(\.ended) {
            if orphanedSince == nil { orphanedSince = now }
        } else {
            orphanedSince = nil
        }
        try write(until: now - holdbackMicros)
        return leftOut
    }

    private func open() throws -> [TrackInput] {
        var matroskaTracks: [MatroskaTrack] = []
        var leftOut: [TrackInput] = []
        for input in waiting {
            let id = ObjectIdentifier(input)
            guard let first = queue.first(where: { $0.input == id })?.frame, !(input.description.isVideo && input.needsCodecPrivate && input.codecPrivate == nil) else {
                leftOut.append(input)
                continue
            }
            let number = UInt64(tracks.count + 1)
            let d = input.description
            var t = MatroskaTrack(number: number, kind: d.isVideo ? .video : .audio, codecID: input.codecID)
            if d.isVideo {
                t.width = first.width ?? 640
                t.height = first.height ?? 480
                t.codecPrivate = input.codecPrivate
                t.defaultDurationNanos = UInt64(Self.minimumFrameMillis) * 1_000_000
            } else {
                t.codecPrivate = OpusHead.bytes(channels: 2, preSkip: 312, inputSampleRate: 48_000)
                t.channels = 2
                t.sampleRate = 48_000
                t.codecDelayNanos = 6_500_000
                t.seekPreRollNanos = 80_000_000
            }
            t.name = d.mid
            matroskaTracks.append(t)
            tracks.append(Track(number: number, isVideo: d.isVideo, codec: d.codec, mid: d.mid, input: input))
        }
        waiting = []
        let ids = Set(leftOut.map { ObjectIdentifier($0) })
        queue.removeAll { ids.contains($0.input) }
        guard !tracks.isEmpty else { return leftOut }
        let matroska = tracks.contains { $0.codec == "h264" }
        let (path, writer) = try RecordingFiles.create(directory: directory, baseName: baseName, extension: matroska ? "mkv" : "webm") { path in
            try MatroskaWriter(path: path, docType: matroska ? "matroska" : "webm", tracks: matroskaTracks, title: display ?? participant)
        }
        writer.maxClusterMillis = Int64(clusterMillis)
        self.path = path
        self.writer = writer
        startMicros = queue.map(\.frame.micros).min()
        return leftOut
    }

    private func write(until cutoff: Int64) throws {
        guard let writer, let startMicros, !queue.isEmpty else { return }
        let trackOf = Dictionary(tracks.compactMap { t in t.input.map { (ObjectIdentifier($0), t.number) } }, uniquingKeysWith: { a, _ in a })
        // Stable: frames of one track keep their order.
        let ordered = queue.enumerated().sorted { ($0.element.frame.micros, $0.offset) < ($1.element.frame.micros, $1.offset) }
        // Audio frames queued per track, due or not: a track with some left resumes at or after
        // every frame still to write, so its gap before one of them can be concealed at once.
        var audioQueued: [UInt64: Int] = [:]
        for (_, entry) in ordered where !entry.frame.isVideo {
            if let track = trackOf[entry.input] { audioQueued[track, default: 0] += 1 }
        }
        var kept: [(input: ObjectIdentifier, frame: TimedFrame)] = []
        for (_, entry) in ordered {
            guard entry.frame.micros <= cutoff else {
                kept.append(entry)
                continue
            }
            guard let track = trackOf[entry.input] else { continue }
            // Never backwards, and a video frame never on its predecessor's time: a frame that comes
            // too late for its place is written just after what is already written.
            var ms = max(0, (entry.frame.micros - startMicros) / 1_000)
            ms = max(ms, lastMillis)
            if let previous = lastMillisByTrack[track], entry.frame.isVideo { ms = max(ms, previous + Self.minimumFrameMillis) }
            // An audio gap is filled before any block after it is written (blocks go in time order):
            // the gap of this frame's own track, and that of an audio track that resumes later (after
            // a reconnect its new video may be written first, and the gap could not be filled then).
            for (other, count) in audioQueued where count > 0 && other != track { try conceal(other, until: ms, writer) }
            if !entry.frame.isVideo {
                try conceal(track, until: ms, writer)
                audioQueued[track, default: 1] -= 1
            }
            try entry.frame.data.withUnsafeBytes { try writer.write(track: track, timestampMillis: ms, keyframe: entry.frame.isKeyframe, frame: $0) }
            if !entry.frame.isVideo, let toc = entry.frame.data.first { audioEnds[track] = (ms + Int64(entry.frame.samples / 48), toc) }
            lastMillis = ms
            lastMillisByTrack[track] = ms
            blocks += 1
        }
        queue = kept
    }

    /// Fills an audio track's gap up to `ms` (from where its audio ends, or the last block written)
    /// with concealment packets, when it is 20 ms or more. The sender's clock fell behind or the
    /// stream was away: the audio stays continuous, so it decodes to the length of the wall clock.
    private func conceal(_ track: UInt64, until ms: Int64, _ writer: MatroskaWriter) throws {
        guard let end = audioEnds[track], ms - max(end.millis, lastMillis) >= 20 else { return }
        var at = max(end.millis, lastMillis)
        for p in OpusPacket.concealment(samples: Int(ms - at) * 48, like: end.toc) {
            try p.packet.withUnsafeBytes { try writer.write(track: track, timestampMillis: at, keyframe: true, frame: $0) }
            lastMillis = at
            lastMillisByTrack[track] = at
            at += Int64(p.samples / 48)
            blocks += 1
        }
        audioEnds[track] = (at, end.toc)
    }

    public func flush() throws { try writer?.flush() }
    public func sync() throws { try writer?.sync() }

    /// Writes everything queued and finishes the file (Cues and Duration).
    public func finish() throws {
        guard !finished else { return }
        finished = true
        if !isOpen, !queue.isEmpty { _ = try open() }
        try write(until: .max)
        try writer?.finish()
        writer = nil
    }

    /// The file for the manifest.
    public func manifest(meetingStart: Int64) -> JSON {
        var o: JSONObject = [
            "file": path.map { .string(($0 as NSString).lastPathComponent) } ?? .null,
            "participant": .string(participant),
            "state": .string(finished ? "finished" : "recording"),
            "offset_ms": startMicros.map { .int(($0 - meetingStart) / 1_000) } ?? .null,
            "duration_ms": .int(lastMillis),
            "blocks": .int(Int64(blocks)),
            "tracks": .array(tracks.map { t in
                [
                    "number": .int(Int64(t.number)), "kind": .string(t.isVideo ? "video" : "audio"), "codec": .string(t.codec), "mid": .string(t.mid),
                    "packets": .int(Int64(t.input?.packets ?? 0)), "lost_packets": .int(Int64(t.input?.lostPackets ?? 0)),
                    "frames": .int(Int64(t.input?.frames ?? 0)), "keyframe_requests": .int(Int64(t.input?.keyframeRequests ?? 0)),
                ]
            }),
        ]
        if let display { o["display"] = .string(display) }
        return .object(o)
    }
}

extension TrackInput {
    /// Codecs whose Matroska track needs CodecPrivate from the stream (SPS/PPS, sequence header).
    var needsCodecPrivate: Bool { description.codec == "h264" || description.codec == "av1" }
}

/// File names in a recording folder: never an existing file.
public enum RecordingFiles {
    /// Creates `<directory>/<baseName>.<ext>`, or `-2`, `-3`… when taken; `make` must create the
    /// file exclusively (O_EXCL) and throw if it exists.
    public static func create<W>(directory: String, baseName: String, extension ext: String, _ make: (String) throws -> W) throws -> (String, W) {
        var n = 1
        while true {
            let name = n == 1 ? "\(baseName).\(ext)" : "\(baseName)-\(n).\(ext)"
            let path = (directory as NSString).appendingPathComponent(name)
            if !FileManager.default.fileExists(atPath: path) {
                do {
                    return (path, try make(path))
                } catch where FileManager.default.fileExists(atPath: path) && n < 1_000 {
                    // Taken between the check and the create: try the next name.
                }
            }
            n += 1
            guard n <= 1_000 else { throw RecorderError(.io, "no free file name for \(baseName).\(ext) in \(directory)") }
        }
    }

    /// A name safe in a file name: letters, digits, `-`, `_` and `.` kept, the rest `_`.
    public static func safe(_ s: String) -> String {
        let kept = s.unicodeScalars.map { c -> Character in
            (c.isASCII && (CharacterSet.alphanumerics.contains(c) || c == "-" || c == "_" || c == ".")) ? Character(c) : "_"
        }
        let name = String(kept).trimmingCharacters(in: CharacterSet(charactersIn: "."))
        return name.isEmpty ? "_" : String(name.prefix(64))
    }
}
