/// Places one RTP stream's timestamps on the recorder's clock (microseconds of the host's monotonic
/// clock, the clock packets arrive on).
///
/// The estimate of where a frame belongs: on the sender's wall clock (RFC 3550 §6.4.1) shifted by
/// the participant's `SenderClockOffset` once sender reports came (every stream of a participant
/// shares that offset, so audio and video keep the sync the sender captured them with: lip sync),
/// else by the packet that arrived earliest relative to its timestamp (the least delayed one).
///
/// Frames are placed by their RTP distance from the previous one, so jitter never moves them and
/// they keep the sender's spacing exactly. A stream whose RTP clock falls behind the sender's wall
/// clock (an audio device that delivers fewer samples than time passes, a stalled capture) is moved
/// forward to the estimate once it lags by `lagMicros`, leaving a gap; one that runs ahead is never
/// moved back (a file never gets a frame earlier than its predecessor) unless it is over
/// `jumpMicros` ahead (timestamps that jumped).
public struct StreamClock: Sendable {
    public let clockRate: Int64
    private var extender = WrapExtender<UInt32>()
    /// min(arrival − timestamp time): the arrival-based placement.
    private var arrivalOffset: Int64?
    /// The newest credible sender report: its extended RTP timestamp and NTP time in µs.
    private var report: (timestamp: Int64, ntpMicros: Int64)?
    /// Sender wall time per RTP time, measured between reports: a device clock that runs slow
    /// (or fast) against the sender's wall clock is extrapolated at its real pace.
    private var skew = 1.0
    private var last: (timestamp: Int64, micros: Int64)?
    /// A stream this far behind its estimate is moved forward to it.
    public static let lagMicros: Int64 = 60_000
    /// A stream this far ahead has timestamps that jumped: it is placed anew.
    public static let jumpMicros: Int64 = 1_000_000

    public init(clockRate: UInt32) {
        self.clockRate = Int64(max(clockRate, 1))
    }

    /// Extends a packet's timestamp and learns from its arrival; returns the extended timestamp.
    public mutating func observe(timestamp: UInt32, arrivalMicros: Int64, participant: inout SenderClockOffset) -> Int64 {
        let extended = extender.extend(timestamp)
        let offset = arrivalMicros &- micros(extended)
        if arrivalOffset.map({ offset < $0 }) ?? true { arrivalOffset = offset }
        if let ntp = senderMicros(extended) { participant.observe(arrivalMicros: arrivalMicros, senderMicros: ntp) }
        return extended
    }

    /// A sender report of this stream. One that moves the sender's clock backwards or disagrees
    /// with the RTP clock by more than a second is ignored (a broken or restarted sender).
    public mutating func senderReport(ntp: UInt64, rtpTimestamp: UInt32) {
        let extended = extender.peek(rtpTimestamp)
        let ntpMicros = Int64(ntp >> 32) * 1_000_000 + Int64(((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32)
        if let previous = report {
            let wall = ntpMicros - previous.ntpMicros
            let media = micros(extended &- previous.timestamp)
            guard wall >= 0, abs(wall - media) < 1_000_000 else { return }
            if media >= 500_000 { skew = min(max(Double(wall) / Double(media), 0.5), 2.0) }
        }
        report = (extended, ntpMicros)
    }

    /// Extends a timestamp next to the ones seen so far, without learning from it (for frames
    /// that come out of the reorder buffer).
    public func extendNear(_ timestamp: UInt32) -> Int64 { extender.peek(timestamp) }

    /// Where an extended timestamp falls on the recorder's clock (call in the stream's order).
    /// `notBefore`: the earliest the frame may be placed (it arrived at a known time, so a placement
    /// far before that is the stream's clock running slow, even without reports).
    public mutating func place(_ extended: Int64, participant: SenderClockOffset, notBefore: Int64 = .min) -> Int64? {
        guard var estimate = estimate(extended, participant: participant) else { return nil }
        estimate = max(estimate, notBefore)
        var placed = estimate
        if let last {
            // Wrapping: a hostile stream can push these past 64 bits, and TrackInput drops
            // whatever lands far from its arrival.
            let natural = last.micros &+ micros(extended &- last.timestamp)
            let lag = estimate &- natural
            if lag <= Self.lagMicros && lag >= -Self.jumpMicros { placed = natural }
        }
        last = (extended, placed)
        return placed
    }


    /// The best guess now: by the sender's clock once it reported, else by the least-delayed arrival.
    func estimate(_ extended: Int64, participant: SenderClockOffset) -> Int64? {
        if let sender = senderMicros(extended), let offset = participant.offset { return sender &+ offset }
        guard let arrivalOffset else { return nil }
        return micros(extended) &+ arrivalOffset
    }

    private func senderMicros(_ extended: Int64) -> Int64? {
        guard let report else { return nil }
        return report.ntpMicros &+ Int64(Double(micros(extended &- report.timestamp)) * skew)
    }

    /// `micros` stops here, so that scaled by `skew` (at most 2) it still converts to Int64.
    static let microsLimit: Int64 = 1 << 60

    /// Microseconds of `ticks`, exact up to ±`microsLimit` and saturating there. `ticks * 1e6`
    /// overflowed after 4300 packets whose timestamps each leapt half the 32-bit clock.
    private func micros(_ ticks: Int64) -> Int64 {
        let (whole, overflow) = (ticks / clockRate).multipliedReportingOverflow(by: 1_000_000)
        guard !overflow, whole.magnitude <= UInt64(Self.microsLimit) else { return ticks < 0 ? -Self.microsLimit : Self.microsLimit }
        return whole + ticks % clockRate * 1_000_000 / clockRate
    }
}

/// The offset from one sender's wall clock (its RTCP NTP time) to the recorder's clock: the least
/// delay seen over all of that participant's streams.
public struct SenderClockOffset: Sendable {
    public private(set) var offset: Int64?

    public init() {}

    public mutating func observe(arrivalMicros: Int64, senderMicros: Int64) {
        let o = arrivalMicros - senderMicros
        if offset.map({ o < $0 }) ?? true { offset = o }
    }
}
