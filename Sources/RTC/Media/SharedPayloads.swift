#if canImport(Glibc)
import Glibc
#endif

/// The payloads of the packets one received packet fans out into, kept once for every
/// subscriber's retransmission buffer instead of once per subscriber.
///
/// An SFU sends the same payload to each subscriber of a stream with its own RTP header (SSRC,
/// sequence number, timestamp, header extensions); only the first bytes of a VP8 payload may
/// differ (the picture ID and TL0PICIDX of its descriptor). So the first packet sent for a
/// received packet puts its payload here, and each later one shares it when its payload is the
/// same, or the same after its first `descriptorBytes`: the subscriber's buffer then keeps only
/// the header and those first bytes. Sharing is checked with memcmp, never assumed.
/// Rationale: with a copy per subscriber, the retransmission rings were most of a subscriber's
/// memory (about 270 of 440 kB at 1.5 Mbit/s); mediasoup shares packets across its consumers
/// the same way, by reference.
/// Not thread-safe: one media loop uses it.
public final class SharedPayloads {
    /// A shared tail: `length` bytes at `position` of the ring.
    public struct Share: Equatable, Sendable {
        public let position: UInt64
        public let length: Int
    }

    /// The leading payload bytes a rewrite may change (a VP8 descriptor takes at most 6).
    public static let descriptorBytes = 16
    /// Shorter tails are stored with the packet: a share costs a slot's reference and a lookup.
    public static let minimumShare = 64

    let ring: GrowingByteRing
    private var currentKey: UInt64 = 0
    private var current: Share?

    /// `maxAge` as in RetransmissionBuffer: the ring grows until a lap holds that much.
    public init(maximumSize: Int = 32 << 20, maxAge: UInt64 = 1_000_000_000) {
        ring = GrowingByteRing(maximumSize: maximumSize, minimumLap: maxAge)
    }

    /// The bytes the ring holds now (for memory accounting and tests).
    public var bytesReserved: Int { ring.bytesReserved }

    /// The share for `packet`, a plain RTP packet sent for received packet `key` (any number that
    /// differs from one received packet to the next; 0: none), whose last `payloadLength` bytes
    /// are its payload. nil: keep the whole packet.
    public func share(_ packet: UnsafeRawBufferPointer, payloadLength: Int, key: UInt64, now: UInt64) -> Share? {
        guard key != 0, payloadLength >= Self.minimumShare, payloadLength <= packet.count, let base = packet.baseAddress else { return nil }
        let start = base + (packet.count - payloadLength)
        let payload = UnsafeRawBufferPointer(start: start, count: payloadLength)
        if key != currentKey {
            currentKey = key
            current = ring.append(payload, now: now).map { Share(position: $0, length: payloadLength) }
            return current
        }
        guard let current, current.length == payloadLength, let stored = ring.bytes(at: current.position, count: current.length),
            let storedBase = stored.baseAddress
        else { return nil }
        if memcmp(storedBase, start, payloadLength) == 0 { return current }
        let skip = Self.descriptorBytes
        guard payloadLength - skip >= Self.minimumShare, memcmp(storedBase + skip, start + skip, payloadLength - skip) == 0 else { return nil }
        return Share(position: current.position + UInt64(skip), length: payloadLength - skip)
    }

    /// The bytes of `share`, while the ring still holds them.
    public func bytes(_ share: Share) -> UnsafeRawBufferPointer? {
        ring.bytes(at: share.position, count: share.length)
    }
}
