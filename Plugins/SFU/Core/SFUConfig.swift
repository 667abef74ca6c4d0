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

    public init() {}

    static let keys: Set<String> = ["admin_key", "string_ids", "rooms", "max_rooms", "max_streams_per_subscriber"]

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
        guard rooms.count <= maxRooms else { throw SFUError(.invalidElement, "more rooms (\(rooms.count)) than max_rooms (\(maxRooms))") }
    }
}
