public import AtriumJSON
public import PluginKit

/// Who may start, stop, list and read a room's recordings through a client handle (the admin API
/// may always). Each request names a room, and is allowed when:
/// 1. its `secret` is the Recorder's own (`secret` in its config), or else
/// 2. the room has a secret (the SFU announces each room's on the event bus, `sfu.room`) and the
///    request carries it, or else
/// 3. neither the room nor the Recorder has a secret, and the requesting session is in the room
///    as a participant (the SFU's `presence` events, role `publisher`).
///
/// Rationale: a recording is a folder on the server's disk holding what people said, so a
/// stranger must neither make one nor read one. A room without a secret has nothing else to
/// tell its people from strangers; being in it (and so seen by everyone else in it) is the
/// least a recorder of a meeting should be. A room nobody has joined cannot be recorded by a
/// client at all, which is what the SFU announcing every join (before the join itself) relies on.
public struct RecordingAccess: Sendable {
    /// The Recorder's own secret, which opens every room.
    public let recorderSecret: String?
    /// Room secrets by room id (as text), from `sfu.room`; a room absent here has none.
    private var roomSecrets: [String: String] = [:]
    public private(set) var presence = RoomPresence()

    public init(recorderSecret: String?) {
        self.recorderSecret = recorderSecret
    }

    /// Keeps what the bus says about rooms and who is in them.
    public mutating func apply(source: String, topic: String, event: JSONObject) {
        if presence.apply(source: source, topic: topic, event: event) { return }
        guard topic == "sfu.room", let room = event["room"]?.stringValue else { return }
        if event["destroyed"]?.boolValue == true {
            roomSecrets[room] = nil
        } else {
            roomSecrets[room] = event["secret"]?.stringValue
        }
    }

    /// Whether `session` may act on `room`'s recordings with `secret`; 415 or 419 when not.
    public func authorize(room: String, secret: String?, session: UInt64) throws(RecorderError) {
        if let recorderSecret, secret == recorderSecret { return }
        if let roomSecret = roomSecrets[room] {
            guard let secret else { throw RecorderError(.missingElement, "Missing mandatory element (secret)") }
            guard secret == roomSecret else { throw RecorderError(.unauthorized, "Unauthorized (wrong secret)") }
            return
        }
        if recorderSecret != nil {
            guard secret != nil else { throw RecorderError(.missingElement, "Missing mandatory element (secret)") }
            throw RecorderError(.unauthorized, "Unauthorized (wrong secret)")
        }
        guard presence.isIn(room: room, session: session, source: nil, roles: ["publisher"]) else {
            throw RecorderError(.unauthorized, "Unauthorized (room \(room) has no secret: only its participants may record it; join it first)")
        }
    }

    /// Whether the room has a secret known to the Recorder (for tests and logs).
    public func hasSecret(room: String) -> Bool { roomSecrets[room] != nil }
}
