public import AtriumJSON
import Foundation

/// A refused Recorder request or configuration: a code and a text, sent as
/// `{"recorder":"event","error_code":N,"error":"..."}`.
public struct RecorderError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let unknown = Code(rawValue: 499)
        public static let invalidRequest = Code(rawValue: 413)
        public static let invalidElement = Code(rawValue: 414)
        public static let missingElement = Code(rawValue: 415)
        public static let notFound = Code(rawValue: 416)
        public static let alreadyRecording = Code(rawValue: 417)
        public static let unauthorized = Code(rawValue: 419)
        public static let io = Code(rawValue: 420)
        /// Too many recordings: at once (`max_recordings`), or started in the last minute from one
        /// address or of one room.
        public static let tooManyRecordings = Code(rawValue: 421)
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The error as the body of a reply or event.
    public var reply: JSON { ["recorder": "event", "error_code": .int(Int64(code.rawValue)), "error": .string(message)] }
}

/// The Recorder plugin's `config` object (docs/api/recorder.md lists every key).
public struct RecorderConfig: Sendable {
    /// Where recordings go: one folder per meeting under it.
    public var directory = "recordings"
    /// Folders a room's `rec_dir` may name (itself or below); `directory` is always allowed.
    public var allowedDirectories: [String] = []
    /// Rooms recorded whenever they have media (room ids as strings).
    public var rooms: [String] = []
    /// Record rooms whose media plugin labels them `"record": "true"` (VideoRoom `record`).
    public var followRoomRecord = true
    /// Also write each stream to a file of its own: Ogg Opus for audio, WebM/MKV for video.
    public var perTrack = false
    /// How often written data is handed to the kernel, and made durable with fsync.
    public var flushMillis = 500
    public var syncMillis = 2_000
    /// How long a missing packet is waited for (NACKed) before it counts as lost.
    public var reorderMillis = 400
    /// How far behind real time frames are interleaved into a participant's file.
    public var holdbackMillis = 800
    /// Longest a cluster spans when no keyframe starts a new one.
    public var clusterMillis = 2_000
    /// A participant file stays open this long after its last stream ended, for a reconnect.
    public var reconnectSeconds = 5
    /// A recording started by a room policy ends when the room had no media this long.
    public var idleStopSeconds = 10
    /// Required in start and stop requests when set.
    public var secret: String?
    /// Most recordings at once.
    public var maxRecordings = 64
    /// Recordings clients may start per minute from one address, and of one room.
    public var startsPerAddressPerMinute = 6
    public var startsPerRoomPerMinute = 4

    public init() {}

    static let keys: Set<String> = [
        "directory", "allowed_directories", "rooms", "follow_room_record", "per_track", "flush_ms", "fsync_ms", "reorder_ms",
        "holdback_ms", "cluster_ms", "reconnect_seconds", "idle_stop_seconds", "secret", "max_recordings",
        "starts_per_address_per_minute", "starts_per_room_per_minute",
    ]

    /// Reads a config object; the error names the key that is wrong.
    public init(_ object: JSONObject) throws(RecorderError) {
        self.init()
        for key in object.keys where !Self.keys.contains(key) {
            throw RecorderError(.invalidElement, "unknown key \"\(key)\" in the Recorder config (known: \(Self.keys.sorted().joined(separator: ", ")))")
        }
        func string(_ key: String) throws(RecorderError) -> String? {
            guard let v = object[key] else { return nil }
            guard let s = v.stringValue, !s.isEmpty else { throw RecorderError(.invalidElement, "\(key) should be a non-empty string") }
            return s
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(RecorderError) -> Int? {
            guard let v = object[key] else { return nil }
            guard case .int(let i) = v, range.contains(Int(i)) else {
                throw RecorderError(.invalidElement, "\(key) should be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return Int(i)
        }
        func bool(_ key: String) throws(RecorderError) -> Bool? {
            guard let v = object[key] else { return nil }
            guard case .bool(let b) = v else { throw RecorderError(.invalidElement, "\(key) should be true or false") }
            return b
        }
        func strings(_ key: String) throws(RecorderError) -> [String]? {
            guard let v = object[key] else { return nil }
            guard let a = v.arrayValue else { throw RecorderError(.invalidElement, "\(key) should be an array") }
            var out: [String] = []
            for item in a {
                switch item {
                case .string(let s) where !s.isEmpty: out.append(s)
                case .int(let i): out.append(String(i))
                default: throw RecorderError(.invalidElement, "\(key) should hold strings (or room numbers)")
                }
            }
            return out
        }
        directory = try string("directory") ?? directory
        allowedDirectories = try strings("allowed_directories") ?? []
        rooms = try strings("rooms") ?? []
        followRoomRecord = try bool("follow_room_record") ?? followRoomRecord
        perTrack = try bool("per_track") ?? perTrack
        flushMillis = try integer("flush_ms", 50...1_000) ?? flushMillis
        syncMillis = try integer("fsync_ms", 100...60_000) ?? syncMillis
        reorderMillis = try integer("reorder_ms", 0...2_000) ?? reorderMillis
        holdbackMillis = try integer("holdback_ms", 100...5_000) ?? holdbackMillis
        clusterMillis = try integer("cluster_ms", 500...30_000) ?? clusterMillis
        reconnectSeconds = try integer("reconnect_seconds", 0...3_600) ?? reconnectSeconds
        idleStopSeconds = try integer("idle_stop_seconds", 1...86_400) ?? idleStopSeconds
        guard holdbackMillis >= reorderMillis + 300 else {
            throw RecorderError(.invalidElement, "holdback_ms (\(holdbackMillis)) should be at least reorder_ms (\(reorderMillis)) + 300: frames wait for retransmissions before they are interleaved")
        }
        secret = try string("secret")
        maxRecordings = try integer("max_recordings", 1...10_000) ?? maxRecordings
        startsPerAddressPerMinute = try integer("starts_per_address_per_minute", 1...10_000) ?? startsPerAddressPerMinute
        startsPerRoomPerMinute = try integer("starts_per_room_per_minute", 1...10_000) ?? startsPerRoomPerMinute
    }

    /// The folder a room's `rec_dir` asks for, if it is allowed; nil means `directory`.
    public func resolve(recordingDirectory requested: String?) -> String? {
        guard let requested else { return nil }
        let wanted = URL(fileURLWithPath: requested).standardizedFileURL.path
        for root in [directory] + allowedDirectories {
            let base = URL(fileURLWithPath: root).standardizedFileURL.path
            if wanted == base || wanted.hasPrefix(base.hasSuffix("/") ? base : base + "/") { return wanted }
        }
        return nil
    }
}
