public import AtriumJSON

/// A room or participant id: a positive integer, or a string when the plugin runs with
/// `string_ids` (Janus's option of the same name).
public enum SFUID: Sendable, Hashable, CustomStringConvertible {
    case number(UInt64)
    case text(String)

    public var json: JSON {
        switch self {
        case .number(let n): JSON(n)
        case .text(let s): .string(s)
        }
    }

    public var description: String {
        switch self {
        case .number(let n): "\(n)"
        case .text(let s): s
        }
    }

    /// Reads `key` as an id of the kind the plugin uses; nil when absent.
    public static func read(_ fields: Fields, _ key: String, stringIDs: Bool) throws(SFUError) -> SFUID? {
        if stringIDs {
            guard let s = try fields.string(key) else { return nil }
            guard !s.isEmpty else { throw .invalid(key, "a non-empty string") }
            return .text(s)
        }
        guard let n = try fields.integer(key, max: 1 << 53) else { return nil }
        guard n > 0 else { throw .invalid(key, "a positive integer") }
        return .number(n)
    }

    /// A fresh random id of the plugin's kind (53-bit numbers, as Janus's, or their decimal text).
    public static func random(stringIDs: Bool) -> SFUID {
        let n = UInt64.random(in: 1...((1 << 53) - 1))
        return stringIDs ? .text("\(n)") : .number(n)
    }
}

/// A room's properties, named as Janus VideoRoom names them in its configuration and in `create`.
public struct RoomSettings: Sendable, Equatable {
    public var description = ""
    public var isPrivate = false
    public var secret: String?
    public var pin: String?
    public var requirePrivateID = false
    /// Concurrent publishers allowed (Janus's `publishers`, default 3).
    public var publishers = 3
    /// REMB cap for each publisher, bits per second; 0: no cap.
    public var bitrate: UInt64 = 0
    /// Whether publishers may not raise `bitrate` through `configure`.
    public var bitrateCap = false
    /// Seconds between periodic keyframe requests to publishers; 0: none.
    public var firFrequency = 0
    public var audioCodecs = ["opus"]
    public var videoCodecs = ["vp8"]
    public var opusFEC = true
    public var opusDTX = false
    public var audioLevelExtension = true
    public var audioLevelEvent = false
    public var audioActivePackets = 100
    public var audioLevelAverage = 25
    public var videoOrientationExtension = true
    public var playoutDelayExtension = true
    public var transportWideCCExtension = true
    public var record = false
    public var recordingDirectory: String?
    public var lockRecord = false
    public var notifyJoining = false
    public var requireE2EE = false
    /// ACL tokens; nil: everyone may join.
    public var allowed: [String]?
    /// Atrium's own: the room is destroyed when its last participant and subscriber leave (rooms
    /// made on demand, such as the web app's, would otherwise live as long as the process).
    public var destroyWhenEmpty = false
    /// Atrium's own: the room's stream id, which watch-only viewers join with instead of the room
    /// id (`join` with `ptype: "viewer"`); nil until `create` (or the configuration) gives one or
    /// the plugin makes one. Never shown in `list`.
    public var streamID: String?
    /// Atrium's own: viewers allowed at once (`max_viewers`, default 100; 0: no viewers).
    public var maxViewers = 100
    /// Atrium's own: the room's participants may write into its stream chat, as "<name> (room)"
    /// (`stream_chat_write`, default false: the room only reads it).
    public var streamChatWrite = false
    /// Atrium's own: viewers see the room's own chat, read-only (`viewers_read_chat`, default false).
    public var viewersReadChat = false

    public init() {}

    static let audioCodecNames: Set<String> = ["opus", "multiopus", "g722", "pcmu", "pcma", "isac32", "isac16"]
    static let videoCodecNames: Set<String> = ["vp8", "vp9", "h264", "av1", "h265"]

    /// The keys of a room definition besides these properties (the id, and `create`'s own fields).
    public static let nonPropertyKeys: Set<String> = ["room", "permanent", "admin_key", "request"]

    /// Reads the properties present in `fields` over these defaults; unknown keys are ignored, as
    /// Janus ignores them.
    public init(_ fields: Fields) throws(SFUError) {
        self.init()
        try apply(fields)
    }

