/// The rooms clients made with `create` (not those of the configuration, nor permanent ones): the
/// address that made each, and since when each has been empty, so that one address cannot hold
/// more than its share of `max_rooms` and a room nobody uses goes after a grace period.
///
/// Time comes in as an argument (monotonic nanoseconds): the plugin passes its clock, a test any
/// instants it likes.
public struct RequestedRooms: Sendable {
    /// Rooms one client address may have at once.
    public let maxPerAddress: Int
    /// How long a room stays once it is empty.
    public let emptyGraceNanoseconds: UInt64
    private var rooms: [SFUID: (address: String, emptySince: UInt64?)] = [:]

    public init(maxPerAddress: Int, emptyRoomSeconds: Int) {
        self.maxPerAddress = maxPerAddress
        emptyGraceNanoseconds = UInt64(max(0, emptyRoomSeconds)) &* 1_000_000_000
    }

    /// Rooms `address` has made that still exist.
    public func count(address: String) -> Int {
        rooms.values.reduce(0) { $0 + ($1.address == address ? 1 : 0) }
    }

    /// 441 when `address` already has its most rooms. An unknown address ("": a request from
    /// inside the process) is not bounded here; `max_rooms` still is.
    public func checkCanCreate(address: String) throws(SFUError) {
        guard !address.isEmpty else { return }
        guard count(address: address) < maxPerAddress else {
            throw SFUError(.tooManyRooms, "Too many rooms from your address (max_rooms_per_address is \(maxPerAddress)): destroy one or wait for an empty one to expire")
        }
    }

    /// A room was made by request at `now`; it is empty until someone joins.
    public mutating func created(_ id: SFUID, address: String, now: UInt64) {
        rooms[id] = (address, now)
    }

    /// The room is gone (destroyed by request, when empty, or expired).
    public mutating func removed(_ id: SFUID) {
        rooms[id] = nil
    }

    public func contains(_ id: SFUID) -> Bool { rooms[id] != nil }

    /// Notes which rooms are empty at `now` and returns those empty for the whole grace period,
    /// forgetting them (the caller destroys them). A room someone is in starts afresh.
    public mutating func expired(now: UInt64, isEmpty: (SFUID) -> Bool) -> [SFUID] {
        var out: [SFUID] = []
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
