/// What the receiver actually got, in bits per second: the bytes transport feedback reported as
/// received, over their arrival times, across the last half second or more.
///
/// Kept per feedback (not per packet) in a fixed ring: feedback comes every 50–250 ms, and 32 of
/// them cover several seconds.
public struct AckedBitrate: Sendable {
    private struct Batch {
        var firstArrival: Int64
        var lastArrival: Int64
        var bytes: Int
    }

    static let windowMicroseconds: Int64 = 500_000
    static let capacity = 32
    private var batches: [Batch] = []
    private var next = 0

    public init() { batches.reserveCapacity(Self.capacity) }

    /// One feedback's received packets: the first and last arrival (receiver µs) and their bytes.
    public mutating func add(firstArrival: Int64, lastArrival: Int64, bytes: Int) {
        let batch = Batch(firstArrival: firstArrival, lastArrival: max(firstArrival, lastArrival), bytes: max(bytes, 0))
        if batches.count < Self.capacity {
            batches.append(batch)
        } else {
            batches[next] = batch
        }
        next = (next + 1) % Self.capacity
    }

    /// Bits per second over the newest feedbacks spanning at least half a second; nil before there
    /// is that much (or when arrivals make no sense).
    public var bitsPerSecond: Double? {
        guard !batches.isEmpty else { return nil }
        var newest = (next + batches.count - 1) % batches.count
        let end = batches[newest].lastArrival
        var bytes = 0
        var start = end
        for _ in 0..<batches.count {
            let b = batches[newest]
            // Out of order or from a receiver clock that jumped: stop at what is consistent.
            guard b.lastArrival <= end, end - b.firstArrival <= 5_000_000 else { break }
            bytes += b.bytes
            start = b.firstArrival
            if end - start >= Self.windowMicroseconds { break }
            newest = (newest + batches.count - 1) % batches.count
        }
        guard end - start >= Self.windowMicroseconds / 2 else { return nil }
        return Double(bytes) * 8 / (Double(end - start) / 1e6)
    }

    public mutating func reset() {
        batches.removeAll(keepingCapacity: true)
        next = 0
    }
}
