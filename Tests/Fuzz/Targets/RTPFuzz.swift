import RTC

/// One datagram as a media packet arrives: demultiplexed, validated as RTP, every header extension
/// read, the payload's keyframe test for each codec, the VP8 descriptor read and rewritten as the
/// SFU does, and the packet fed to receive statistics.
public func fuzzRTP(_ data: UnsafeRawBufferPointer) {
    _ = PacketKind.classify(data)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 1)
    defer { buffer.deallocate() }
    buffer.copyMemory(from: data)
    guard let packet = try? RTPPacketView(buffer: buffer, length: data.count) else { return }
    for id in UInt8(0)...15 {
        _ = packet.headerExtension(id: id)
        _ = packet.headerExtensionString(id: id)
        _ = packet.audioLevel(id: id)
        _ = packet.transportSequenceNumber(id: id)
        _ = packet.absoluteSendTime(id: id)
    }
    let payload = UnsafeMutableRawBufferPointer(rebasing: buffer[packet.payloadOffset..<(packet.payloadOffset + packet.payloadLength)])
    for codec in [VideoCodec.vp8, .vp9, .h264, .av1] {
        _ = VideoPayload.isKeyframe(codec, UnsafeRawBufferPointer(payload))
    }
    if let descriptor = VP8Descriptor(UnsafeRawBufferPointer(payload)) {
        descriptor.rewrite(payload, pictureID: 0x7FFF, tl0PicIdx: 0xFF)
        guard VP8Descriptor(UnsafeRawBufferPointer(payload)) != nil else { fuzzFailure("a rewritten VP8 descriptor no longer reads") }
    }
    var statistics = RTPReceiveStatistics(ssrc: packet.ssrc, clockRate: 90_000)
    statistics.update(sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, arrivalNanos: 1_000_000)
    statistics.update(sequenceNumber: packet.sequenceNumber &+ 0x8000, timestamp: ~packet.timestamp, arrivalNanos: 2_000_000)
    _ = statistics.reportBlock(now: 3_000_000)
    packet.rewrite(ssrc: ~packet.ssrc, sequenceNumber: ~packet.sequenceNumber, timestamp: ~packet.timestamp, payloadType: 111)
}
