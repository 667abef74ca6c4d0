/// How much this side may send one PeerConnection, from the transport feedback its peer returns
/// (send-side estimation in the manner of Google Congestion Control): the lower of the delay-based
/// rate (`DelayTrend` and `RateControl`) and the loss-based ceiling (`LossControl`), raised by
/// probes (`Prober`) when the sender wants more than it has.
///
/// Every packet sent with a transport-wide sequence number goes through `sent`; every feedback
/// through `feedback`, which returns the estimate when it moved enough to tell the plugin (5 %, or
/// the first one). Not thread-safe: the PeerConnection's media loop owns it.
public final class BandwidthEstimator {
    public let history = SendHistory()
    private var trend = DelayTrend()
    private var rate: RateControl
    private var loss = LossControl()
    private var acked = AckedBitrate()
    public private(set) var prober = Prober()
    /// What the plugin would send if the path allowed, bits/s; 0 stops probing.
    public var desired: UInt64 = 0
    public private(set) var feedbackCount = 0
    private var reported: UInt64 = 0
    /// Packet statuses read in the current second: a peer's feedback is read only while it stays
    /// within `statusesPerSecond`. One feedback packet of a few bytes can claim 65535 statuses, and
    /// a peer sending thousands of them would otherwise keep the media loop walking the history.
    private var statusesThisSecond = 0
    private var secondStart: UInt64 = 0
    public static let statusesPerSecond = 40_000
    public private(set) var feedbackRefused = 0

    public init(initial: Double = 1_000_000) {
        rate = RateControl(initial: initial)
    }

    /// The estimate, bits/s.
    public var estimate: UInt64 {
        Self.bits(min(rate.bitsPerSecond, loss.ceiling ?? .infinity))
    }

    /// What arrived lately, bits/s (nil before half a second of feedback).
    public var ackedBitsPerSecond: UInt64? { acked.bitsPerSecond.map(Self.bits) }
    public var delayUsage: DelayTrend.Usage { trend.usage }
    public var lossFraction: Double { loss.lastLossFraction }

    /// A packet of `size` bytes went out under transport-wide `sequence`.
    public func sent(sequence: UInt16, size: Int, now: UInt64) {
        history.record(sequence: sequence, size: size, cluster: prober.active?.id ?? 0, now: now)
        prober.sent(size: size, now: now)
    }

    /// Starts a probe cluster when one is due; the caller then sends filler (`prober.fillerDue`).
    public func startProbeIfDue(now: UInt64) -> Bool {
        guard feedbackCount > 0, desired > 0, trend.usage != .overusing else { return false }
        return prober.startIfDue(estimate: Double(estimate), desired: Double(desired), now: now) != nil
    }

    /// Ends a running probe cluster without a result (the sender has nothing to fill it with).
    public func abandonProbe(now: UInt64) { prober.abandon(now: now) }

    /// Whether a feedback describing `statuses` packets is read now (see `statusesPerSecond`); a
    /// feedback covering more than the history holds is never read.
    public func admitsFeedback(statuses: Int, now: UInt64) -> Bool {
        if nanoseconds(from: secondStart, to: now) >= 1_000_000_000 || secondStart == 0 {
            secondStart = now
            statusesThisSecond = 0
        }
        guard statuses <= SendHistory.slotCount, statusesThisSecond + statuses <= Self.statusesPerSecond else {
            feedbackRefused += 1
            return false
        }
        statusesThisSecond += statuses
        return true
    }

    /// One transport feedback's packets. Returns the new estimate when the plugin should hear it.
    public func feedback(_ results: [TransportFeedback.PacketResult], now: UInt64) -> UInt64? {
        var lost = 0
        var total = 0
        var bytes = 0
        var firstArrival = Int64.max
        var lastArrival = Int64.min
        for result in results {
            guard let entry = history.report(sequence: result.sequenceNumber, now: now) else { continue }
            total += 1
            if entry.cluster != 0 { prober.reported(entry, arrival: result.arrivalTime) }
            guard let arrival = result.arrivalTime else {
                lost += 1
                continue
            }
            bytes += entry.size
            firstArrival = min(firstArrival, arrival)
            lastArrival = max(lastArrival, arrival)
            trend.add(sentAt: entry.sentAt, arrival: arrival)
        }
        guard total > 0 else { return nil }
        feedbackCount += 1
        if bytes > 0 { acked.add(firstArrival: firstArrival, lastArrival: lastArrival, bytes: bytes) }
        rate.update(trend.usage, acked: acked.bitsPerSecond, now: now)
        loss.add(lost: lost, of: total, current: rate.bitsPerSecond, now: now)
        if let probed = prober.result(estimate: Double(estimate), now: now), probed > 0 {
            rate.set(probed * 0.95, now: now)
        }
        let current = estimate
        let moved = reported == 0 || current > reported + reported / 20 || current < reported - reported / 20
        guard moved else { return nil }
        reported = current
        return current
    }

    /// A rate as a whole number of bits per second, whatever the arithmetic gave.
    static func bits(_ value: Double) -> UInt64 {
        guard value.isFinite, value > 0 else { return 0 }
        return UInt64(min(value, 1e12))
    }
}
