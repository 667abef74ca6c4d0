/// The last packets sent on one outgoing stream, in plain form, to answer NACKs.
///
/// Packets are indexed by sequence number (sequence modulo the slot count) and their bytes kept
/// back to back in a `GrowingByteRing`, so a store is one copy and nothing is allocated per packet.
/// Both follow the stream's rate: the ring grows until a lap of it holds `maxAge` of packets
/// (about 256 kB for 1.5 Mbit/s), and the slots double, up to `capacity`, whenever a store would
/// take the slot of a packet younger than `maxAge` (64 slots hold a second at 50 packets/s).
/// When the engine shares a packet's payload with the other subscribers of its source
/// (`SharedPayloads`), only the rest (the header and the bytes a rewrite changed) is kept here,
/// a few dozen bytes a packet. A packet is retransmitted only while its slot, its bytes (here and
/// in the shared ring) and its age (`maxAge`) all still hold.
/// Not thread-safe: one media loop uses it.
public final class RetransmissionBuffer {
    public let capacity: Int
    /// Older packets are not resent: a receiver's jitter buffer has given up on them (libwebrtc
    /// keeps at least 1 s of history; Janus's NACK queue defaults to 200 ms).
    public let maxAge: UInt64

    /// 32 bytes: a buffer is `capacity` of them whatever it holds.
    private struct Slot {
        var sequence: Int32 = -1
        /// The packet's own bytes (all of it, or what comes before its shared tail), and the
        /// length of that tail in the shared ring (0: none). A stored packet is at most 2 kB.
        var length: UInt16 = 0
        var sharedLength: UInt16 = 0
        var position: UInt64 = 0
        var sentAt: UInt64 = 0
        var sharedPosition: UInt64 = 0
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var slotCount: Int
    private let ring: GrowingByteRing
    private let shared: SharedPayloads?

    /// What the ring grows to is sized for full-size packets; a stored packet may be a little
    /// longer (header extensions added on the way out).
    static let fullSizePacket = 1_500
    static let largestPacket = 2_048

    public init(capacity: Int = 512, maxAge: UInt64 = 1_000_000_000, shared: SharedPayloads? = nil) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.maxAge = maxAge
        self.shared = shared
        slotCount = min(capacity, 64)
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(), count: slotCount)
        var largest = 32 * 1024
        while largest < capacity * Self.fullSizePacket { largest *= 2 }
        // Sharing leaves a few dozen bytes a packet here: a second of them fits 2 kB at 50
        // packets/s, and the ring grows for faster streams and for what is not shared.
        ring = GrowingByteRing(initialSize: shared == nil ? 32 * 1024 : 2 * 1024, maximumSize: largest, minimumLap: maxAge)
    }

    deinit { slots.deallocate() }

    /// The bytes the ring holds now (for memory accounting and tests).
    public var bytesReserved: Int { ring.bytesReserved }
    /// The slots there are now, at most `capacity`.
    public var slotsReserved: Int { slotCount }

    /// Keeps a copy of `packet` (plain RTP) under its sequence number. With `sharing`, the
    /// packet's last `sharing.length` bytes are those shared bytes and are not copied again.
    public func store(_ packet: UnsafeRawBufferPointer, sequenceNumber: UInt16, now: UInt64, sharing: SharedPayloads.Share? = nil) {
        guard let base = packet.baseAddress, packet.count <= Self.largestPacket else { return }
        let taken = slots[Int(sequenceNumber) % slotCount]
        if slotCount < capacity, taken.sequence >= 0, taken.sequence != Int32(sequenceNumber), now - min(now, taken.sentAt) < maxAge {
            growSlots()
        }
        let tail = sharing.map { $0.length <= packet.count ? $0.length : 0 } ?? 0
        let own = UnsafeRawBufferPointer(start: base, count: packet.count - tail)
        guard let position = ring.append(own, now: now) else {
            // Nothing of its own to keep (or more than a packet): the slot must not name an older one.
            slots[Int(sequenceNumber) % slotCount] = Slot()
            return
        }
        slots[Int(sequenceNumber) % slotCount] = Slot(sequence: Int32(sequenceNumber), length: UInt16(own.count), sharedLength: UInt16(tail),
                                                     position: position, sentAt: now, sharedPosition: sharing?.position ?? 0)
    }

    /// Copies the stored packet of `sequenceNumber` into `out` and returns its length, if it is
    /// still here, was sent no more than `maxAge` nanoseconds ago and fits.
    public func copy(sequenceNumber: UInt16, now: UInt64, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let slot = slots[Int(sequenceNumber) % slotCount]
        guard slot.sequence == Int32(sequenceNumber), now >= slot.sentAt, now - slot.sentAt <= maxAge,
            let own = ring.bytes(at: slot.position, count: Int(slot.length))
        else { return nil }
        let total = Int(slot.length) + Int(slot.sharedLength)
        guard total <= out.count, let destination = out.baseAddress else { return nil }
        if slot.sharedLength > 0 {
            guard let shared, let tail = shared.bytes(SharedPayloads.Share(position: slot.sharedPosition, length: Int(slot.sharedLength))) else {
                return nil
            }
            UnsafeMutableRawBufferPointer(start: destination + own.count, count: tail.count).copyMemory(from: tail)
        }
        UnsafeMutableRawBufferPointer(start: destination, count: own.count).copyMemory(from: own)
        return total
    }

    /// Doubles the slots (up to `capacity`), each live one moving to its index in the new count.
    /// Slots i and j of n never meet in 2n, as i and j differ modulo n; only the last step to a
    /// `capacity` that is not a power of two may make two meet, and then the older is not resent.
    private func growSlots() {
        let newCount = min(slotCount * 2, capacity)
        let bigger = UnsafeMutablePointer<Slot>.allocate(capacity: newCount)
        bigger.initialize(repeating: Slot(), count: newCount)
        for i in 0..<slotCount where slots[i].sequence >= 0 {
            let to = Int(slots[i].sequence) % newCount
            if bigger[to].sequence < 0 || bigger[to].sentAt < slots[i].sentAt { bigger[to] = slots[i] }
        }
        slots.deallocate()
        slots = bigger
        slotCount = newCount
    }
}
