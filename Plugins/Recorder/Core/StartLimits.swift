import PluginKit

/// How many recordings clients may start per minute, per client address and per room: each start
/// makes a folder on the server's disk, so a loop of start and stop must not fill it.
/// `max_recordings` bounds how many run at once; these bound how fast folders appear.
public struct StartLimits: Sendable {
    private var perAddress: RateBudget
    private var perRoom: RateBudget

    public init(perAddressPerMinute: Int, perRoomPerMinute: Int) {
        perAddress = RateBudget(limit: perAddressPerMinute, windowSeconds: 60)
        perRoom = RateBudget(limit: perRoomPerMinute, windowSeconds: 60)
    }

    /// 421 when `address` or `room` has started its most recordings in the last minute. Takes
    /// nothing: `started` does, once the recording exists. An unknown address ("") is bounded
    /// per room only.
    public func check(address: String, room: String, now: UInt64) throws(RecorderError) {
        if !address.isEmpty, perAddress.remaining(address, now: now) <= 0 {
            throw RecorderError(.tooManyRecordings, "Too many recordings started from your address (at most \(perAddress.limit) a minute): try again in \(perAddress.secondsUntilAvailable(address, now: now)) s")
        }
        guard perRoom.remaining(room, now: now) > 0 else {
            throw RecorderError(.tooManyRecordings, "Too many recordings of room \(room) started (at most \(perRoom.limit) a minute): try again in \(perRoom.secondsUntilAvailable(room, now: now)) s")
        }
    }

    /// A recording of `room` was started from `address` at `now`.
    public mutating func started(address: String, room: String, now: UInt64) {
        if !address.isEmpty { _ = perAddress.take(address, now: now) }
        _ = perRoom.take(room, now: now)
    }
}
