/// The reorder buffer of one RTP stream (one SSRC): puts packets back in sequence order, holds a gap
/// open for a while so that a retransmission can fill it, and says which sequence numbers to NACK.
///
/// Recording does not care about latency, so a gap is given up only when the packet after it has
/// waited `horizonNanos`, or when the buffer would hold more than `capacity` sequence numbers.
/// The start of the stream (and the restart after a discontinuity) is treated as such a gap: the
/// first packet to arrive need not be the first one sent, so nothing is released until it has
/// waited the horizon, and an older packet arriving meanwhile moves the start back.
/// Sequence numbers are extended to 64 bits, so the wrap at 65535 is invisible.
public struct ReorderBuffer: Sendable {
    /// What `insert` did with a packet.
    public enum Insertion: Sendable, Equatable {
        case accepted
        /// The same sequence number is already waiting.
        case duplicate
        /// Older than what was already released (or given up): too late to use.
        case late
        /// A jump of more than `resetDistance` sequence numbers either way: the sender restarted its
        /// numbering. What was waiting is released, and the buffer starts again at this packet,
        /// which comes out with `lossBefore` set.
        case reset
    }

    /// A jump of more sequence numbers than this is a discontinuity, not reordering. At 300 packets/s
    /// it is 10 s of video, far more than any reordering or retransmission delay.
    public static let resetDistance: Int64 = 3000
    /// Times one sequence number is NACKed at most, and the time between two NACKs of it.
    public static let nackAttempts = 3
    public static let nackIntervalNanos: UInt64 = 100_000_000

    public let horizonNanos: UInt64
    public let capacity: Int

    private enum Slot {
        case empty
        /// Known to be missing since `since`; NACKed `asked` times, last at `lastAsked`.
        case missing(since: UInt64, asked: Int, lastAsked: UInt64)
        case packet(ReceivedPacket)
    }

    private var extender = WrapExtender<UInt16>()
    /// A ring indexed by extended sequence number: slots `next...newest` are packets or missing ones.
    private var slots: [Slot]
    private var storedCount = 0
    private var started = false
    /// Whether anything was released or given up since the start or restart: before that, an older
    /// packet moves the start back.
    private var advanced = false
    /// When the first packet since the start or restart arrived.
    private var firstArrival: UInt64 = 0
    /// The first sequence number not yet released or given up.
    private var next: Int64 = 0
    /// The highest sequence number received.
    private var newest: Int64 = 0
    /// Packets already out of the ring (forced by capacity or a reset), for the next `release`.
    private var ready: [(packet: ReceivedPacket, lossBefore: Bool)] = []
    /// Sequence numbers were given up since the last packet released.
    private var lossPending = false

    public init(horizonNanos: UInt64 = 500_000_000, capacity: Int = 1024) {
        self.horizonNanos = horizonNanos
        self.capacity = max(capacity, 2)
        slots = Array(repeating: .empty, count: self.capacity)
    }

    /// Packets waiting in the buffer.
    public var count: Int { storedCount + ready.count }

    private func index(_ sequence: Int64) -> Int {
        let c = Int64(capacity)
        return Int(((sequence % c) + c) % c)
    }

    public mutating func insert(_ p: ReceivedPacket) -> Insertion {
        guard started else {
            started = true
            let s = extender.extend(p.sequenceNumber)
            next = s
            newest = s
            firstArrival = p.arrivalNanos
            store(p, at: s)
            return .accepted
        }
        let candidate = extender.peek(p.sequenceNumber)
        if abs(candidate - newest) > Self.resetDistance {
            advance(to: newest + 1)
            extender = WrapExtender()
            let s = extender.extend(p.sequenceNumber)
            next = s
            newest = s
            lossPending = true
            advanced = false
            firstArrival = p.arrivalNanos
            store(p, at: s)
            return .reset
        }
        let s = extender.extend(p.sequenceNumber)
        if s < next {
            // Before anything left, the first packet to arrive need not be the first one sent.
            guard !advanced, newest - s < Int64(capacity) else { return .late }
            for m in (s + 1)..<next { slots[index(m)] = .missing(since: p.arrivalNanos, asked: 0, lastAsked: 0) }
            next = s
        }
        if s <= newest, case .packet = slots[index(s)] { return .duplicate }
        if s >= next + Int64(capacity) { advance(to: s - Int64(capacity) + 1) }
        if s > newest {
            for m in max(newest + 1, next)..<s { slots[index(m)] = .missing(since: p.arrivalNanos, asked: 0, lastAsked: 0) }
            newest = s
        }
        store(p, at: s)
        return .accepted
    }

    private mutating func store(_ p: ReceivedPacket, at s: Int64) {
        slots[index(s)] = .packet(p)
        storedCount += 1
    }

    /// Moves `next` up to `target`, releasing the packets it passes into `ready` and giving up the
    /// missing ones.
    private mutating func advance(to target: Int64) {
        while next < target {
            let i = index(next)
            if case .packet(let p) = slots[i] {
                ready.append((p, lossPending))
                lossPending = false
                storedCount -= 1
            } else {
                lossPending = true  // missing, or beyond the newest when capacity pushes the start past it
            }
            slots[i] = .empty
            next += 1
            advanced = true
        }
    }

    /// Packets released in sequence order; `lossBefore` is true when one or more sequence numbers
    /// before it were given up. The head gap is given up when the packet after it has waited longer
    /// than `horizonNanos`, or when capacity is reached. Nothing comes out before the first packet
    /// (since the start or a reset) has waited `horizonNanos`, unless capacity forces it.
    public mutating func release(now: UInt64) -> [(packet: ReceivedPacket, lossBefore: Bool)] {
        while advanced || (now > firstArrival && now - firstArrival > horizonNanos) {
            while case .packet = slots[index(next)], next <= newest { advance(to: next + 1) }
            guard storedCount > 0 else { break }
            var after = next + 1
            while true {
                if case .packet = slots[index(after)] { break }
                after += 1
            }
            guard case .packet(let waiting) = slots[index(after)],
                now > waiting.arrivalNanos, now - waiting.arrivalNanos > horizonNanos
            else { break }
            advance(to: after)
        }
        defer { ready.removeAll(keepingCapacity: true) }
        return ready
    }

    /// Sequence numbers to NACK now: the missing ones between what was released and the newest
    /// packet, each asked at most `nackAttempts` times, `nackIntervalNanos` apart, and none that
    /// has been missing for longer than the horizon (it is about to be given up).
    public mutating func nacks(now: UInt64) -> [UInt16] {
        guard started, storedCount > 0 else { return [] }
        var list: [UInt16] = []
        var s = next
        while s < newest {
            let i = index(s)
            if case .missing(let since, let asked, let lastAsked) = slots[i],
                asked < Self.nackAttempts,
                now < since || now - since <= horizonNanos,
                asked == 0 || now < lastAsked || now - lastAsked >= Self.nackIntervalNanos
            {
                list.append(UInt16(truncatingIfNeeded: s))
                slots[i] = .missing(since: since, asked: asked + 1, lastAsked: now)
            }
            s += 1
        }
        return list
    }

    /// Everything still waiting, in order, at the end of the stream: every gap is given up.
    public mutating func drain() -> [(packet: ReceivedPacket, lossBefore: Bool)] {
        if started { advance(to: newest + 1) }
        defer { ready.removeAll(keepingCapacity: true) }
        return ready
    }
}
