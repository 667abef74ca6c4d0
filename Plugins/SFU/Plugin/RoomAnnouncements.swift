import AtriumJSON
import PluginKit
import SFUCore

/// What the SFU tells other plugins on the event bus about who may do what in its rooms: which
/// sessions are in which room (`presence`: TURN hands relays only to people in a meeting, the
/// Recorder lets a room's participants record it), and each room's secret (`sfu.room`: the
/// Recorder asks for it before recording a room that has one).
/// Rationale: the secret goes to in-process plugins only, which are trusted with the server's
/// memory anyway; it never reaches a client.
extension SFUPlugin {
    /// `handle` entered (or left) `room` as a publisher-type participant, a subscriber or a viewer.
    func publishPresence(_ handle: PluginHandle, room: Room, role: String, present: Bool) {
        host.publish(topic: PresenceEvent.topic, event: PresenceEvent(handle, room: room.id.description, role: role, present: present).json)
    }

    /// `{"room":"<id as text>","secret"?,"destroyed"?:true}` on `sfu.room`. Sent when a room is
    /// made, whenever someone joins it (so rooms of the configuration, made before other plugins
    /// listened, are announced before anyone in them can ask for anything), when its secret
    /// changes and when it goes.
    func publishRoomAccess(_ room: Room, destroyed: Bool = false) {
        var event: JSONObject = ["room": .string(room.id.description)]
        if let secret = room.settings.secret { event["secret"] = .string(secret) }
        if destroyed { event["destroyed"] = true }
        host.publish(topic: "sfu.room", event: .object(event))
    }
}
