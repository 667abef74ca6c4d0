import AtriumJSON
import PluginKit
import Testing

@Suite struct PresenceTests {
    func event(_ room: String, session: UInt64, handle: UInt64, role: String = "publisher", present: Bool = true) -> JSONObject {
        PresenceEvent(room: room, session: session, handle: handle, role: role, present: present).json.objectValue ?? [:]
    }

    @Test func joinsAndLeavesOfEachPluginAreKeptApart() {
        var p = RoomPresence()
        p.apply(source: "atrium.plugin.sfu", topic: "presence", event: event("1234", session: 7, handle: 70))
        p.apply(source: "atrium.plugin.chat", topic: "presence", event: event("1234", session: 8, handle: 70, role: "chat"))
        #expect(p.isInMeeting(session: 7) && p.isInMeeting(session: 8) && !p.isInMeeting(session: 9))
        #expect(p.isIn(room: "1234", session: 7, source: "atrium.plugin.sfu", roles: ["publisher"]))
        // A chat participant of a room with the same id is not a participant of the SFU room.
        #expect(!p.isIn(room: "1234", session: 8, source: "atrium.plugin.sfu", roles: ["publisher"]))
        #expect(!p.isIn(room: "1234", session: 8, source: nil, roles: ["publisher"]))
        p.apply(source: "atrium.plugin.sfu", topic: "presence", event: event("1234", session: 7, handle: 70, present: false))
        #expect(!p.isInMeeting(session: 7) && p.isInMeeting(session: 8))
    }

    @Test func otherTopicsAndMalformedEventsChangeNothing() {
        var p = RoomPresence()
        let otherTopic = p.apply(source: "x", topic: "chat.join", event: event("1", session: 1, handle: 1))
        // A session id as a JSON number is not read (ids are 64-bit, numbers are not).
        let numeric = p.apply(source: "x", topic: "presence", event: ["room": "1", "session": 1, "handle": "1", "role": "chat", "present": true])
        #expect(!otherTopic && !numeric && p.count == 0)
    }

    @Test func sixtyFourBitIdsSurviveTheBus() throws {
        let e = PresenceEvent(room: "r", session: UInt64.max, handle: UInt64.max - 1, role: "viewer", present: true)
        let parsed = try JSON.parse(e.json.serialized).objectValue
        #expect(PresenceEvent(try #require(parsed)) == e)
    }
}
