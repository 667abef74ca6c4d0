/// The rooms clients made (not those of the configuration): the address that made each, and since
/// when each has been empty, so that one address cannot hold more than its share of a plugin's
/// rooms and a room nobody uses goes after a grace period. The SFU and the Chat plugin keep one.
///
/// Time comes in as an argument (monotonic nanoseconds): the plugin passes its clock, a test any
/// instants it likes.
public struct RoomShares<ID: Hashable & Sendable>: Sendable {
    /// Rooms one client address may have at once.
    public let maxPerAddress: Int
    /// How long a room stays once it is empty.
    public let emptyGraceNanoseconds: UInt64
    private var rooms: [ID: (address: String, emptySince: UInt64?)] = [:]

    public init(maxPerAddress: Int, emptyRoomSeconds: Int) {
        self.maxPerAddress = maxPerAddress
        emptyGraceNanoseconds = UInt64(max(0, emptyRoomSeconds)) &* 1_000_000_000
    }

    /// Rooms `address` has made that still exist.
    public func count(address: String) -> Int {
        rooms.values.reduce(0) { $0 + ($1.address == address ? 1 : 0) }
    }

    /// Whether `address` may make one more room. An unknown address ("": a request from inside
    /// the process) is not bounded here; the plugin's total still is.
    public func mayCreate(address: String) -> Bool {
        address.isEmpty || count(address: address) < maxPerAddress
    }

    /// A room was made by request at `now`; it is empty until someone joins.
    public mutating func created(_ id: ID, address: String, now: UInt64) {
        rooms[id] = (address, now)
    }

    /// The room is gone (destroyed by request, when empty, or expired).
    public mutating func removed(_ id: ID) {
        rooms[id] = nil
    }

    public func contains(_ id: ID) -> Bool { rooms[id] != nil }

    /// Rooms made by request that still exist.
    public var count: Int { rooms.count }

    /// Notes which rooms are empty at `now` and returns those empty for the whole grace period,
    /// forgetting them (the caller destroys them). A room someone is in starts afresh.
    public mutating func expired(now: UInt64, isEmpty: (ID) -> Bool) -> [ID] {
        var out: [ID] = []
        for (id, entry) in rooms {
            guard isEmpty(id) else {
                if entry.emptySince != nil { rooms[id]?.emptySince = nil }
                continue
            }
            let since = entry.emptySince ?? now
            if entry.emptySince == nil { rooms[id]?.emptySince = now }
            if now >= since, now - since >= emptyGraceNanoseconds { out.append(id) }
        }
        for id in out { rooms[id] = nil }
        return out
    }
}
