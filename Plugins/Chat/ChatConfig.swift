import AtriumJSON
import PluginKit

/// The Chat plugin's `config` object (docs/api/chat.md lists every key).
struct ChatConfig {
    struct RoomConfig {
        var id: String
        var description: String
        var pin: String?
        var history: Int?
    }

    var rooms: [RoomConfig] = []
    var history = 50
    var maxMessageBytes = 4096
    var messagesPerSecond = 5.0
    var burst = 10.0
    var maxParticipants = 100
    var maxRooms = 1000
    var createOnJoin = true
    /// Rooms one client address may have made and still have (by `create`, or by a join that made one).
    var maxRoomsPerAddress = 10
    /// A room made by `create` goes once it has been empty this long.
    var emptyRoomSeconds = 300

    init(_ o: JSONObject) throws(PluginFailure) {
        let allowed: Set<String> = ["rooms", "history", "max_message_bytes", "messages_per_second", "burst", "max_participants", "max_rooms", "create_on_join",
                                    "max_rooms_per_address", "empty_room_seconds"]
        for key in o.keys where !allowed.contains(key) {
            throw PluginFailure("config.\(key): unknown key; expected one of: \(allowed.sorted().joined(separator: ", "))")
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws(PluginFailure) -> Int? {
            guard let v = o[key] else { return nil }
            guard let i = v.intValue, case .int = v, range.contains(Int(i)) else {
                throw PluginFailure("config.\(key): expected an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            return Int(i)
        }
        func number(_ key: String, _ range: ClosedRange<Double>) throws(PluginFailure) -> Double? {
            guard let v = o[key] else { return nil }
            guard let d = v.doubleValue, range.contains(d) else {
                throw PluginFailure("config.\(key): expected a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return d
        }
        history = try int("history", 0...10_000) ?? history
        maxMessageBytes = try int("max_message_bytes", 16...(1 << 20)) ?? maxMessageBytes
        messagesPerSecond = try number("messages_per_second", 0.01...10_000) ?? messagesPerSecond
        burst = try number("burst", 1...100_000) ?? burst
        maxParticipants = try int("max_participants", 1...100_000) ?? maxParticipants
        maxRooms = try int("max_rooms", 1...1_000_000) ?? maxRooms
        maxRoomsPerAddress = try int("max_rooms_per_address", 1...1_000_000) ?? maxRoomsPerAddress
        emptyRoomSeconds = try int("empty_room_seconds", 1...2_592_000) ?? emptyRoomSeconds
        if let v = o["create_on_join"] {
            guard let b = v.boolValue else { throw PluginFailure("config.create_on_join: expected true or false") }
            createOnJoin = b
        }
        if let v = o["rooms"] {
            guard let list = v.arrayValue else { throw PluginFailure("config.rooms: expected an array of rooms") }
            var seen = Set<String>()
            for (i, entry) in list.enumerated() {
                let path = "config.rooms[\(i)]"
                guard let r = entry.objectValue else { throw PluginFailure("\(path): expected an object") }
                for key in r.keys where !["id", "description", "pin", "history"].contains(key) {
                    throw PluginFailure("\(path).\(key): unknown key; expected one of: description, history, id, pin")
                }
                guard let id = r["id"].flatMap(roomID), !id.isEmpty else {
                    throw PluginFailure("\(path).id: expected a non-empty string or an integer")
                }
                guard seen.insert(id).inserted else { throw PluginFailure("\(path).id: room \"\(id)\" is defined twice") }
                var description = id
                if let d = r["description"] {
                    guard let s = d.stringValue else { throw PluginFailure("\(path).description: expected a string") }
                    description = s
                }
                var pin: String?
                if let p = r["pin"], !p.isNull {
                    guard let s = p.stringValue, !s.isEmpty else { throw PluginFailure("\(path).pin: expected a non-empty string or null") }
                    pin = s
                }
                var history: Int?
                if let h = r["history"] {
                    guard case .int(let n) = h, n >= 0, n <= 10_000 else { throw PluginFailure("\(path).history: expected an integer from 0 to 10000") }
                    history = Int(n)
                }
                rooms.append(RoomConfig(id: id, description: description, pin: pin, history: history))
            }
        }
    }
}

/// Room ids are strings; integers (as the Janus demos send them) are taken as their decimal text.
func roomID(_ value: JSON) -> String? {
    switch value {
    case .string(let s): return s.utf8.count <= 256 ? s : nil
    case .int(let i): return String(i)
    default: return nil
    }
}
