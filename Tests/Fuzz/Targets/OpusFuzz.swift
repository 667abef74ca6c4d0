import RecorderCore

/// The recorder's Opus timeline over a script of packets: TOC parsing (frame counts and durations),
/// gaps filled with concealment, timestamps going back or jumping. Per packet: two bytes of
/// timestamp step (signed) and a length-prefixed payload.
public func fuzzOpus(_ data: UnsafeRawBufferPointer) {
    var input = FuzzInput(data)
    var timeline = OpusTimeline()
    var timestamp: UInt32 = 0xFFFF_0000
    var sequenceNumber: UInt16 = 0
    while !input.isEmpty {
        let step = Int16(bitPattern: input.uint16())
        timestamp &+= UInt32(bitPattern: Int32(step) &* 48)
        let payload = Array(input.record())
        _ = OpusPacket.samples(payload)
        let packet = ReceivedPacket(sequenceNumber: sequenceNumber, timestamp: timestamp, payloadType: 111, payload: payload)
        sequenceNumber &+= 1
        for written in timeline.push(packet, lossBefore: step < 0) {
            guard written.samples > 0, !written.packet.isEmpty else { fuzzFailure("an empty Opus packet was written") }
        }
    }
}
