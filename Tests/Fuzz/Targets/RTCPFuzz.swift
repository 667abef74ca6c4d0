import RTC

/// One datagram as compound RTCP: parsed, each packet's derived values read (transport-wide
/// feedback statuses and arrival times, NACK losses, REMB bitrate), re-encoded, and its feedback
/// SSRCs rewritten in place as the SFU relays them. What encodes must parse again.
public func fuzzRTCP(_ data: UnsafeRawBufferPointer) {
    if let packets = try? RTCPPacket.parseCompound(data) {
        for packet in packets {
            switch packet {
            case .transportFeedback(let feedback):
                _ = feedback.packetStatuses
                congestion(feedback)
            case .genericNACK(let nack):
                _ = GenericNACK.lostSequenceNumbers(nack.items)
            default:
                break
            }
        }
        if let encoded = try? RTCPPacket.encodeCompound(packets) {
            guard (try? RTCPPacket.parseCompound(encoded)) != nil else { fuzzFailure("encoded RTCP does not parse") }
        }
    }
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 1)
    defer { copy.deallocate() }
    copy.copyMemory(from: data)
    _ = try? RTCPPacket.rewriteFeedbackSSRCs(in: copy, senderSSRC: 0x0102_0304) { $0 & 1 == 0 ? ~$0 : nil }
}

/// What the host does with a peer's transport feedback and with the sequence numbers it sees:
/// the send-side estimate reads it against a history of what was "sent" (every number the
/// feedback names, 1 ms apart), the receive side records its arrivals and builds feedback again,
/// and the upstream loss tracker follows its sequence numbers. None may trap, and the feedback
/// built must parse.
func congestion(_ feedback: TransportFeedback) {
    let estimator = BandwidthEstimator()
    estimator.desired = 2_000_000
    let base = feedback.baseSequenceNumber
    let count = min(Int(feedback.packetStatusCount), SendHistory.slotCount)
    for i in 0..<count { estimator.sent(sequence: base &+ UInt16(truncatingIfNeeded: i), size: 1_000 + i % 300, now: 1_000_000 * UInt64(i + 1)) }
    let now = 1_000_000 * UInt64(count + 50)
    if estimator.admitsFeedback(statuses: Int(feedback.packetStatusCount), now: now) {
        _ = estimator.feedback(feedback.packetResults, now: now)
        _ = estimator.startProbeIfDue(now: now)
        _ = estimator.prober.fillerDue(now: now + 10_000_000)
    }
    var recorder = FeedbackRecorder()
    var missing = MissingPackets()
    for result in feedback.packetResults.prefix(4_096) {
        if let arrival = result.arrivalTime { recorder.record(sequence: result.sequenceNumber, micros: arrival) }
        missing.received(result.sequenceNumber, now: now)
    }
    _ = missing.due(now: now + 100_000_000)
    if let built = recorder.feedback(senderSSRC: 1, mediaSSRC: 2) {
        guard let encoded = try? RTCPPacket.encodeCompound([.transportFeedback(built)]), (try? RTCPPacket.parseCompound(encoded)) != nil else {
            fuzzFailure("built transport feedback does not parse")
        }
    }
}

