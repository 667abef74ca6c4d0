/// The delay-based half of Google Congestion Control (draft-ietf-rmcat-gcc §5): whether queues on
/// the path are growing (overuse), draining (underuse) or steady, from how the spacing of packet
/// groups changes between sending and arrival.
///
/// Packets sent within 5 ms form a group; for each pair of groups the one-way delay variation is
/// (arrival spacing − send spacing). The accumulated variation is smoothed and a line fitted over
/// the last 20 groups: its slope, scaled, is compared with a threshold that itself follows the
/// signal (so a path with steady jitter, a busy machine's scheduling among them, does not read as
/// congestion), and overuse must last 10 ms over two groups. Values follow libwebrtc's
/// TrendlineEstimator as its documentation describes them.
public struct DelayTrend: Sendable {
    public enum Usage: Equatable, Sendable { case normal, overusing, underusing }

    private struct Group {
        var firstSent: UInt64
        var lastSent: UInt64
        /// Receiver clock, microseconds.
        var lastArrival: Int64
    }

    static let groupSpanNanos: UInt64 = 5_000_000
    static let windowSize = 20
    static let smoothing = 0.9
    static let gain = 4.0
    static let overuseMilliseconds = 10.0

    private var current: Group?
    private var previous: Group?
    private var firstArrival: Int64?
    private var accumulated = 0.0
    private var smoothed = 0.0
    private var deltas = 0
    /// (arrival ms since the first, smoothed delay ms), oldest first; at most `windowSize`.
    private var window: [(x: Double, y: Double)] = []
    private var threshold = 12.5
    private var lastThresholdUpdate: Int64?
    private var overuseTime = -1.0
    private var overuseCount = 0
    private var previousTrend = 0.0
    public private(set) var usage = Usage.normal

    public init() { window.reserveCapacity(Self.windowSize) }

    /// One received packet, in send order: when it was sent (this side's clock, ns) and arrived
    /// (the receiver's clock, µs). Returns the usage, which changes only when a group completes.
    @discardableResult
    public mutating func add(sentAt: UInt64, arrival: Int64) -> Usage {
        guard var group = current else {
            current = Group(firstSent: sentAt, lastSent: sentAt, lastArrival: arrival)
            return usage
        }
        // Reordered on the way out of the history (an older packet than the group's): not a signal.
        guard sentAt >= group.firstSent else { return usage }
        if sentAt - group.firstSent <= Self.groupSpanNanos {
            group.lastSent = max(group.lastSent, sentAt)
            group.lastArrival = max(group.lastArrival, arrival)
            current = group
            return usage
        }
        if let previous {
            let sendDelta = Double(group.lastSent - min(group.lastSent, previous.lastSent)) / 1e6
            let arrivalDelta = Double(group.lastArrival &- previous.lastArrival) / 1e3
            // A receiver clock jump (or a forged feedback) of seconds says nothing about queues.
            if abs(arrivalDelta - sendDelta) < 5_000 {
                update(variation: arrivalDelta - sendDelta, arrival: group.lastArrival, sendDelta: sendDelta)
            }
        }
        previous = group
        current = Group(firstSent: sentAt, lastSent: sentAt, lastArrival: arrival)
        return usage
    }

    private mutating func update(variation: Double, arrival: Int64, sendDelta: Double) {
        deltas = min(deltas + 1, 1_000)
        accumulated += variation
        smoothed = Self.smoothing * smoothed + (1 - Self.smoothing) * accumulated
        let first = firstArrival ?? arrival
        firstArrival = first
        if window.count == Self.windowSize { window.removeFirst() }
        window.append((Double(arrival &- first) / 1e3, smoothed))
        var trend = previousTrend
        if window.count == Self.windowSize, let slope = Self.slope(window) { trend = slope }
        detect(trend: trend, sendDelta: sendDelta, arrival: arrival)
    }

    /// Least-squares slope of the window; nil when every x is the same.
    static func slope(_ points: [(x: Double, y: Double)]) -> Double? {
        let n = Double(points.count)
        let meanX = points.reduce(0) { $0 + $1.x } / n
        let meanY = points.reduce(0) { $0 + $1.y } / n
        var numerator = 0.0
        var denominator = 0.0
        for p in points {
            numerator += (p.x - meanX) * (p.y - meanY)
            denominator += (p.x - meanX) * (p.x - meanX)
        }
        return denominator == 0 ? nil : numerator / denominator
    }

    private mutating func detect(trend: Double, sendDelta: Double, arrival: Int64) {
        guard deltas >= 2 else { return }
        let modified = Double(min(deltas, 60)) * trend * Self.gain
        if modified > threshold {
            overuseTime = overuseTime < 0 ? sendDelta / 2 : overuseTime + sendDelta
            overuseCount += 1
            if overuseTime > Self.overuseMilliseconds, overuseCount > 1, trend >= previousTrend {
                overuseTime = 0
                overuseCount = 0
                usage = .overusing
            }
        } else if modified < -threshold {
            overuseTime = -1
            overuseCount = 0
            usage = .underusing
        } else {
            overuseTime = -1
            overuseCount = 0
            usage = .normal
        }
        previousTrend = trend
        adaptThreshold(modified, arrival: arrival)
    }

    /// The threshold moves toward |modified| (faster down than up), so it tracks the path's normal
    /// variation; a spike far above it is not learned.
    private mutating func adaptThreshold(_ modified: Double, arrival: Int64) {
        let last = lastThresholdUpdate ?? arrival
        lastThresholdUpdate = arrival
        guard abs(modified) <= threshold + 15 else { return }
        let k = abs(modified) < threshold ? 0.039 : 0.0087
        let elapsed = min(max(Double(arrival &- last) / 1e3, 0), 100)
        threshold = min(max(threshold + k * (abs(modified) - threshold) * elapsed, 6), 600)
    }
}
