/// The send rate the delay signal allows (draft-ietf-rmcat-gcc §5.5, as libwebrtc's
/// AimdRateControl): it grows while queues are steady, by 8 % a second far from the last point of
/// congestion and by about a packet per response time near it, and falls to 85 % of what arrived
/// when queues grow. It never climbs past 1.5 × what arrived: a sender that is not using its
/// estimate learns nothing about the path above it (probes do that).
public struct RateControl: Sendable {
    public private(set) var bitsPerSecond: Double
    public let minimum: Double
    public let maximum: Double
    private var lastUpdate: UInt64 = 0
    private var lastDecrease: UInt64 = 0
    /// What arrived when congestion was last seen, averaged, and its variance (normalised): the
    /// path's capacity as far as it is known.
    private var capacity: Double?
    private var capacityVariance = 0.4
    private var holding = false

    static let beta = 0.85
    static let responseNanos: UInt64 = 200_000_000

    public init(initial: Double, minimum: Double = 30_000, maximum: Double = 50_000_000) {
        self.minimum = minimum
        self.maximum = maximum
        bitsPerSecond = min(max(initial, minimum), maximum)
    }

    /// A probe or the loss signal found another rate: taken as it is.
    public mutating func set(_ rate: Double, now: UInt64) {
        bitsPerSecond = min(max(rate, minimum), maximum)
        lastUpdate = now
    }

    public mutating func update(_ usage: DelayTrend.Usage, acked: Double?, now: UInt64) {
        let elapsed = lastUpdate == 0 ? 0 : min(Double(nanoseconds(from: lastUpdate, to: now)) / 1e9, 1)
        lastUpdate = now
        switch usage {
        case .overusing:
            holding = true
            // Once per response time: one congestion episode is one decrease.
            guard nanoseconds(from: lastDecrease, to: now) >= Self.responseNanos || lastDecrease == 0 else { return }
            lastDecrease = now
            let base = acked ?? bitsPerSecond
            let decreased = Self.beta * base
            if let acked { learnCapacity(acked) }
            bitsPerSecond = min(max(min(decreased, bitsPerSecond), minimum), maximum)
        case .underusing:
            // Queues draining: hold until they are empty, or the increase would refill them at once.
            holding = true
        case .normal:
            if holding {
                holding = false
                return
            }
            if let known = capacity.map({ $0 / 1_000 }), bitsPerSecond / 1_000 > known + 3 * (capacityVariance * known).squareRoot() {
                capacity = nil  // past what was known: the path has more room now
            }
            var increased: Double
            if capacity != nil {
                // Near the known capacity: about one 1200-byte packet more per response time.
                increased = bitsPerSecond + max(1_000, 9_600 / 0.3) * elapsed
            } else {
                increased = bitsPerSecond * (1 + 0.08 * elapsed)
            }
            if let acked { increased = min(increased, max(1.5 * acked + 10_000, bitsPerSecond)) }
            bitsPerSecond = min(max(increased, minimum), maximum)
        }
    }

    /// Tracks the rate at congestion (kbit/s domain, as libwebrtc normalises its variance); a rate
    /// far from what was known means the path changed, and the known capacity is forgotten.
    private mutating func learnCapacity(_ acked: Double) {
        let kbps = acked / 1_000
        guard let known = capacity.map({ $0 / 1_000 }) else {
            capacity = acked
            return
        }
        let deviation = 3 * (capacityVariance * known).squareRoot()
        if kbps > known + deviation || kbps < known - deviation {
            capacity = acked
            capacityVariance = 0.4
            return
        }
        let average = 0.95 * known + 0.05 * kbps
        let norm = max(average, 1)
        capacityVariance = min(max(0.95 * capacityVariance + 0.05 * (average - kbps) * (average - kbps) / norm, 0.4), 2.5)
        capacity = average * 1_000
    }
}

/// The send rate the loss signal allows (draft-ietf-rmcat-gcc §6): a ceiling that falls when more
/// than 10 % of packets are lost, rises again below 2 %, and holds between. Random loss of a few
/// percent, which retransmission repairs, does not lower it: Wi-Fi and mobile links lose that much
/// without being full.
public struct LossControl: Sendable {
    public private(set) var ceiling: Double?
    private var lost = 0
    private var counted = 0
    private var windowStart: UInt64 = 0
    private var lastDecrease: UInt64 = 0
    private var lastIncrease: UInt64 = 0
    public private(set) var lastLossFraction = 0.0

    static let windowNanos: UInt64 = 500_000_000
    static let minimumPackets = 20

    public init() {}

    /// One feedback's counts. `current` is the estimate in use (the ceiling starts from it).
    public mutating func add(lost newLost: Int, of total: Int, current: Double, now: UInt64) {
        if windowStart == 0 { windowStart = now }
        lost += max(newLost, 0)
        counted += max(total, 0)
        guard counted >= Self.minimumPackets, nanoseconds(from: windowStart, to: now) >= Self.windowNanos else { return }
        let fraction = Double(lost) / Double(counted)
        lastLossFraction = fraction
        lost = 0
        counted = 0
        windowStart = now
        if fraction > 0.10 {
            guard nanoseconds(from: lastDecrease, to: now) >= 300_000_000 || lastDecrease == 0 else { return }
            lastDecrease = now
            ceiling = min(ceiling ?? current, current) * (1 - 0.5 * fraction)
        } else if fraction < 0.02, let c = ceiling {
            let elapsed = lastIncrease == 0 ? 0.5 : min(Double(nanoseconds(from: lastIncrease, to: now)) / 1e9, 1)
            lastIncrease = now
            let raised = c * (1 + 0.08 * elapsed) + 1_000
            // Once it no longer binds, it is gone.
            ceiling = raised > current * 1.5 ? nil : raised
        }
    }
}
