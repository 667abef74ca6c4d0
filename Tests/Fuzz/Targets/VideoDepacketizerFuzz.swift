import RecorderCore
import RTC

/// The recorder's VP8 depacketizer and frame assembly, over a script of packets.
public func fuzzVP8(_ data: UnsafeRawBufferPointer) { assembleFrames(.vp8, data) }
/// The recorder's VP9 depacketizer (descriptor and uncompressed header) and frame assembly.
public func fuzzVP9(_ data: UnsafeRawBufferPointer) { assembleFrames(.vp9, data) }
/// The recorder's H.264 depacketizer (single NAL, STAP-A, FU-A, SPS parsing, avcC) and frame assembly.
public func fuzzH264(_ data: UnsafeRawBufferPointer) { assembleFrames(.h264, data) }
/// The recorder's AV1 depacketizer (aggregation header, OBU fragments, sequence header, av1C).
public func fuzzAV1(_ data: UnsafeRawBufferPointer) { assembleFrames(.av1, data) }

/// Feeds `codec`'s assembler the packets a script describes, as the reorder buffer would release
/// them: per packet one byte of flags (marker, loss before it, a new timestamp, a sequence gap)
/// and a length-prefixed payload.
private func assembleFrames(_ codec: VideoCodec, _ data: UnsafeRawBufferPointer) {
    var input = FuzzInput(data)
    var assembler = makeVideoFrameAssembler(codec)
    var sequenceNumber: UInt16 = 0xFFF0
    var timestamp: UInt32 = 0xFFFF_0000
    while !input.isEmpty {
        let flags = input.byte()
        if flags & 0x04 != 0 { timestamp &+= 3000 }
        if flags & 0x08 != 0 { sequenceNumber &+= UInt16(flags >> 4) }
        let packet = ReceivedPacket(sequenceNumber: sequenceNumber, timestamp: timestamp, marker: flags & 0x01 != 0,
                                    payload: Array(input.record()))
        sequenceNumber &+= 1
        for frame in assembler.push(packet, lossBefore: flags & 0x02 != 0) {
            guard !frame.data.isEmpty else { fuzzFailure("an empty \(codec) frame was assembled") }
        }
        _ = assembler.needsKeyframe
    }
    _ = assembler.codecPrivate
}
