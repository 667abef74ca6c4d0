public import AtriumJSON
import Foundation

/// A meeting's chat as it happens: `chat.jsonl` (one JSON object per message, with its time on the
/// meeting timeline) and `chat.vtt` (WebVTT cues a player shows over the recording). Both are
/// appended and flushed with the media files, so a crash keeps what was said up to then.
public final class ChatTranscript {
    private let jsonl: FileSink
    private let vtt: FileSink
    public let jsonlName: String
    public let vttName: String
    public private(set) var messages = 0
    /// How long a cue shows.
    static let cueMillis: Int64 = 5_000

    public init(directory: String) throws {
        let (jsonlPath, jsonl) = try RecordingFiles.create(directory: directory, baseName: "chat", extension: "jsonl") { try FileSink(creating: $0) }
        let (vttPath, vtt) = try RecordingFiles.create(directory: directory, baseName: "chat", extension: "vtt") { try FileSink(creating: $0) }
        self.jsonl = jsonl
        self.vtt = vtt
        jsonlName = (jsonlPath as NSString).lastPathComponent
        vttName = (vttPath as NSString).lastPathComponent
        try vtt.append(Array("WEBVTT\n\n".utf8))
    }

    /// One public message of the Chat plugin's `chat.message` event, at `meetingMillis`.
    public func add(_ event: JSONObject, meetingMillis: Int64) throws {
        messages += 1
        var line = event
        line["meeting_ms"] = .int(meetingMillis)
        try jsonl.append(Array((JSON.object(line).serialized + "\n").utf8))
        let from = event["from"]?.objectValue
        let speaker = from?["display"]?.stringValue ?? from?["id"]?.stringValue ?? "?"
        let text = event["text"]?.stringValue ?? event["payload"].map { $0.serialized } ?? ""
        let cue = "\(messages)\n\(Self.time(meetingMillis)) --> \(Self.time(meetingMillis + Self.cueMillis))\n<v \(Self.escape(speaker))>\(Self.escape(text))\n\n"
        try vtt.append(Array(cue.utf8))
    }

    public func flush() throws {
        try jsonl.flush()
        try vtt.flush()
    }

    public func sync() throws {
        try jsonl.sync()
        try vtt.sync()
    }

    public func close() throws {
        try jsonl.sync()
        try vtt.sync()
        try jsonl.close()
        try vtt.close()
    }

    /// `hh:mm:ss.ttt`.
    static func time(_ ms: Int64) -> String {
        let ms = max(0, ms)
        let h = ms / 3_600_000, m = ms / 60_000 % 60, s = ms / 1_000 % 60, t = ms % 1_000
        func pad(_ v: Int64, _ n: Int) -> String { String(repeating: "0", count: max(0, n - String(v).count)) + String(v) }
        return "\(pad(h, 2)):\(pad(m, 2)):\(pad(s, 2)).\(pad(t, 3))"
    }

    /// Cue text: markup characters escaped, no blank line or arrow that would end the cue.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\r", with: "").split(separator: "\n", omittingEmptySubsequences: true).joined(separator: "\n")
    }
}