    public mutating func apply(_ f: Fields) throws(SFUError) {
        if let v = try f.string("description") { description = v }
        if let v = try f.bool("is_private") { isPrivate = v }
        if let v = try f.string("secret") { secret = v }
        if let v = try f.string("pin") { pin = v }
        if let v = try f.bool("require_pvtid") { requirePrivateID = v }
        if let v = try f.integer("publishers", max: 1_000) { publishers = max(1, Int(v)) }
        if let v = try f.integer("bitrate", max: 1 << 40) { bitrate = v }
        if let v = try f.bool("bitrate_cap") { bitrateCap = v }
        if let v = try f.integer("fir_freq", max: 86_400) { firFrequency = Int(v) }
        if let v = try f.string("audiocodec") { audioCodecs = try Self.codecList(v, allowed: Self.audioCodecNames, key: "audiocodec") }
        if let v = try f.string("videocodec") { videoCodecs = try Self.codecList(v, allowed: Self.videoCodecNames, key: "videocodec") }
        if let v = try f.bool("opus_fec") { opusFEC = v }
        if let v = try f.bool("opus_dtx") { opusDTX = v }
        if let v = try f.bool("audiolevel_ext") { audioLevelExtension = v }
        if let v = try f.bool("audiolevel_event") { audioLevelEvent = v }
        if let v = try f.integer("audio_active_packets", max: 10_000) { audioActivePackets = max(1, Int(v)) }
        if let v = try f.integer("audio_level_average", max: 127) { audioLevelAverage = Int(v) }
        if let v = try f.bool("videoorient_ext") { videoOrientationExtension = v }
        if let v = try f.bool("playoutdelay_ext") { playoutDelayExtension = v }
        if let v = try f.bool("transport_wide_cc_ext") { transportWideCCExtension = v }
        if let v = try f.bool("record") { record = v }
        if let v = try f.string("rec_dir") { recordingDirectory = v }
        if let v = try f.bool("lock_record") { lockRecord = v }
        if let v = try f.bool("notify_joining") { notifyJoining = v }
        if let v = try f.bool("require_e2ee") { requireE2EE = v }
        if let v = try f.strings("allowed") {
            try Self.checkAllowed(v)
            allowed = v
        }
        if let v = try f.bool("destroy_when_empty") { destroyWhenEmpty = v }
        if let v = try f.string("stream_id") {
            guard !v.isEmpty, v.utf8.count <= 128 else { throw .invalid("stream_id", "a non-empty string of at most 128 bytes") }
            streamID = v
        }
        if let v = try f.integer("max_viewers", max: 1_000_000) { maxViewers = Int(v) }
        if let v = try f.bool("stream_chat_write") { streamChatWrite = v }
        if let v = try f.bool("viewers_read_chat") { viewersReadChat = v }
    }

    /// What the Chat plugin is told on the event bus (topic `sfu.stream`) about room `room`'s
    /// stream link: which chat room is the room's (its id as text), its stream id, and what the
    /// room lets through between its chat and its stream chat. Nil while the room has no stream id.
    /// Rationale: only the SFU knows which stream id belongs to which room, so only it may link a
    /// room's chat to a stream chat; a chat client claiming the link could speak for any room.
    public func streamLink(room: SFUID, destroyed: Bool = false) -> JSONObject? {
        guard let streamID else { return nil }
        var o: JSONObject = [
            "room": .string(room.description), "stream_id": .string(streamID),
            "stream_chat_write": .bool(streamChatWrite), "viewers_read_chat": .bool(viewersReadChat),
        ]
        if destroyed { o["destroyed"] = true }
        return o
    }

    /// The stream-chat settings as participants who joined with `stream_info` see them.
    public var streamChatSettings: JSONObject {
        ["stream_chat_write": .bool(streamChatWrite), "viewers_read_chat": .bool(viewersReadChat)]
    }

    /// A comma-separated codec preference list, each name one Janus knows ("vp8,h264").
    static func codecList(_ text: String, allowed: Set<String>, key: String) throws(SFUError) -> [String] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: " ").lowercased() }.filter { !$0.isEmpty }
        guard !names.isEmpty, names.count <= 5 else { throw SFUError(.invalidElement, "Invalid element (\(key) should list 1 to 5 codecs)") }
        for name in names where !allowed.contains(name) {
            throw SFUError(.invalidElement, "Invalid element (\(key) has unsupported codec \(name))")
        }
        return names
    }

    /// The room as `list` describes it (Janus's field names).
    public func listing(room: SFUID, participants: Int) -> JSONObject {
        var o: JSONObject = [
            "room": room.json, "description": .string(description), "pin_required": .bool(pin != nil),
            "is_private": .bool(isPrivate), "max_publishers": .int(Int64(publishers)), "bitrate": JSON(bitrate),
            "fir_freq": .int(Int64(firFrequency)), "require_pvtid": .bool(requirePrivateID),
            "require_e2ee": .bool(requireE2EE), "dummy_publisher": false, "notify_joining": .bool(notifyJoining),
            "audiocodec": .string(audioCodecs.joined(separator: ",")), "videocodec": .string(videoCodecs.joined(separator: ",")),
            "record": .bool(record), "lock_record": .bool(lockRecord), "num_participants": .int(Int64(participants)),
            "audiolevel_ext": .bool(audioLevelExtension), "audiolevel_event": .bool(audioLevelEvent),
            "videoorient_ext": .bool(videoOrientationExtension), "playoutdelay_ext": .bool(playoutDelayExtension),
            "transport_wide_cc_ext": .bool(transportWideCCExtension),
        ]
        if bitrateCap { o["bitrate_cap"] = true }
        if audioCodecs.contains("opus") {
            o["opus_fec"] = .bool(opusFEC)
            if opusDTX { o["opus_dtx"] = true }
        }
        if let recordingDirectory { o["rec_dir"] = .string(recordingDirectory) }
        if audioLevelEvent {
            o["audio_active_packets"] = .int(Int64(audioActivePackets))
            o["audio_level_average"] = .int(Int64(audioLevelAverage))
        }
        return o
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

extension RoomSettings {
    /// Tokens one room's ACL (`allowed`) may hold, and their size: each is kept for the room's
    /// life and echoed in every `allowed` answer, and a meeting hands out one per invitee.
    public static let maximumAllowedTokens = 1_000
    public static let maximumAllowedTokenBytes = 256

    /// Refuses `tokens` when, added to `existing` ones, they would pass the bounds.
    public static func checkAllowed(_ tokens: [String], adding existing: Int = 0) throws(SFUError) {
        guard existing + tokens.count <= maximumAllowedTokens, tokens.allSatisfy({ $0.utf8.count <= maximumAllowedTokenBytes }) else {
            throw .invalid("allowed", "at most \(maximumAllowedTokens) tokens of at most \(maximumAllowedTokenBytes) bytes per room")
        }
    }
}
