/// What went out under each transport-wide sequence number of one PeerConnection, so transport
/// feedback (which names only sequence numbers and arrival times) can be read as "this many bytes,
/// sent then, arrived then".
///
/// A fixed ring indexed by sequence number: recording is a store, nothing is allocated per packet.
/// 2048 slots of 16 bytes (32 kB a PeerConnection) hold half a second at 4000 packets/s, more than
/// a feedback interval (Chromium sends one every 50–250 ms); an entry older than `maxAge`, or
/// already reported, is not read again, so a late or repeated feedback cannot count a packet twice.
/// Not thread-safe: one media loop uses it.
public final class SendHistory {
    public struct Entry: Equatable, Sendable {
        public var sentAt: UInt64
        public var size: Int
        /// The probe cluster the packet belonged to (its id modulo 2^16), 0 for none.
        public var cluster: Int
    }

    private struct Slot {
        var sentAt: UInt64 = 0
        var sequence: UInt16 = 0
        var size: UInt16 = 0
        var cluster: UInt16 = 0
        /// 0: empty, 1: sent, 2: reported.
        var state: UInt8 = 0
    }

    public static let slotCount = 2048
    public let maxAge: UInt64
    private let slots: UnsafeMutablePointer<Slot>

    public init(maxAge: UInt64 = 2_000_000_000) {
        self.maxAge = maxAge
        slots = .allocate(capacity: Self.slotCount)
        slots.initialize(repeating: Slot(), count: Self.slotCount)
    }

    deinit { slots.deallocate() }

    public func record(sequence: UInt16, size: Int, cluster: Int = 0, now: UInt64) {
        slots[Int(sequence) % Self.slotCount] = Slot(
            sentAt: now, sequence: sequence, size: UInt16(clamping: size), cluster: UInt16(truncatingIfNeeded: cluster), state: 1)
    }

    /// The packet sent under `sequence`, once: a second report of it (or of a slot taken since)
    /// returns nil.
    public func report(sequence: UInt16, now: UInt64) -> Entry? {
        let i = Int(sequence) % Self.slotCount
        let slot = slots[i]
        guard slot.state == 1, slot.sequence == sequence, nanoseconds(from: slot.sentAt, to: now) <= maxAge else { return nil }
        slots[i].state = 2
        return Entry(sentAt: slot.sentAt, size: Int(slot.size), cluster: Int(slot.cluster))
    }
}
