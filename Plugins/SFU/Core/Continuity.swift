/// Keeps one subscriber stream's sequence numbers and timestamps continuous while its source
/// changes (another simulcast layer, another publisher after `switch`), and closes the gaps that
/// dropped packets (filtered temporal layers) would leave, so the receiver never sees a jump it
/// would take for loss. Output = input + offset, per source; offsets are recomputed on a change.
public struct RTPContinuity: Sendable {
    public private(set) var started = false
    public private(set) var sourceSSRC: UInt32 = 0
    private var sequenceOffset: UInt16 = 0
    private var timestampOffset: UInt32 = 0
    /// The newest sequence number seen from the current source (forwarded or dropped).
    private var newestInput: UInt16 = 0
    public private(set) var lastSequence: UInt16 = 0
    public private(set) var lastTimestamp: UInt32 = 0
    private var lastSentAt: UInt64 = 0
    public var clockRate: UInt32

    public init(clockRate: UInt32) { self.clockRate = clockRate }

    /// Whether `a` is after `b` in RFC 3550's 16-bit wrap-around order.
    @inlinable static func isNewer(_ a: UInt16, than b: UInt16) -> Bool { a != b && a &- b < 0x8000 }

    /// The sequence number and timestamp to send for a packet of source `ssrc` at `now` (nanoseconds).
    public mutating func map(ssrc: UInt32, sequence: UInt16, timestamp: UInt32, now: UInt64) -> (sequence: UInt16, timestamp: UInt32) {
        if !started {
            started = true
            sourceSSRC = ssrc
            sequenceOffset = 0
            timestampOffset = 0
            newestInput = sequence &- 1
        } else if ssrc != sourceSSRC {
            // A new source continues where the last one stopped; its clock advances by the wall time
            // that passed (at least one tick, so two frames never share a timestamp).
            let elapsed = now > lastSentAt ? now - lastSentAt : 0
            let ticks = max(1, UInt32(truncatingIfNeeded: Self.ticks(nanoseconds: elapsed, clockRate: clockRate)))
            sourceSSRC = ssrc
            sequenceOffset = (lastSequence &+ 1) &- sequence
            timestampOffset = (lastTimestamp &+ ticks) &- timestamp
            newestInput = sequence &- 1
        }
        if Self.isNewer(sequence, than: newestInput) { newestInput = sequence }
        let out = (sequence &+ sequenceOffset, timestamp &+ timestampOffset)
        if Self.isNewer(out.0, than: lastSequence) || lastSentAt == 0 {
            lastSequence = out.0
            lastTimestamp = out.1
            lastSentAt = max(now, 1)
        }
        return out
    }

    /// RTP clock ticks in `e` nanoseconds at `clockRate` Hz. Whole seconds and the rest are scaled
    /// apart: `e * clockRate` overflows 64 bits after 4.3 s at a hostile rate near 2^32 (the rate
    /// comes from the publisher's SDP); the timestamp wraps modulo 2^32 anyway.
    static func ticks(nanoseconds e: UInt64, clockRate: UInt32) -> UInt64 {
        let rate = UInt64(clockRate)
        return (e / 1_000_000_000) &* rate &+ (e % 1_000_000_000) * rate / 1_000_000_000
    }

    /// A packet of the current source that is not forwarded: when it is the next in order, the
    /// packets after it move down by one so the receiver sees no gap. (A dropped packet that arrives
    /// out of order leaves a gap; the receiver's NACK for it then goes unanswered, which is harmless.)
    public mutating func skip(ssrc: UInt32, sequence: UInt16) {
        guard started, ssrc == sourceSSRC, sequence == newestInput &+ 1 else { return }
        newestInput = sequence
        sequenceOffset &-= 1
    }
}

/// Keeps VP8 picture ids and TL0PICIDX continuous across source changes (each simulcast layer
/// numbers its pictures on its own), so a receiver's reference tracking sees one stream.
public struct VP8Continuity: Sendable {
    private var started = false
    private var sourceSSRC: UInt32 = 0
    private var pictureOffset: UInt16 = 0
    private var tl0Offset: UInt8 = 0
    private var lastPicture: UInt16 = 0
    private var lastTL0: UInt8 = 0

    public init() {}

    /// The picture id (15-bit space) and TL0PICIDX to send for a packet of `ssrc`.
    public mutating func map(ssrc: UInt32, pictureID: UInt16, tl0PicIdx: UInt8) -> (pictureID: UInt16, tl0PicIdx: UInt8) {
        if !started {
            started = true
            sourceSSRC = ssrc
        } else if ssrc != sourceSSRC {
            sourceSSRC = ssrc
            pictureOffset = (lastPicture &+ 1 &- pictureID) & 0x7FFF
            tl0Offset = lastTL0 &+ 1 &- tl0PicIdx
        }
        let picture = (pictureID &+ pictureOffset) & 0x7FFF
        let tl0 = tl0PicIdx &+ tl0Offset
        lastPicture = picture
        lastTL0 = tl0
        return (picture, tl0)
    }
}
