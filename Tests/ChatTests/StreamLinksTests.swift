import AtriumJSON
import ChatCore
import Testing

@Suite struct StreamLinksTests {
    func event(_ text: String) throws -> JSONObject {
        try #require(try JSON.parse(text).objectValue)
    }

    @Test func theStreamChatIsNamedByTheStreamIDsFirstTenCharacters() {
        let link = StreamLink(roomChat: "4242", streamID: "abcdefghijklmnopqrstuvwxyz")
        #expect(link.streamChat == "stream-abcdefghij")
        #expect(StreamLink.streamChatID(for: "short") == "stream-short")
    }

    @Test func defaultsKeepTheRoomReadingAndTheViewersOut() throws {
        var links = StreamLinks()
        let change = links.apply(try event(#"{"room":"4242","stream_id":"abcdefghijklmnop"}"#))
        #expect(change?.old == nil && change?.new?.roomWrites == false && change?.new?.viewersRead == false)
        #expect(links.route(from: "4242", target: nil) == .ownRoom(readOnlyCopy: nil))
        #expect(links.route(from: "4242", target: .room) == .ownRoom(readOnlyCopy: nil))
        #expect(links.route(from: "4242", target: .stream) == .refusedRoomWritesOff)
        #expect(links.route(from: "stream-abcdefghij", target: nil) == .ownRoom(readOnlyCopy: nil))
        #expect(links.route(from: "stream-abcdefghij", target: .stream) == .ownRoom(readOnlyCopy: nil))
    }

    @Test func theRoomWritesAndTheViewersReadWhenAllowed() throws {
        var links = StreamLinks()
        _ = links.apply(try event(#"{"room":"4242","stream_id":"abcdefghijklmnop","stream_chat_write":true,"viewers_read_chat":true}"#))
        #expect(links.route(from: "4242", target: .stream) == .intoStreamChat("stream-abcdefghij"))
        #expect(links.route(from: "4242", target: nil) == .ownRoom(readOnlyCopy: "stream-abcdefghij"))
        #expect(links.link(streamChat: "stream-abcdefghij")?.roomChat == "4242")
        #expect(links.link(either: "4242")?.settings == ["stream_chat_write": true, "viewers_read_chat": true])
    }

    @Test func viewersNeverWriteToTheRoomsChat() throws {
        var links = StreamLinks()
        _ = links.apply(try event(#"{"room":"4242","stream_id":"abcdefghijklmnop","stream_chat_write":true,"viewers_read_chat":true}"#))
        #expect(links.route(from: "stream-abcdefghij", target: .room) == .refusedViewerWrite)
    }

    @Test func aTargetOutsideALinkNamesNothing() {
        let links = StreamLinks()
        #expect(links.route(from: "lobby", target: .stream) == .refusedNotLinked)
        #expect(links.route(from: "lobby", target: .room) == .refusedNotLinked)
        #expect(links.route(from: "lobby", target: nil) == .ownRoom(readOnlyCopy: nil))
    }

    @Test func turningSettingsOffTakesEffectAtOnce() throws {
        var links = StreamLinks()
        _ = links.apply(try event(#"{"room":"1","stream_id":"s1234567890","viewers_read_chat":true}"#))
        #expect(links.route(from: "1", target: nil) == .ownRoom(readOnlyCopy: "stream-s123456789"))
        let off = links.apply(try event(#"{"room":"1","stream_id":"s1234567890","viewers_read_chat":false}"#))
        #expect(off?.old?.viewersRead == true && off?.new?.viewersRead == false)
        #expect(links.route(from: "1", target: nil) == .ownRoom(readOnlyCopy: nil))
        #expect(links.apply(try event(#"{"room":"1","stream_id":"s1234567890","viewers_read_chat":false}"#)) == nil, "no change, no news")
    }

    @Test func aDestroyedRoomUnlinksOnlyItsOwnStream() throws {
        var links = StreamLinks()
        _ = links.apply(try event(#"{"room":"1","stream_id":"old-stream-id"}"#))
        _ = links.apply(try event(#"{"room":"1","stream_id":"new-stream-id","viewers_read_chat":true}"#))
        #expect(links.link(streamChat: "stream-old-stream-") == nil, "the old stream chat is unlinked when the room's stream changes")
        #expect(links.apply(try event(#"{"room":"1","stream_id":"old-stream-id","destroyed":true}"#)) == nil)
        #expect(links.link(roomChat: "1")?.streamID == "new-stream-id")
        let gone = links.apply(try event(#"{"room":"1","stream_id":"new-stream-id","destroyed":true}"#))
        #expect(gone?.old?.streamID == "new-stream-id" && gone?.new == nil)
        #expect(links.route(from: "1", target: .stream) == .refusedNotLinked)
        #expect(links.route(from: "stream-new-stream", target: .room) == .refusedNotLinked)
    }

    @Test func malformedEventsChangeNothing() throws {
        var links = StreamLinks()
        #expect(links.apply(try event(#"{"room":"1"}"#)) == nil)
        #expect(links.apply(try event(#"{"stream_id":"x"}"#)) == nil)
        #expect(links.apply(try event(#"{"room":1,"stream_id":"x"}"#)) == nil)
        #expect(links.apply(try event(#"{"room":"","stream_id":"x"}"#)) == nil)
        #expect(links.link(roomChat: "1") == nil)
    }
}
