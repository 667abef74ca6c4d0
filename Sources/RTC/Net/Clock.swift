#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds: the one clock the media path, its plugins and the load
/// generator share (DispatchTime's uptime reads the same clock on Linux, with conversions).
public func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

/// The time from `then` to `now`, or 0 when `then` is later: two readings of the monotonic clock
/// taken on different threads (or one stored after the other was read) may be out of order, and a
/// plain subtraction would trap.
@inlinable
public func nanoseconds(from then: UInt64, to now: UInt64) -> UInt64 {
    now > then ? now &- then : 0
}

extension SenderReport {
    /// The wall clock now as a 64-bit NTP timestamp (seconds since 1900, 32-bit fraction).
    public static func ntpNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (UInt64(ts.tv_sec) + 2_208_988_800) << 32 | (UInt64(ts.tv_nsec) << 32) / 1_000_000_000
    }
}
