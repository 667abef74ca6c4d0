import AtriumJSON
import RecorderCore
import Testing

@Suite struct RecorderConfigTests {
    func parse(_ text: String) throws -> RecorderConfig {
        guard let o = try JSON.parse(text).objectValue else { throw RecorderError(.invalidElement, "bad test JSON") }
        return try RecorderConfig(o)
    }

    @Test func defaultsAndKeys() throws {
        let d = try parse("{}")
        #expect(d.directory == "recordings" && d.followRoomRecord && !d.perTrack && d.rooms.isEmpty && d.secret == nil)
        let c = try parse(#"{"directory":"/srv/rec","rooms":["lobby",1234],"per_track":true,"flush_ms":250,"fsync_ms":1000,"secret":"s"}"#)
        #expect(c.directory == "/srv/rec" && c.rooms == ["lobby", "1234"] && c.perTrack && c.flushMillis == 250 && c.syncMillis == 1_000 && c.secret == "s")
    }

    @Test func mistakesNameTheKey() {
        #expect { try parse(#"{"colour":"blue"}"#) } throws: { ($0 as? RecorderError)?.message.contains(#"unknown key "colour""#) == true }
        #expect { try parse(#"{"flush_ms":5}"#) } throws: { ($0 as? RecorderError)?.message.contains("flush_ms") == true }
        #expect { try parse(#"{"rooms":[true]}"#) } throws: { ($0 as? RecorderError)?.message.contains("rooms") == true }
        #expect { try parse(#"{"directory":""}"#) } throws: { ($0 as? RecorderError)?.message.contains("directory") == true }
    }

    @Test func recDirMustStayInsideAnAllowedFolder() throws {
        let c = try parse(#"{"directory":"/srv/rec","allowed_directories":["/data/meetings"]}"#)
        #expect(c.resolve(recordingDirectory: "/srv/rec/team") == "/srv/rec/team")
        #expect(c.resolve(recordingDirectory: "/data/meetings") == "/data/meetings")
        #expect(c.resolve(recordingDirectory: "/srv/rec/../../etc") == nil)
        #expect(c.resolve(recordingDirectory: "/srv/recordings-elsewhere") == nil)
        #expect(c.resolve(recordingDirectory: "/tmp") == nil)
        #expect(c.resolve(recordingDirectory: nil) == nil)
    }
}
