public import PluginKit

/// The SFU's share of rooms per client address and their expiry when empty (PluginKit's
/// RoomShares), with VideoRoom's answer for an address at its share.
public struct RequestedRooms: Sendable {
    private var shares: RoomShares<SFUID>

    public init(maxPerAddress: Int, emptyRoomSeconds: Int) {
        shares = RoomShares(maxPerAddress: maxPerAddress, emptyRoomSeconds: emptyRoomSeconds)
    }

    public var maxPerAddress: Int { shares.maxPerAddress }
    public var emptyGraceNanoseconds: UInt64 { shares.emptyGraceNanoseconds }

    /// Rooms `address` has made that still exist.
    public func count(address: String) -> Int { shares.count(address: address) }

    /// 441 when `address` already has its most rooms. An unknown address ("": a request from
    /// inside the process) is not bounded here; `max_rooms` still is.
    public func checkCanCreate(address: String) throws(SFUError) {
        guard shares.mayCreate(address: address) else {
            throw SFUError(.tooManyRooms, "Too many rooms from your address (max_rooms_per_address is \(maxPerAddress)): destroy one or wait for an empty one to expire")
        }
    }

    public mutating func created(_ id: SFUID, address: String, now: UInt64) { shares.created(id, address: address, now: now) }
    public mutating func removed(_ id: SFUID) { shares.removed(id) }
    public func contains(_ id: SFUID) -> Bool { shares.contains(id) }

    /// Rooms empty for the whole grace period at `now`, forgotten here (the caller destroys them).
    public mutating func expired(now: UInt64, isEmpty: (SFUID) -> Bool) -> [SFUID] {
        shares.expired(now: now, isEmpty: isEmpty)
    }
}
