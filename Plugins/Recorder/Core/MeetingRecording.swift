public import AtriumJSON
import Foundation

/// One recording of one room: its folder, the participants' files, the chat transcript, and the
/// manifest (`meeting.json`) that ties them to one meeting timeline.
public final class MeetingRecording {
    public enum Reason: String, Sendable { case request, config, room }

    public let id: String
    public let room: String
    /// The media plugin whose room this is, or nil for any.
    public let plugin: String?
    public let directory: String
    public let reason: Reason
    /// Meeting time 0 on the recorder's clock, and as a date.
    public let startMicros: Int64
    public let startedAt: Date
    public private(set) var endedAt: Date?
    public private(set) var files: [ParticipantFile] = []
    public private(set) var trackFiles: [TrackFile] = []
    public let transcript: ChatTranscript
    /// The last time a stream of the room was attached or alive (for idle stop).
    public var lastMediaMicros: Int64
    public private(set) var errors: [String] = []

    /// Creates the folder `<base>/<room>/<date>-<time>` (a suffix when taken) and the transcript.
    public init(room: String, plugin: String?, base: String, reason: Reason, now: Int64, date: Date) throws {
        self.room = room
        self.plugin = plugin
        self.reason = reason
        startMicros = now
        startedAt = date
        lastMediaMicros = now
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let stamp = f.string(from: date)
        let roomFolder = (base as NSString).appendingPathComponent(RecordingFiles.safe(room))
        do {
            try FileManager.default.createDirectory(atPath: roomFolder, withIntermediateDirectories: true)
        } catch {
            throw RecorderError(.io, "cannot create \(roomFolder): \(error.localizedDescription)")
        }
        var n = 1
        var folder: String
        while true {
            folder = (roomFolder as NSString).appendingPathComponent(n == 1 ? stamp : "\(stamp)-\(n)")
            // mkdir fails on an existing folder: a recording never writes into another's.
            if mkdir(folder, 0o755) == 0 { break }
            guard errno == EEXIST, n < 1_000 else { throw RecorderError(.io, "cannot create \(folder): \(String(cString: strerror(errno)))") }
            n += 1
        }
        directory = folder
        id = "\(RecordingFiles.safe(room))/\((folder as NSString).lastPathComponent)"
        transcript = try ChatTranscript(directory: folder)
    }

    public var isActive: Bool { endedAt == nil }

    /// Whether a stream with these labels belongs to this recording.
    public func matches(_ labels: [String: String]) -> Bool {
        labels["room"] == room && (plugin == nil || labels["plugin"] == plugin)
    }

    /// The participant file a new stream goes into (an open or waiting one that takes it, else a new one).
    public func file(for input: TrackInput, clusterMillis: Int, now: Int64) -> ParticipantFile {
        let d = input.description
        if let existing = files.last(where: { $0.participant == d.participant && $0.canAttach(input) }) {
            existing.attach(input, display: d.labels["display"])
            return existing
        }
        let count = files.filter { $0.participant == d.participant }.count
        let base = "participant-\(RecordingFiles.safe(d.participant))" + (count == 0 ? "" : "-\(RecordingFiles.safe(d.mid))")
        let file = ParticipantFile(participant: d.participant, display: d.labels["display"], directory: directory, baseName: base,
                                   clusterMillis: clusterMillis, now: now)
        file.attach(input, display: d.labels["display"])
        files.append(file)
        return file
    }

    /// A file the engine made for a stream that missed its participant's file.
    public func adopt(_ file: ParticipantFile) { files.append(file) }

    public func addTrackFile(for input: TrackInput) -> TrackFile {
        let d = input.description
        let file = TrackFile(input: input, directory: directory,
                             baseName: "participant-\(RecordingFiles.safe(d.participant))-\(d.isVideo ? "video" : "audio")-\(RecordingFiles.safe(d.mid))")
        trackFiles.append(file)
        return file
    }

    /// Notes a problem for the manifest (once: a file that failed fails the same way again).
    public func note(_ error: String) {
        if !errors.contains(error) { errors.append(error) }
    }

    /// Finishes every file and the transcript, and writes the final manifest.
    public func finish(date: Date) {
        for f in files where !f.finished { record { try f.finish() } }
        for f in trackFiles where !f.finished { record { try f.finish() } }
        record { try transcript.close() }
        endedAt = date
        writeManifest()
    }

    public func record(_ body: () throws -> Void) {
        do { try body() } catch { note("\(error)") }
    }

    public var summary: JSON {
        var o: JSONObject = [
            "id": .string(id), "room": .string(room), "directory": .string(directory), "reason": .string(reason.rawValue),
            "state": .string(isActive ? "recording" : "finished"), "started_at": .string(Self.iso(startedAt)),
            "participants": .int(Int64(Set(files.map(\.participant)).count)), "files": .int(Int64(files.count + trackFiles.count)),
            "chat_messages": .int(Int64(transcript.messages)),
        ]
        if let plugin { o["plugin"] = .string(plugin) }
        if let endedAt { o["ended_at"] = .string(Self.iso(endedAt)) }
        return .object(o)
    }

    /// The manifest: what was recorded, where each file sits on the meeting timeline.
    public var manifest: JSON {
        var participants: [String: (display: String?, files: [JSON])] = [:]
        var order: [String] = []
        for f in files where f.path != nil {
            if participants[f.participant] == nil { order.append(f.participant) }
            participants[f.participant, default: (nil, [])].files.append(f.manifest(meetingStart: startMicros))
            if let d = f.display { participants[f.participant]!.display = d }
        }
        var o: JSONObject = [
            "format": "atrium-recording/1", "id": .string(id), "room": .string(room), "reason": .string(reason.rawValue),
            "state": .string(isActive ? "recording" : "finished"), "started_at": .string(Self.iso(startedAt)),
            "participants": .array(order.map { p in
                var entry: JSONObject = ["participant": .string(p), "files": .array(participants[p]!.files)]
                if let d = participants[p]!.display { entry["display"] = .string(d) }
                return .object(entry)
            }),
            "tracks": .array(trackFiles.filter { $0.path != nil }.map { $0.manifest(meetingStart: startMicros) }),
            "chat": ["jsonl": .string(transcript.jsonlName), "webvtt": .string(transcript.vttName), "messages": .int(Int64(transcript.messages))],
        ]
        if let plugin { o["plugin"] = .string(plugin) }
        if let endedAt {
            o["ended_at"] = .string(Self.iso(endedAt))
            o["duration_ms"] = .int(Int64(endedAt.timeIntervalSince(startedAt) * 1_000))
        }
        if !errors.isEmpty { o["errors"] = .array(errors.suffix(20).map { .string($0) }) }
        return .object(o)
    }

    /// Replaces meeting.json atomically (written aside, then renamed over it), so a crash leaves
    /// the old or the new one whole.
    public func writeManifest() {
        let path = (directory as NSString).appendingPathComponent("meeting.json")
        do {
            try Data((manifest.serialized + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            note("meeting.json: \(error)")
        }
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
