import AtriumJSON
import SFUCore
import Testing

@Suite struct RequestedRoomsTests {
    let second: UInt64 = 1_000_000_000

    @Test func oneAddressGetsItsShareAndAnotherStillCreates() throws {
        var rooms = RequestedRooms(maxPerAddress: 3, emptyRoomSeconds: 300)
        for n in 1...3 {
            try rooms.checkCanCreate(address: "203.0.113.7")
            rooms.created(.number(UInt64(n)), address: "203.0.113.7", now: 0)
        }
        #expect { try rooms.checkCanCreate(address: "203.0.113.7") } throws: { ($0 as? SFUError)?.code == .tooManyRooms }
        try rooms.checkCanCreate(address: "2001:db8:1:2::/64")
        // A room that goes frees its place.
        rooms.removed(.number(2))
        try rooms.checkCanCreate(address: "203.0.113.7")
        #expect(rooms.count(address: "203.0.113.7") == 2)
    }

    @Test func anUnknownAddressIsNotBoundedHere() throws {
        var rooms = RequestedRooms(maxPerAddress: 1, emptyRoomSeconds: 300)
        rooms.created(.number(1), address: "", now: 0)
        try rooms.checkCanCreate(address: "")
    }

    @Test func anEmptyRoomGoesAfterTheGracePeriodAndNotBefore() {
        var rooms = RequestedRooms(maxPerAddress: 10, emptyRoomSeconds: 300)
        let t0: UInt64 = 1_000 * second
        rooms.created(.number(1), address: "a", now: t0)
        func expire(at now: UInt64, empty: Bool) -> [SFUID] { rooms.expired(now: now, isEmpty: { _ in empty }) }
        #expect(expire(at: t0 + 299 * second, empty: true).isEmpty)
        #expect(expire(at: t0 + 300 * second, empty: true) == [.number(1)])
        // Forgotten once expired: the caller destroyed it.
        #expect(!rooms.contains(.number(1)) && rooms.count(address: "a") == 0)
    }

    @Test func someoneInTheRoomRestartsTheGracePeriod() {
        var rooms = RequestedRooms(maxPerAddress: 10, emptyRoomSeconds: 300)
        rooms.created(.number(1), address: "a", now: 0)
        func expire(at now: UInt64, empty: Bool) -> [SFUID] { rooms.expired(now: now, isEmpty: { _ in empty }) }
        // Someone joined before 200 s; the room is empty again from 400 s, and stays until 700 s.
        #expect(expire(at: 200 * second, empty: false).isEmpty)
        #expect(expire(at: 400 * second, empty: true).isEmpty)
        #expect(expire(at: 699 * second, empty: true).isEmpty)
        #expect(expire(at: 700 * second, empty: true) == [.number(1)])
    }

    @Test func hoursOfTicksKeepAnOccupiedRoom() {
        var rooms = RequestedRooms(maxPerAddress: 10, emptyRoomSeconds: 5)
        rooms.created(.number(1), address: "a", now: 0)
        func expire(at now: UInt64, empty: Bool) -> [SFUID] { rooms.expired(now: now, isEmpty: { _ in empty }) }
        for t in stride(from: UInt64(1), through: 36_000, by: 1) {
            #expect(expire(at: t * second, empty: false).isEmpty)
        }
        #expect(rooms.contains(.number(1)))
    }
}

@Suite struct ClientTextBoundsTests {
    @Test func displayMetadataAndDescriptionAreBoundedInBytes() throws {
        let bounds = ClientTextBounds()
        try bounds.display(String(repeating: "a", count: 256))
        // 86 three-byte characters are 258 bytes, though only 86 characters.
        #expect { try bounds.display(String(repeating: "€", count: 86)) } throws: {
            ($0 as? SFUError)?.code == .invalidElement && ($0 as? SFUError)?.message.contains("display is 258 bytes, at most 256") == true
        }
        try bounds.metadata(["audio": true, "video": false])
        let big: JSON = ["blob": .string(String(repeating: "x", count: 4_100))]
        #expect { try bounds.metadata(big) } throws: { ($0 as? SFUError)?.message.contains("metadata is") == true }
        try bounds.metadata(nil)
        try bounds.description(String(repeating: "d", count: 256))
        #expect { try bounds.description(String(repeating: "d", count: 257), key: "new_description") } throws: {
            ($0 as? SFUError)?.message.contains("new_description is 257 bytes") == true
        }
    }

    @Test func theConfigSetsTheBoundsAndRefusesNonsense() throws {
        func parse(_ text: String) throws -> SFUConfig {
            guard let o = try JSON.parse(text).objectValue else { throw SFUError(.invalidJSON, "bad test JSON") }
            return try SFUConfig(o)
        }
        let defaults = try parse("{}")
        #expect(defaults.maxRoomsPerAddress == 10 && defaults.emptyRoomSeconds == 300)
        #expect(defaults.textBounds == ClientTextBounds())
        let c = try parse(#"{"max_rooms_per_address":2,"empty_room_seconds":3,"max_display_bytes":16,"max_metadata_bytes":64,"max_description_bytes":32}"#)
        #expect(c.maxRoomsPerAddress == 2 && c.emptyRoomSeconds == 3)
        #expect(c.textBounds.displayBytes == 16 && c.textBounds.metadataBytes == 64 && c.textBounds.descriptionBytes == 32)
        #expect { try parse(#"{"max_rooms_per_address":0}"#) } throws: {
            ($0 as? SFUError)?.message == "max_rooms_per_address should be an integer from 1 to 1000000"
        }
        #expect { try parse(#"{"empty_room_seconds":"soon"}"#) } throws: { ($0 as? SFUError)?.message.contains("empty_room_seconds") == true }
        #expect { try parse(#"{"admin_key":""}"#) } throws: { ($0 as? SFUError)?.message.contains("admin_key") == true }
    }
}

/// A room's ACL is kept for its life and echoed in every `allowed` answer: bounded in count and size.
@Suite struct AllowedTokenBoundsTests {
    static func tokens(_ n: Int, bytes: Int = 8) -> [JSON] {
        (0..<n).map { i in
            let digits = String(i)
            return .string(String(repeating: "t", count: max(0, bytes - digits.count)) + digits)
        }
    }

    @Test func createAcceptsUpToTheBound() throws {
        let s = try RoomSettings(Fields(["allowed": .array(Self.tokens(RoomSettings.maximumAllowedTokens))]))
        #expect(s.allowed?.count == 1_000)
    }

    @Test func createRefusesMoreTokensOrLongerOnes() {
        #expect(throws: SFUError.self) { try RoomSettings(Fields(["allowed": .array(Self.tokens(1_001))])) }
        #expect(throws: SFUError.self) { try RoomSettings(Fields(["allowed": .array(Self.tokens(1, bytes: 257))])) }
    }

    @Test func addingCountsWhatTheRoomHas() {
        #expect(throws: Never.self) { try RoomSettings.checkAllowed(["a"], adding: 999) }
        #expect(throws: SFUError.self) { try RoomSettings.checkAllowed(["a", "b"], adding: 999) }
    }
}
