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
                _ = feedback.packetResults
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
