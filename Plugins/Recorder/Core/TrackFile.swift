public import AtriumJSON
import Foundation

/// One stream in a file of its own (`per_track`): Ogg Opus for audio, WebM/MKV for video. Audio
/// gaps between streams (a reconnect) are filled with concealment packets so the Ogg timeline never
/// jumps (RFC 7845 §4).
public final class TrackFile {
    public let input: TrackInput
    let directory: String
    let baseName: String
    public private(set) var path: String?
    private var ogg: OggOpusWriter?
    private var matroska: MatroskaWriter?
    public private(set) var startMicros: Int64?
    private var samples: Int64 = 0
    private var lastMillis: Int64 = 0
    private var lastTOC: UInt8 = 0xF8
    private var started = false
    public private(set) var finished = false

    public init(input: TrackInput, directory: String, baseName: String) {
        self.input = input
        self.directory = directory
        self.baseName = baseName
    }

    public func add(_ frames: [TimedFrame]) throws {
        guard !finished else { return }
        for f in frames {
            if startMicros == nil { try open(first: f) }
            guard let startMicros else { return }
            if let ogg {
                let due = (f.micros - startMicros) * 48 / 1_000
                // More than a packet behind the clock: the stream was away; conceal the gap.
                if due - samples > Int64(max(f.samples, 960)) {
                    for p in OpusPacket.concealment(samples: Int(due - samples), like: lastTOC) {
                        try ogg.write(packet: p.packet, samples: p.samples)
                        samples += Int64(p.samples)
                    }
                }
                try ogg.write(packet: f.data, samples: f.samples)
                samples += Int64(f.samples)
                if let toc = f.data.first { lastTOC = toc }
            } else if let matroska {
                let ms = lastMillis == 0 && !started ? max(0, (f.micros - startMicros) / 1_000)
                    : max(lastMillis + ParticipantFile.minimumFrameMillis, (f.micros - startMicros) / 1_000)
                started = true
                try f.data.withUnsafeBytes { try matroska.write(track: 1, timestampMillis: ms, keyframe: f.isKeyframe, frame: $0) }
                lastMillis = ms
            }
        }
    }

    private func open(first: TimedFrame) throws {
        let d = input.description
        if d.isVideo {
            if input.needsCodecPrivate && input.codecPrivate == nil { return }
            var t = MatroskaTrack(number: 1, kind: .video, codecID: input.codecID)
            t.width = first.width ?? 640
            t.height = first.height ?? 480
            t.codecPrivate = input.codecPrivate
            t.defaultDurationNanos = UInt64(ParticipantFile.minimumFrameMillis) * 1_000_000
            t.name = d.mid
            let ext = input.needsMatroska ? "mkv" : "webm"
            (path, matroska) = try RecordingFiles.create(directory: directory, baseName: baseName, extension: ext) { path in
                try MatroskaWriter(path: path, docType: input.needsMatroska ? "matroska" : "webm", tracks: [t], title: d.labels["display"])
            }
        } else {
            (path, ogg) = try RecordingFiles.create(directory: directory, baseName: baseName, extension: "opus") { path in
                try OggOpusWriter(path: path, channels: 2, preSkip: 312, serial: UInt32.random(in: 1...UInt32.max),
                                  tags: d.labels["display"].map { ["TITLE=\($0)"] } ?? [])
            }
        }
        startMicros = first.micros
    }

    public func flush() throws {
        try ogg?.flush()
        try matroska?.flush()
    }

    public func sync() throws {
        try ogg?.sync()
        try matroska?.sync()
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        try ogg?.finish()
        try matroska?.finish()
    }

    public func manifest(meetingStart: Int64) -> JSON {
        let d = input.description
        return [
            "file": path.map { .string(($0 as NSString).lastPathComponent) } ?? .null,
            "participant": .string(d.participant),
            "kind": .string(d.isVideo ? "video" : "audio"), "codec": .string(d.codec), "mid": .string(d.mid),
            "state": .string(finished ? "finished" : "recording"),
            "offset_ms": startMicros.map { .int(($0 - meetingStart) / 1_000) } ?? .null,
            "duration_ms": .int(d.isVideo ? lastMillis : samples / 48),
        ]
    }
}
