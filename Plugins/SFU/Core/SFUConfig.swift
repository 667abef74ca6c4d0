public import AtriumJSON

/// The SFU plugin's `config` object (docs/api/sfu.md lists every key).
public struct SFUConfig: Sendable {
    /// Required in `create` (and to list private rooms) when set.
    public var adminKey: String?
    /// Room and participant ids are strings instead of numbers.
    public var stringIDs = false
    /// Rooms that exist from the start, in order.
    public var rooms: [(id: SFUID, settings: RoomSettings)] = []
    /// Most rooms at once (configured and created).
    public var maxRooms = 1_000
    /// Most subscriber streams one subscriber handle may carry.
    public var maxStreamsPerSubscriber = 64
    /// Rooms one client address may have made by request at once (rooms of the configuration
    /// and permanent ones do not count).
    public var maxRoomsPerAddress = 10
    /// How long a room made by request stays once nobody is in it (rooms of the configuration and
    /// permanent ones stay).
    public var emptyRoomSeconds = 300
    /// Byte bounds on the client strings that fan out to a room (`display`, `metadata`,
    /// `description`).
    public var textBounds = ClientTextBounds()

    public init() {}

    static let keys: Set<String> = [
        "admin_key", "string_ids", "rooms", "max_rooms", "max_streams_per_subscriber", "max_rooms_per_address", "empty_room_seconds",
        "max_display_bytes", "max_metadata_bytes", "max_description_bytes",
    ]

    /// Reads a config object; the error says which key is wrong and why.
    public init(_ object: JSONObject) throws(SFUError) {
        self.init()
        for key in object.keys where !Self.keys.contains(key) {
            throw SFUError(.invalidElement, "unknown key \"\(key)\" in the SFU config (known: \(Self.keys.sorted().joined(separator: ", ")))")
        }
        let f = Fields(object)
        adminKey = try f.string("admin_key")
        stringIDs = try f.bool("string_ids") ?? false
        if let n = try f.integer("max_rooms", max: 1_000_000) { maxRooms = Int(n) }
        if let n = try f.integer("max_streams_per_subscriber", max: 1_000) { maxStreamsPerSubscriber = max(1, Int(n)) }
        maxRoomsPerAddress = try Self.integer(f, "max_rooms_per_address", 1...1_000_000) ?? maxRoomsPerAddress
        emptyRoomSeconds = try Self.integer(f, "empty_room_seconds", 1...2_592_000) ?? emptyRoomSeconds
        textBounds.displayBytes = try Self.integer(f, "max_display_bytes", 1...65_536) ?? textBounds.displayBytes
        textBounds.metadataBytes = try Self.integer(f, "max_metadata_bytes", 2...1_048_576) ?? textBounds.metadataBytes
        textBounds.descriptionBytes = try Self.integer(f, "max_description_bytes", 1...65_536) ?? textBounds.descriptionBytes
        for (i, item) in (try f.array("rooms") ?? []).enumerated() {
            guard let room = item.objectValue else { throw SFUError(.invalidElement, "rooms[\(i)] should be an object") }
            let fields = Fields(room)
            do throws(SFUError) {
                guard let id = try SFUID.read(fields, "room", stringIDs: stringIDs) else { throw SFUError.missing("room") }
                guard !rooms.contains(where: { $0.id == id }) else { throw SFUError(.roomExists, "room \(id) is defined twice") }
                rooms.append((id, try RoomSettings(fields)))
            } catch {
                throw SFUError(error.code, "rooms[\(i)]: \(error.message)")
            }
        }
        if let admin = adminKey, admin.isEmpty { throw SFUError(.invalidElement, "admin_key should be null or a non-empty string") }
        guard rooms.count <= maxRooms else { throw SFUError(.invalidElement, "more rooms (\(rooms.count)) than max_rooms (\(maxRooms))") }
    }

    /// An integer key within `range`, or 430 naming the key and the range.
    static func integer(_ f: Fields, _ key: String, _ range: ClosedRange<Int>) throws(SFUError) -> Int? {
        guard f.has(key) else { return nil }
        guard case .int(let i)? = f.object[key], let n = Int(exactly: i), range.contains(n) else {
            throw SFUError(.invalidElement, "\(key) should be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }
}
