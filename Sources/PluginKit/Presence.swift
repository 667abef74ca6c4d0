public import AtriumJSON

/// Who is in which room, as the plugins that have rooms announce it on the event bus
/// (`atrium.events/1`, topic `presence`): one event when a handle joins a room and one when it
/// leaves (by request, kick, room destroyed, detach or session end).
///
/// `{"room":"<id as text>","session":"<session id>","handle":"<handle id>","role":"publisher",
/// "present":true|false}`. The SFU announces `publisher`, `subscriber` and `viewer`; the Chat
/// plugin `chat`.
/// Rationale: plugins that hand out something costly (TURN relays, recordings) must know that a
/// request comes from someone in a meeting, and only the plugins that have the rooms know that.
/// Session and handle ids go as decimal text because they are 64-bit.
public struct PresenceEvent: Sendable, Equatable {
    public static let topic = "presence"

    public var room: String
    public var session: UInt64
    public var handle: UInt64
    public var role: String
    public var present: Bool

    public init(room: String, session: UInt64, handle: UInt64, role: String, present: Bool) {
        self.room = room
        self.session = session
        self.handle = handle
        self.role = role
        self.present = present
    }

    /// The event for `handle` joining (or leaving) `room` in `role`.
    public init(_ handle: PluginHandle, room: String, role: String, present: Bool) {
        self.init(room: room, session: handle.sessionID, handle: handle.id, role: role, present: present)
    }

    public var json: JSON {
        ["room": .string(room), "session": .string(String(session)), "handle": .string(String(handle)),
         "role": .string(role), "present": .bool(present)]
    }

    /// Reads a bus event; nil when it is not a well-formed presence event.
    public init?(_ o: JSONObject) {
        guard let room = o["room"]?.stringValue, let session = o["session"]?.stringValue.flatMap({ UInt64($0) }),
              let handle = o["handle"]?.stringValue.flatMap({ UInt64($0) }), let role = o["role"]?.stringValue,
              let present = o["present"]?.boolValue
        else { return nil }
        self.init(room: room, session: session, handle: handle, role: role, present: present)
    }
}

/// The rooms each session is in, kept from `presence` events (see `PresenceEvent`).
public struct RoomPresence: Sendable {
    /// One entry per (publishing plugin, handle): a handle is in at most one room of a plugin.
    private struct Key: Hashable {
        var source: String
        var handle: UInt64
    }

    private struct Entry {
        var session: UInt64
        var room: String
        var role: String
    }

    private var entries: [Key: Entry] = [:]

    public init() {}

    /// Applies a bus event from plugin `source`; returns whether it was a presence event.
    @discardableResult
    public mutating func apply(source: String, topic: String, event: JSONObject) -> Bool {
        guard topic == PresenceEvent.topic, let e = PresenceEvent(event) else { return false }
        let key = Key(source: source, handle: e.handle)
        entries[key] = e.present ? Entry(session: e.session, room: e.room, role: e.role) : nil
        return true
    }

    /// Whether `session` has a handle in any room of any plugin.
    public func isInMeeting(session: UInt64) -> Bool {
        entries.values.contains { $0.session == session }
    }

    /// Whether `session` has a handle in `room` of plugin `source` (any plugin when nil), in one
    /// of `roles`.
    public func isIn(room: String, session: UInt64, source: String?, roles: Set<String>) -> Bool {
        entries.contains { key, entry in
            entry.session == session && entry.room == room && roles.contains(entry.role) && (source == nil || key.source == source)
        }
    }

    /// Handles present now (for tests).
    public var count: Int { entries.count }
}
