/// Reception statistics of one incoming RTP source, as RFC 3550 Appendix A.1, A.3 and A.8 keep them,
/// turned into the report block of a receiver or sender report.
public struct RTPReceiveStatistics: Sendable {
    public let ssrc: UInt32
    public let clockRate: UInt32

    private var started = false
    private var maxSequence: UInt16 = 0
    private var cycles: UInt32 = 0
    private var baseSequence: UInt32 = 0
    public private(set) var received: UInt32 = 0
    private var expectedPrior: UInt32 = 0
    private var receivedPrior: UInt32 = 0
    /// Interarrival jitter in timestamp units, scaled by 16 as in A.8.
    private var jitterQ4: UInt32 = 0
    /// Arrival minus RTP timestamp of the previous packet, in RTP ticks modulo 2^32 (only
    /// differences of transits mean anything, and they are small).
    private var lastTransit: UInt32?
    private var lastSenderReport: UInt32 = 0
    private var lastSenderReportAt: UInt64 = 0

    /// Packets that arrived with a sequence number far from the expected one (a restarted source).
    private static let maxDropout: UInt16 = 3000
    private static let maxMisorder: UInt16 = 100

    public init(ssrc: UInt32, clockRate: UInt32) {
        self.ssrc = ssrc
        self.clockRate = clockRate
    }

    /// The extended highest sequence number received.
    public var extendedHighestSequence: UInt32 { cycles | UInt32(maxSequence) }

    /// Packets expected (from the first to the highest) and not received, never negative.
    public var cumulativeLost: Int64 {
        Int64(extendedHighestSequence) - Int64(baseSequence) + 1 - Int64(received)
    }

    /// Counts one packet that arrived at `arrivalNanos` (monotonic).
    public mutating func update(sequenceNumber seq: UInt16, timestamp: UInt32, arrivalNanos: UInt64) {
        if !started {
            started = true
            maxSequence = seq
            baseSequence = UInt32(seq)
            cycles = 0
        } else {
            let delta = seq &- maxSequence
            if delta < Self.maxDropout {
                if seq < maxSequence { cycles &+= 1 << 16 }
                maxSequence = seq
            } else if delta <= UInt16.max - Self.maxMisorder {
                // A jump too large to be loss: the source restarted its numbering.
                maxSequence = seq
                baseSequence = cycles | UInt32(seq)
                received = 0
                expectedPrior = 0
                receivedPrior = 0
            }
            // Otherwise a duplicate or reordered packet: counted, the highest stays.
        }
        received &+= 1
        // Jitter (A.8): transit time differences in RTP units, in wrap-around arithmetic so that
        // neither the uptime nor a hostile timestamp can overflow anything.
        let transit = RTPClock.ticks(nanoseconds: arrivalNanos, clockRate: clockRate) &- timestamp
        if let last = lastTransit {
            let d = min(Int32(bitPattern: transit &- last).magnitude, UInt32.max >> 5)
            jitterQ4 = jitterQ4 &+ d &- ((jitterQ4 &+ 8) >> 4)
        }
        lastTransit = transit
    }

    /// Remembers a sender report of this source, to echo it (LSR/DLSR) in the next report block.
    public mutating func senderReportReceived(compactNTP: UInt32, at nanos: UInt64) {
        lastSenderReport = compactNTP
        lastSenderReportAt = nanos
    }

    /// The report block for now, and the loss since the previous one (A.3). Advances the interval.
    public mutating func reportBlock(now: UInt64) -> (block: ReportBlock, lostInInterval: UInt32) {
        let expected = extendedHighestSequence &- baseSequence &+ 1
        let expectedInterval = expected &- expectedPrior
        let receivedInterval = received &- receivedPrior
        expectedPrior = expected
        receivedPrior = received
        let lostInterval = Int64(expectedInterval) - Int64(receivedInterval)
        var fraction: UInt8 = 0
        if expectedInterval > 0, lostInterval > 0 {
            fraction = UInt8(min(255, (lostInterval << 8) / Int64(expectedInterval)))
        }
        var delay: UInt32 = 0
        if lastSenderReportAt > 0, now > lastSenderReportAt {
            // DLSR in units of 1/65536 s.
            delay = RTPClock.ticks(nanoseconds: now - lastSenderReportAt, clockRate: 65_536)
        }
        let lost = Int32(clamping: max(cumulativeLost, 0))
        let block = ReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: lost,
                                extendedHighestSequenceNumber: extendedHighestSequence, jitter: jitterQ4 >> 4,
                                lastSenderReport: lastSenderReport, delaySinceLastSenderReport: delay)
        return (block, UInt32(max(lostInterval, 0)))
    }
}
