/// Extends a wrapping RTP counter (16-bit sequence numbers, 32-bit timestamps) to 64 bits, so that
/// ordering and distances stay right across wraps. The first value read is taken as it is; every
/// later one lands on the extended value nearest to the previous one (a signed difference), so a
/// late packet from before a wrap extends below the wrap, not a whole cycle ahead.
public struct WrapExtender<Counter: FixedWidthInteger & UnsignedInteger>: Sendable {
    private var last: Int64?

    public init() {}

    /// The extended value of `value`; the reference moves forward only.
    public mutating func extend(_ value: Counter) -> Int64 {
        guard let last else {
            let first = Int64(value)
            self.last = first
            return first
        }
        let extended = nearest(value, to: last)
        if extended > last { self.last = extended }
        return extended
    }

    /// The extended value of `value` next to the current reference, without moving it.
    public func peek(_ value: Counter) -> Int64 {
        guard let last else { return Int64(value) }
        return nearest(value, to: last)
    }

    private func nearest(_ value: Counter, to last: Int64) -> Int64 {
        let width = Int64(Counter.bitWidth)
        let cycle = Int64(1) << width
        let lastLow = last & (cycle - 1)
        var difference = Int64(value) - lastLow
        // The shortest way round the circle: a difference of more than half a cycle is the other way.
        if difference > cycle / 2 { difference -= cycle } else if difference < -cycle / 2 { difference += cycle }
        // Wrapping: 2^32 packets that each leap half the clock reach 2^63; the value is nonsense
        // by then either way, and callers judge it.
        return last &+ difference
    }
}
