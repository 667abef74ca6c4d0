/// What arrived from a peer under transport-wide sequence numbers, until the next transport
/// feedback tells it (draft-holmer-rmcat-transport-wide-cc-extensions-01): the receiving half
/// of transport-cc, which lets a browser's own send-side estimator adapt what it publishes.
///
/// Arrivals are kept in a fixed array between feedbacks (a feedback every 100 ms; 1024 arrivals
/// is 10,000 packets a second); more than that, and packets the last feedback already passed, are
/// not recorded. A feedback covers at most `maximumSpan` sequence numbers, from the first not yet
/// reported to the highest arrived: what lies between and did not arrive is reported lost.
/// Not thread-safe: one media loop uses it.
public struct FeedbackRecorder: Sendable {
    public static let capacity = 1_024
    public static let maximumSpan = 2_048
    private var arrivals: [(sequence: Int64, micros: Int64)] = []
    /// The next sequence number (unwrapped) a feedback starts from; nil before the first arrival.
    private var next: Int64?
    private var highest: Int64 = 0
    private var count: UInt8 = 0

    public init() { arrivals.reserveCapacity(Self.capacity) }

    public var isEmpty: Bool { arrivals.isEmpty }

    /// One packet with transport-wide sequence number `sequence` arrived at `micros` (monotonic).
    public mutating func record(sequence: UInt16, micros: Int64) {
        let unwrapped: Int64
        if next == nil {
            unwrapped = Int64(sequence)
            next = unwrapped
            highest = unwrapped
        } else {
            unwrapped = highest + Int64(Int16(bitPattern: sequence &- UInt16(truncatingIfNeeded: highest)))
        }
        guard let next, unwrapped >= next, arrivals.count < Self.capacity else { return }
        highest = max(highest, unwrapped)
        arrivals.append((unwrapped, micros))
    }

    /// The feedback for what arrived since the last one (nil when nothing did), and the recorder
    /// emptied for the next.
    public mutating func feedback(senderSSRC: UInt32, mediaSSRC: UInt32) -> TransportFeedback? {
        guard let start = next, !arrivals.isEmpty else { return nil }
        arrivals.sort { $0.sequence < $1.sequence }
        let last = arrivals[arrivals.count - 1].sequence
        let first = max(start, last - Int64(Self.maximumSpan) + 1)
        var packets: [TransportFeedback.PacketResult] = []
        var previous: Int64 = first - 1
        for arrival in arrivals where arrival.sequence >= first && arrival.sequence > previous {
            previous = arrival.sequence
            packets.append(TransportFeedback.PacketResult(sequenceNumber: UInt16(truncatingIfNeeded: arrival.sequence), arrivalTime: arrival.micros))
        }
        arrivals.removeAll(keepingCapacity: true)
        next = last + 1
        // Lost packets before the first arrival are the ones the feedback starts with.
        if let head = packets.first, Int64(UInt16(truncatingIfNeeded: first)) != Int64(head.sequenceNumber) {
            packets.insert(TransportFeedback.PacketResult(sequenceNumber: UInt16(truncatingIfNeeded: first), arrivalTime: nil), at: 0)
        }
        count &+= 1
        // Arrival deltas span at most 8 s; packets that waited longer between feedbacks are not told.
        return try? TransportFeedback(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, feedbackPacketCount: count &- 1, packets: packets)
    }
}
