/// What went out under each transport-wide sequence number of one PeerConnection, so transport
/// feedback (which names only sequence numbers and arrival times) can be read as "this many bytes,
/// sent then, arrived then".
///
/// A fixed ring indexed by sequence number: recording is a store, nothing is allocated per packet.
/// 4096 slots hold about a second at 4000 packets/s, more than a feedback interval (Chromium sends
/// one every 50–250 ms); an entry older than `maxAge`, or already reported, is not read again, so a
/// late or repeated feedback cannot count a packet twice.
/// Not thread-safe: one media loop uses it.
public final class SendHistory {
    public struct Entry: Equatable, Sendable {
        public var sentAt: UInt64
        public var size: Int
        /// The probe cluster the packet belonged to, 0 for none.
        public var cluster: Int
    }

    private struct Slot {
        var sequence: Int32 = -1
        var reported = false
        var size: UInt16 = 0
        var cluster: UInt32 = 0
        var sentAt: UInt64 = 0
    }

    public static let slotCount = 4096
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
            sequence: Int32(sequence), size: UInt16(clamping: size), cluster: UInt32(clamping: cluster), sentAt: now)
    }

    /// The packet sent under `sequence`, once: a second report of it (or of a slot taken since)
    /// returns nil.
    public func report(sequence: UInt16, now: UInt64) -> Entry? {
        let i = Int(sequence) % Self.slotCount
        let slot = slots[i]
        guard slot.sequence == Int32(sequence), !slot.reported, nanoseconds(from: slot.sentAt, to: now) <= maxAge else { return nil }
        slots[i].reported = true
        return Entry(sentAt: slot.sentAt, size: Int(slot.size), cluster: Int(slot.cluster))
    }
}
