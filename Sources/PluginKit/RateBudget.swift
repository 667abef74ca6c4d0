/// How many times each key (a client address, a room) may do something within a sliding window,
/// such as "6 recordings started per address per minute".
///
/// Time comes in as an argument (monotonic nanoseconds), so a test can drive hours of it at once.
/// Memory stays bounded: a key keeps at most `limit` instants, and keys whose instants have all
/// left the window are dropped.
public struct RateBudget: Sendable {
    public let limit: Int
    public let windowNanoseconds: UInt64
    private var taken: [String: [UInt64]] = [:]
    private var lastSweep: UInt64 = 0

    /// `limit` uses per `windowSeconds`; a limit of 0 refuses everything.
    public init(limit: Int, windowSeconds: UInt64 = 60) {
        self.limit = max(0, limit)
        windowNanoseconds = windowSeconds &* 1_000_000_000
    }

    /// Takes one use for `key` at `now` if the window has room; false (and nothing taken) if not.
    public mutating func take(_ key: String, now: UInt64) -> Bool {
        sweep(now: now)
        var uses = live(taken[key] ?? [], now: now)
        guard uses.count < limit else {
            taken[key] = uses
            return false
        }
        uses.append(now)
        taken[key] = uses
        return true
    }

    /// Uses left for `key` at `now`.
    public func remaining(_ key: String, now: UInt64) -> Int {
        limit - live(taken[key] ?? [], now: now).count
    }

    /// Seconds until `key` may take one again (0 when it may now).
    public func secondsUntilAvailable(_ key: String, now: UInt64) -> UInt64 {
        let uses = live(taken[key] ?? [], now: now)
        guard uses.count >= limit, let oldest = uses.first else { return 0 }
        let free = oldest &+ windowNanoseconds
        return free > now ? (free - now + 999_999_999) / 1_000_000_000 : 0
    }

    private func live(_ uses: [UInt64], now: UInt64) -> [UInt64] {
        uses.filter { $0 > now || now - $0 < windowNanoseconds }
    }

    /// Once a window: forget keys with nothing left in it, so addresses seen once do not pile up.
    private mutating func sweep(now: UInt64) {
        guard now >= lastSweep &+ windowNanoseconds else { return }
        lastSweep = now
        taken = taken.compactMapValues { uses in
            let kept = live(uses, now: now)
            return kept.isEmpty ? nil : kept
        }
    }

    /// Keys remembered now (for tests of the sweep).
    public var keyCount: Int { taken.count }
}
