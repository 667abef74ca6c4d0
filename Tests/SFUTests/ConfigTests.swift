import AtriumJSON
import SFUCore
import Testing

@Suite struct SFUConfigTests {
    func parse(_ text: String) throws -> SFUConfig {
        guard let o = try JSON.parse(text).objectValue else { throw SFUError(.invalidJSON, "bad test JSON") }
        return try SFUConfig(o)
    }

    @Test func roomsTakeJanusNamesAndDefaults() throws {
        let c = try parse(#"{"rooms":[{"room":1234,"description":"Demo Room","secret":"adminpwd","publishers":6,"bitrate":128000,"fir_freq":10,"videocodec":"vp9,h264"},{"room":5}]}"#)
        #expect(c.rooms.map(\.id) == [.number(1234), .number(5)])
        let demo = c.rooms[0].settings
        #expect(demo.description == "Demo Room" && demo.secret == "adminpwd" && demo.publishers == 6 && demo.bitrate == 128_000)
        #expect(demo.videoCodecs == ["vp9", "h264"] && demo.audioCodecs == ["opus"])
        let plain = c.rooms[1].settings
        #expect(plain.publishers == 3 && plain.audioLevelActivePacketsDefault && !plain.destroyWhenEmpty)
    }

    @Test func mistakesNameTheKey() {
        #expect(throws: SFUError.self) { try parse(#"{"roms":[]}"#) }
        #expect { try parse(#"{"rooms":[{"room":"x"}]}"#) } throws: { ($0 as? SFUError)?.message.contains("rooms[0]: Invalid element type (room") == true }
        #expect { try parse(#"{"rooms":[{"room":1,"videocodec":"vp7"}]}"#) } throws: { ($0 as? SFUError)?.message.contains("vp7") == true }
        #expect { try parse(#"{"rooms":[{"room":1},{"room":1}]}"#) } throws: { ($0 as? SFUError)?.code == .roomExists }
        #expect { try parse(#"{"rooms":[{"description":"no id"}]}"#) } throws: { ($0 as? SFUError)?.code == .missingElement }
    }

    @Test func streamIDAndMaxViewersAreAtriumRoomProperties() throws {
        let plain = try parse(#"{"rooms":[{"room":1}]}"#)
        #expect(plain.rooms[0].settings.streamID == nil && plain.rooms[0].settings.maxViewers == 100)
        let c = try parse(#"{"rooms":[{"room":1,"stream_id":"watch-me","max_viewers":3}]}"#)
        #expect(c.rooms[0].settings.streamID == "watch-me" && c.rooms[0].settings.maxViewers == 3)
        #expect(throws: SFUError.self) { try parse(#"{"rooms":[{"room":1,"stream_id":""}]}"#) }
        #expect(throws: SFUError.self) { try parse(#"{"rooms":[{"room":1,"max_viewers":"many"}]}"#) }
        #expect(c.rooms[0].settings.listing(room: .number(1), participants: 0)["stream_id"] == nil)
    }

    @Test func destroyWhenEmptyIsAnAtriumRoomProperty() throws {
        let c = try parse(#"{"rooms":[{"room":1,"destroy_when_empty":true}]}"#)
        #expect(c.rooms[0].settings.destroyWhenEmpty)
        #expect(throws: SFUError.self) { try parse(#"{"rooms":[{"room":1,"destroy_when_empty":"yes"}]}"#) }
    }

    @Test func stringIDs() throws {
        let c = try parse(#"{"string_ids":true,"rooms":[{"room":"lobby"}]}"#)
        #expect(c.rooms[0].id == .text("lobby"))
        #expect(throws: SFUError.self) { try parse(#"{"string_ids":true,"rooms":[{"room":7}]}"#) }
    }

    @Test func listingUsesJanusFieldNames() {
        var s = RoomSettings()
        s.pin = "1"
        let o = s.listing(room: .number(9), participants: 2)
        #expect(o["room"] == 9 && o["pin_required"] == true && o["num_participants"] == 2 && o["max_publishers"] == 3)
        #expect(o["audiocodec"] == "opus" && o["videocodec"] == "vp8")
    }
}

extension RoomSettings {
    var audioLevelActivePacketsDefault: Bool { audioActivePackets == 100 && audioLevelAverage == 25 }
}

@Suite struct StreamChatSettingsTests {
    @Test func offByDefaultAndReadFromRoomProperties() throws {
        let plain = RoomSettings()
        #expect(!plain.streamChatWrite && !plain.viewersReadChat)
        let o = try #require(try JSON.parse(#"{"stream_chat_write":true,"viewers_read_chat":true}"#).objectValue)
        let s = try RoomSettings(Fields(o))
        #expect(s.streamChatWrite && s.viewersReadChat)
        #expect(s.streamChatSettings == ["stream_chat_write": true, "viewers_read_chat": true])
        let wrong = try #require(try JSON.parse(#"{"viewers_read_chat":"yes"}"#).objectValue)
        #expect { try RoomSettings(Fields(wrong)) } throws: { ($0 as? SFUError)?.message.contains("viewers_read_chat") == true }
    }

    @Test func theChatPluginIsToldTheLinkWithTheRoomIDAsText() {
        var s = RoomSettings()
        #expect(s.streamLink(room: .number(7)) == nil, "no stream id, no link")
        s.streamID = "abcdefghijklmnopqrstuvwxyz"
        s.viewersReadChat = true
        #expect(s.streamLink(room: .number(7)) == ["room": "7", "stream_id": "abcdefghijklmnopqrstuvwxyz", "stream_chat_write": false, "viewers_read_chat": true])
        #expect(s.streamLink(room: .text("lobby"), destroyed: true)?["destroyed"] == true)
        #expect(s.listing(room: .number(7), participants: 0)["viewers_read_chat"] == nil, "list does not show it")
    }
}
