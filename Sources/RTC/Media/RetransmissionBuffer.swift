/// The last packets sent on one outgoing stream, in plain form, to answer NACKs.
///
/// Packets are indexed by sequence number (`capacity` slots, sequence modulo capacity) and their
/// bytes kept back to back in one byte ring, so a store is one copy and nothing is allocated per
/// packet. The ring starts small and doubles whenever a lap of it held less than `maxAge` of
/// packets, up to room for `capacity` full-size packets: its memory follows the stream's bitrate
/// (about 256 kB for 1.5 Mbit/s) instead of `capacity` packet-sized arrays. A packet is
/// retransmitted only while its slot, its bytes and its age (`maxAge`) all still hold.
/// Not thread-safe: one media loop uses it.
public final class RetransmissionBuffer {
    public let capacity: Int
    /// Older packets are not resent: a receiver's jitter buffer has given up on them (libwebrtc
    /// keeps at least 1 s of history; Janus's NACK queue defaults to 200 ms).
    public let maxAge: UInt64

    private struct Slot {
        var sequence: Int32 = -1
        var length: Int32 = 0
        /// Where the bytes start, counted in bytes ever written (the ring offset is this modulo its size).
        var position: UInt64 = 0
        var sentAt: UInt64 = 0
    }

    private let slots: UnsafeMutablePointer<Slot>
    private var ring: UnsafeMutableRawPointer
    private var ringSize: Int
    private let maximumRingSize: Int
    /// Bytes ever written; the ring holds [max(validFrom, head - ringSize), head).
    private var head: UInt64 = 0
    /// Where the bytes a growth carried over begin: the bigger ring has room for older
    /// positions, but their bytes were never copied into it.
    private var validFrom: UInt64 = 0
    /// When the current lap of the ring began.
    private var lapStartedAt: UInt64?

    static let initialRingSize = 32 * 1024
    /// What the ring grows to is sized for full-size packets; a stored packet may be a little
    /// longer (header extensions added on the way out).
    static let fullSizePacket = 1_500
    static let largestPacket = 2_048

    public init(capacity: Int = 512, maxAge: UInt64 = 1_000_000_000) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.maxAge = maxAge
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(), count: capacity)
        var largest = Self.initialRingSize
        while largest < capacity * Self.fullSizePacket { largest *= 2 }
        maximumRingSize = largest
        ringSize = Self.initialRingSize
        ring = .allocate(byteCount: ringSize, alignment: 16)
    }

    deinit {
        slots.deallocate()
        ring.deallocate()
    }

    /// The bytes the ring holds now (for memory accounting and tests).
    public var bytesReserved: Int { ringSize }

    /// Keeps a copy of `packet` (plain RTP) under its sequence number.
    public func store(_ packet: UnsafeRawBufferPointer, sequenceNumber: UInt16, now: UInt64) {
        guard let source = packet.baseAddress, packet.count <= Self.largestPacket else { return }
        var offset = Int(head % UInt64(ringSize))
        if offset + packet.count > ringSize {
            // A packet never straddles the end: the lap ends here.
            head += UInt64(ringSize - offset)
            offset = 0
        }
        if offset == 0 {
            let started = lapStartedAt
            lapStartedAt = now
            if let started, now - min(now, started) < maxAge, ringSize < maximumRingSize {
                grow()
                offset = Int(head % UInt64(ringSize))
                // Partway into the bigger ring: the lap measured next is a whole one.
                if offset != 0 { lapStartedAt = nil }
            }
        }
        (ring + offset).copyMemory(from: source, byteCount: packet.count)
        slots[Int(sequenceNumber) % capacity] = Slot(sequence: Int32(sequenceNumber), length: Int32(packet.count), position: head, sentAt: now)
        head += UInt64(packet.count)
    }

    /// Calls `body` with the stored packet of `sequenceNumber` if it is still here and was sent no
    /// more than `maxAge` nanoseconds ago.
    public func withPacket<R>(sequenceNumber: UInt16, now: UInt64, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        let slot = slots[Int(sequenceNumber) % capacity]
        guard slot.sequence == Int32(sequenceNumber), now >= slot.sentAt, now - slot.sentAt <= maxAge,
            slot.position >= validFrom, head - slot.position <= UInt64(ringSize)
        else { return nil }
        return body(UnsafeRawBufferPointer(start: ring + Int(slot.position % UInt64(ringSize)), count: Int(slot.length)))
    }

    /// Doubles the ring, keeping the bytes it holds at their positions.
    private func grow() {
        let newSize = ringSize * 2
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newSize, alignment: 16)
        // The live bytes are [head - ringSize, head); copy them a contiguous run at a time.
        var position = head - min(head, UInt64(ringSize))
        while position < head {
            let from = Int(position % UInt64(ringSize))
            let to = Int(position % UInt64(newSize))
            let run = min(Int(head - position), ringSize - from, newSize - to)
            (bigger + to).copyMemory(from: ring + from, byteCount: run)
            position += UInt64(run)
        }
        ring.deallocate()
        ring = bigger
        validFrom = head - min(head, UInt64(ringSize))
        ringSize = newSize
    }
}
