/// Finding headroom the sender is not using: short clusters of extra packets at a higher rate,
/// whose arrival spacing in transport feedback tells whether the path carries that rate.
///
/// A sender that sends less than the path could carry (a subscriber on a low simulcast layer after
/// congestion) never learns that the path recovered from its own media, because the estimate may
/// only grow to 1.5 × what arrives. A cluster sends `rate` for `duration` (media sent meanwhile
/// counts toward it, the rest is filler); its result is min(send rate, receive rate) over its
/// packets, and raises the estimate when higher. Clusters follow each other a second apart while
/// they succeed and the estimate is under what the sender wants, and back off (2 s, doubling to
/// 6 s) while they fail, so a capped link costs one short burst every few seconds.
public struct Prober: Sendable {
    public struct Cluster: Sendable, Equatable {
        public var id: Int
        public var rate: Double
        public var startedAt: UInt64
        public var bytesSent = 0
        public var packetsSent = 0

        static let durationNanos: UInt64 = 80_000_000
        static let minimumPackets = 5

        /// Bytes the cluster has to have sent by `now`, to keep to its rate.
        func bytesDue(now: UInt64) -> Int {
            let elapsed = min(nanoseconds(from: startedAt, to: now), Self.durationNanos)
            return Int(rate * Double(elapsed) / 8e9)
        }

        var totalBytes: Int { Int(rate * Double(Self.durationNanos) / 8e9) }
        var isComplete: Bool { bytesSent >= totalBytes && packetsSent >= Self.minimumPackets }
    }

    /// What feedback said about one cluster's packets.
    struct Outcome {
        var cluster: Cluster
        var finishedAt: UInt64 = 0
        var reported = 0
        var received = 0
        var firstSent: UInt64 = .max
        var lastSent: UInt64 = 0
        var lastSentSize = 0
        var sentBytes = 0
        var firstArrival: Int64 = .max
        var firstArrivalSize = 0
        var lastArrival: Int64 = .min
        var receivedBytes = 0
    }

    public private(set) var active: Cluster?
    /// Clusters started so far.
    public private(set) var clusters = 0
    private var awaiting: Outcome?
    private var nextID = 1
    private var nextProbeAt: UInt64 = 0
    private var backoff: UInt64 = 2_000_000_000

    static let successIntervalNanos: UInt64 = 1_000_000_000
    static let maximumBackoffNanos: UInt64 = 6_000_000_000
    static let resultTimeoutNanos: UInt64 = 1_000_000_000

    public init() {}

    /// Starts a cluster when one is due: the estimate is under `desired`, nothing is being probed.
    /// The rate doubles the estimate (at least +200 kbit/s), and goes a quarter past `desired` at most.
    public mutating func startIfDue(estimate: Double, desired: Double, now: UInt64) -> Cluster? {
        guard active == nil, awaiting == nil, desired > estimate * 1.05, now >= nextProbeAt else { return nil }
        let rate = min(max(estimate * 2, estimate + 200_000), desired * 1.25)
        let cluster = Cluster(id: nextID, rate: rate, startedAt: now)
        nextID = nextID == Int(UInt16.max) ? 1 : nextID + 1  // ids name clusters in the history's 16-bit field
        clusters += 1
        active = cluster
        awaiting = Outcome(cluster: cluster)
        return cluster
    }

    /// A packet of `size` bytes went out during the active cluster.
    public mutating func sent(size: Int, now: UInt64) {
        guard var cluster = active else { return }
        cluster.bytesSent += size
        cluster.packetsSent += 1
        if cluster.isComplete || nanoseconds(from: cluster.startedAt, to: now) > 4 * Cluster.durationNanos {
            active = nil
            awaiting?.cluster = cluster
            awaiting?.finishedAt = now
        } else {
            active = cluster
        }
    }

    /// Gives up the running cluster (nothing left to send it with): no result, and the next one later.
    public mutating func abandon(now: UInt64) {
        guard active != nil else { return }
        active = nil
        awaiting = nil
        nextProbeAt = now + Self.maximumBackoffNanos
    }

    /// Filler bytes the active cluster needs now to keep to its rate (0: none now).
    public func fillerDue(now: UInt64) -> Int {
        guard let cluster = active else { return 0 }
        return max(cluster.bytesDue(now: now) - cluster.bytesSent, cluster.packetsSent == 0 ? 1 : 0)
    }

    /// When the next filler packet is due (one every few ms while a cluster runs); nil when none runs.
    public func nextFillerAt(packetSize: Int) -> UInt64? {
        guard let cluster = active, cluster.rate > 0 else { return nil }
        let bytes = Double(cluster.bytesSent + packetSize)
        return cluster.startedAt + UInt64(min(bytes * 8e9 / cluster.rate, 1e9))
    }

    /// One packet of a cluster reported by feedback (arrival nil: lost).
    mutating func reported(_ entry: SendHistory.Entry, arrival: Int64?) {
        guard var outcome = awaiting, outcome.cluster.id == entry.cluster else { return }
        outcome.reported += 1
        outcome.sentBytes += entry.size
        if entry.sentAt < outcome.firstSent { outcome.firstSent = entry.sentAt }
        if entry.sentAt >= outcome.lastSent {
            outcome.lastSent = entry.sentAt
            outcome.lastSentSize = entry.size
        }
        if let arrival {
            outcome.received += 1
            outcome.receivedBytes += entry.size
            if arrival < outcome.firstArrival {
                outcome.firstArrival = arrival
                outcome.firstArrivalSize = entry.size
            }
            outcome.lastArrival = max(outcome.lastArrival, arrival)
        }
        awaiting = outcome
    }

    /// The finished cluster's result, once feedback covers it: the rate the path carried, or 0 for
    /// a cluster that failed (lost a fifth of its packets, or arrived slower than the estimate).
    /// Schedules the next cluster either way.
    mutating func result(estimate: Double, now: UInt64) -> Double? {
        guard let outcome = awaiting, active == nil else { return nil }
        let sent = outcome.cluster.packetsSent
        let timedOut = nanoseconds(from: outcome.finishedAt, to: now) > Self.resultTimeoutNanos
        guard outcome.reported >= sent || timedOut else { return nil }
        awaiting = nil
        var rate = 0.0
        if outcome.received >= Cluster.minimumPackets, Double(outcome.received) >= 0.8 * Double(sent),
            outcome.lastSent > outcome.firstSent, outcome.lastArrival > outcome.firstArrival
        {
            let sendRate = Double(outcome.sentBytes - outcome.lastSentSize) * 8e9 / Double(outcome.lastSent - outcome.firstSent)
            let receiveRate = Double(outcome.receivedBytes - outcome.firstArrivalSize) * 8e6 / Double(outcome.lastArrival - outcome.firstArrival)
            rate = min(sendRate, receiveRate)
        }
        if rate > estimate * 1.1 {
            backoff = 2_000_000_000
            nextProbeAt = now + Self.successIntervalNanos
            return rate
        }
        nextProbeAt = now + backoff
        backoff = min(backoff * 2, Self.maximumBackoffNanos)
        return 0
    }
}
