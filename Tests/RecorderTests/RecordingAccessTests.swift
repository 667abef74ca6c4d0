import AtriumJSON
import PluginKit
import RecorderCore
import Testing

@Suite struct RecordingAccessTests {
    func presence(_ room: String, session: UInt64, role: String = "publisher", present: Bool = true) -> JSONObject {
        PresenceEvent(room: room, session: session, handle: session &* 10, role: role, present: present).json.objectValue ?? [:]
    }

    func code(_ body: () throws(RecorderError) -> Void) -> Int? {
        do throws(RecorderError) {
            try body()
            return nil
        } catch {
            return error.code.rawValue
        }
    }

    @Test func aRoomWithASecretNeedsIt() {
        var access = RecordingAccess(recorderSecret: nil)
        access.apply(source: "atrium.plugin.sfu", topic: "sfu.room", event: ["room": "1234", "secret": "s3cret"])
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1234", secret: nil, session: 1) } == 415)
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1234", secret: "adminpwd", session: 1) } == 419)
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1234", secret: "s3cret", session: 1) } == nil)
        // Being in the room is not enough when it has a secret.
        access.apply(source: "atrium.plugin.sfu", topic: "presence", event: presence("1234", session: 2))
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1234", secret: nil, session: 2) } == 415)
        // Once the room is gone, its secret is forgotten (and nobody is in it).
        access.apply(source: "atrium.plugin.sfu", topic: "sfu.room", event: ["room": "1234", "destroyed": true])
        access.apply(source: "atrium.plugin.sfu", topic: "presence", event: presence("1234", session: 2, present: false))
        #expect(!access.hasSecret(room: "1234"))
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1234", secret: "s3cret", session: 1) } == 419)
    }

    @Test func aRoomWithoutASecretIsForItsParticipants() {
        var access = RecordingAccess(recorderSecret: nil)
        access.apply(source: "atrium.plugin.sfu", topic: "sfu.room", event: ["room": "5"])
        #expect(code { () throws(RecorderError) in try access.authorize(room: "5", secret: nil, session: 9) } == 419)
        access.apply(source: "atrium.plugin.sfu", topic: "presence", event: presence("5", session: 9))
        #expect(code { () throws(RecorderError) in try access.authorize(room: "5", secret: nil, session: 9) } == nil)
        // A viewer, or a chat room of the same id, does not make a participant.
        access.apply(source: "atrium.plugin.sfu", topic: "presence", event: presence("5", session: 10, role: "viewer"))
        access.apply(source: "atrium.plugin.chat", topic: "presence", event: presence("5", session: 11, role: "chat"))
        #expect(code { () throws(RecorderError) in try access.authorize(room: "5", secret: nil, session: 10) } == 419)
        #expect(code { () throws(RecorderError) in try access.authorize(room: "5", secret: nil, session: 11) } == 419)
    }

    @Test func theRecordersOwnSecretOpensEveryRoomAndIsNeededWithoutARoomSecret() {
        var access = RecordingAccess(recorderSecret: "letmein")
        access.apply(source: "atrium.plugin.sfu", topic: "sfu.room", event: ["room": "1", "secret": "room"])
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1", secret: "letmein", session: 1) } == nil)
        #expect(code { () throws(RecorderError) in try access.authorize(room: "1", secret: "room", session: 1) } == nil)
        access.apply(source: "atrium.plugin.sfu", topic: "presence", event: presence("2", session: 1))
        #expect(code { () throws(RecorderError) in try access.authorize(room: "2", secret: nil, session: 1) } == 415)
        #expect(code { () throws(RecorderError) in try access.authorize(room: "2", secret: "letmein", session: 7) } == nil)
    }
}

@Suite struct StartLimitsTests {
    let second: UInt64 = 1_000_000_000

    @Test func startsAreBoundedPerAddressAndPerRoomWithinAMinute() throws {
        var limits = StartLimits(perAddressPerMinute: 3, perRoomPerMinute: 2)
        for (room, t) in [("a", 0), ("a", 1), ("b", 2)] {
            try limits.check(address: "203.0.113.7", room: room, now: UInt64(t) * second)
            limits.started(address: "203.0.113.7", room: room, now: UInt64(t) * second)
        }
        #expect { try limits.check(address: "198.51.100.1", room: "a", now: 3 * second) } throws: {
            ($0 as? RecorderError)?.code == .tooManyRecordings && ($0 as? RecorderError)?.message.contains("room a") == true
        }
        #expect { try limits.check(address: "203.0.113.7", room: "c", now: 3 * second) } throws: {
            ($0 as? RecorderError)?.message.contains("your address") == true
        }
        try limits.check(address: "198.51.100.1", room: "c", now: 3 * second)
        // A minute later both have room again.
        try limits.check(address: "203.0.113.7", room: "a", now: 61 * second)
    }

    @Test func checkingTakesNothing() throws {
        let limits = StartLimits(perAddressPerMinute: 1, perRoomPerMinute: 1)
        for _ in 0..<10 { try limits.check(address: "a", room: "r", now: 0) }
    }
}
