/// Gaps in what one incoming stream (one SSRC) delivers, and when to ask for them again (RFC 4585
/// generic NACK): the receiving host's upstream loss recovery. An SFU that asks the publisher
/// itself recovers each loss once, for every subscriber, and sooner than their own NACKs could
/// (those reach only the SFU, which does not have the packet).
///
/// A missing packet is asked for once it has been missing `reorderNanos` (a packet merely
/// reordered arrives within that), then again every `retryNanos`, at most `maximumRequests`
/// times, and given up after `maximumAgeNanos` (a receiver's jitter buffer has moved on). At most
/// `capacity` packets are tracked: a gap wider than that is a restart of the stream, not a loss.
/// Not thread-safe: one media loop uses it.
public struct MissingPackets: Sendable {
    public static let capacity = 256
    public static let reorderNanos: UInt64 = 15_000_000
    public static let retryNanos: UInt64 = 60_000_000
    public static let maximumRequests = 4
    public static let maximumAgeNanos: UInt64 = 1_000_000_000

    private struct Missing {
        var sequence: Int64
        var since: UInt64
        var lastRequestAt: UInt64 = 0
        var requests = 0
    }

    private var highest: Int64?
    private var missing: [Missing] = []
    public private(set) var requested = 0
    public private(set) var recovered = 0

    public init() {}

    public var isEmpty: Bool { missing.isEmpty }

    /// A packet with `sequence` arrived. Returns whether packets are missing now.
    @discardableResult
    public mutating func received(_ sequence: UInt16, now: UInt64) -> Bool {
        guard let top = highest else {
            highest = Int64(sequence)
            return false
        }
        let unwrapped = top + Int64(Int16(bitPattern: sequence &- UInt16(truncatingIfNeeded: top)))
        if unwrapped <= top {
            if let i = missing.firstIndex(where: { $0.sequence == unwrapped }) {
                if missing[i].requests > 0 { recovered += 1 }
                missing.remove(at: i)
            }
            return !missing.isEmpty
        }
        let gap = unwrapped - top - 1
        if gap > Int64(Self.capacity) {
            missing.removeAll(keepingCapacity: true)
        } else if gap > 0 {
            let room = Self.capacity - missing.count
            if room < Int(gap) { missing.removeFirst(min(missing.count, Int(gap) - room)) }
            for s in (top + 1)..<unwrapped { missing.append(Missing(sequence: s, since: now)) }
        }
        highest = unwrapped
        return !missing.isEmpty
    }

    /// The sequence numbers to ask for now, oldest first; forgets those asked for too often or too old.
    public mutating func due(now: UInt64) -> [UInt16] {
        missing.removeAll { $0.requests >= Self.maximumRequests || now - min(now, $0.since) > Self.maximumAgeNanos }
        var out: [UInt16] = []
        for i in missing.indices {
            let m = missing[i]
            let ready = m.requests == 0
                ? now - min(now, m.since) >= Self.reorderNanos
                : now - min(now, m.lastRequestAt) >= Self.retryNanos
            guard ready else { continue }
            missing[i].requests += 1
            missing[i].lastRequestAt = now
            out.append(UInt16(truncatingIfNeeded: m.sequence))
        }
        requested += out.count
        return out
    }
}
