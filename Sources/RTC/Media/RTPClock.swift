/// RTP media clocks: which rates a session description may declare, and time in their ticks.
public enum RTPClock {
    /// The clock rates accepted from a session description. RTP media uses 8 kHz to 48 kHz for
    /// audio (up to 192 kHz for high-rate linear audio) and 90 kHz for video; anything else is
    /// refused where it is parsed, so no later arithmetic meets a rate of 0 or 4294967295.
    public static let acceptedRates: ClosedRange<UInt32> = 1_000...192_000

    /// The ticks of a `clockRate` clock in `nanoseconds`, modulo 2^32 as RTP timestamps wrap.
    /// Whole seconds and the rest are scaled apart, so no input overflows (the product of the
    /// remainder, below 10^9, and a 32-bit rate stays below 2^63).
    @inlinable
    public static func ticks(nanoseconds: UInt64, clockRate: UInt32) -> UInt32 {
        let rate = UInt64(clockRate)
        let whole = (nanoseconds / 1_000_000_000) &* rate
        let part = (nanoseconds % 1_000_000_000) &* rate / 1_000_000_000
        return UInt32(truncatingIfNeeded: whole &+ part)
    }
}
