/// Places one RTP stream's timestamps on the recorder's clock (microseconds of the host's monotonic
/// clock, the clock packets arrive on).
///
/// Before the sender's first RTCP sender report, a timestamp is placed by its distance from the
/// packet that arrived earliest relative to it (the least delayed one). Once sender reports come,
/// it is placed on the sender's wall clock (RFC 3550 §6.4.1) shifted by the participant's
/// `SenderClockOffset`: every stream of one participant shares that offset, so audio and video keep
/// the sync the sender gave them (lip sync) whatever each path's delay.
public struct StreamClock: Sendable {
    public let clockRate: Int64
    private var extender = WrapExtender<UInt32>()
    /// min(arrival − timestamp time): the arrival-based placement.
    private var arrivalOffset: Int64?
    /// The newest credible sender report: its extended RTP timestamp and NTP time in µs.
    private var report: (timestamp: Int64, ntpMicros: Int64)?

    public init(clockRate: UInt32) {
        self.clockRate = Int64(max(clockRate, 1))
    }

    /// Extends a packet's timestamp and learns from its arrival; returns the extended timestamp.
    public mutating func observe(timestamp: UInt32, arrivalMicros: Int64, participant: inout SenderClockOffset) -> Int64 {
        let extended = extender.extend(timestamp)
        let offset = arrivalMicros - micros(extended)
        if arrivalOffset.map({ offset < $0 }) ?? true { arrivalOffset = offset }
        if let ntp = senderMicros(extended) { participant.observe(arrivalMicros: arrivalMicros, senderMicros: ntp) }
        return extended
    }

    /// A sender report of this stream. One that moves the sender's clock backwards or disagrees
    /// with the RTP clock by more than a second is ignored (a broken or restarted sender).
    public mutating func senderReport(ntp: UInt64, rtpTimestamp: UInt32) {
        let extended = extender.peek(rtpTimestamp)
        let ntpMicros = Int64(ntp >> 32) * 1_000_000 + Int64((ntp & 0xFFFF_FFFF) * 1_000_000 >> 32)
        if let previous = report {
            let wall = ntpMicros - previous.ntpMicros
            let media = micros(extended - previous.timestamp)
            guard wall >= 0, abs(wall - media) < 1_000_000 else { return }
        }
        report = (extended, ntpMicros)
    }

    public var hasSenderReport: Bool { report != nil }

    /// Extends a timestamp next to the ones seen so far, without learning from it (for frames
    /// that come out of the reorder buffer).
    public func extendNear(_ timestamp: UInt32) -> Int64 { extender.peek(timestamp) }

    /// Where an extended timestamp falls on the recorder's clock.
    public func place(_ extended: Int64, participant: SenderClockOffset) -> Int64? {
        if let sender = senderMicros(extended), let offset = participant.offset { return sender + offset }
        guard let arrivalOffset else { return nil }
        return micros(extended) + arrivalOffset
    }

    private func senderMicros(_ extended: Int64) -> Int64? {
        guard let report else { return nil }
        return report.ntpMicros + micros(extended - report.timestamp)
    }

    private func micros(_ ticks: Int64) -> Int64 { ticks * 1_000_000 / clockRate }
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
