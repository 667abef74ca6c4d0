extension RTCPPacket {
    /// Rewrites, in place, the SSRCs of the keyframe, NACK and REMB feedback in a compound datagram,
    /// as an SFU does when it relays a subscriber's feedback to the publisher of the stream.
    ///
    /// For PLI, FIR, generic NACK and REMB packets, the packet sender SSRC becomes `senderSSRC`
    /// (unless `nil`), and each media SSRC named (the media source field, FIR entries and REMB's
    /// source list) is replaced by what `mediaSSRC` returns for it (`nil` leaves it unchanged).
    /// Other packets are left untouched. The whole datagram is checked first with the same framing
    /// rules as `parseCompound`, so on error nothing has been written. Allocates nothing unless it throws.
    ///
    /// Returns how many feedback packets were rewritten.
    @discardableResult
    public static func rewriteFeedbackSSRCs(
        in datagram: UnsafeMutableRawBufferPointer, senderSSRC: UInt32?, mediaSSRC: (UInt32) -> UInt32?
    ) throws(RTCPError) -> Int {
        // Check every packet before writing anything.
        var frames = RTCPFrames(UnsafeRawBufferPointer(datagram))
        while let frame = try frames.next() {
            do throws(RTCPError) {
                _ = try FeedbackFields(frame)
            } catch {
                throw RTCPError(error.code, "packet at byte \(frame.offset): \(error.reason)")
            }
        }

        var rewritten = 0
        frames = RTCPFrames(UnsafeRawBufferPointer(datagram))
        while let frame = try frames.next() {
            guard let fields = try FeedbackFields(frame) else { continue }
            let packet = frame.offset + RTCPPacket.headerLength
            if let senderSSRC { store(senderSSRC, at: packet, in: datagram) }
            replace(at: packet + 4, in: datagram, mediaSSRC)
            for i in 0..<fields.count {
                replace(at: packet + fields.firstOffset + i * fields.stride, in: datagram, mediaSSRC)
            }
            rewritten += 1
        }
        return rewritten
    }

    private static func replace(at offset: Int, in datagram: UnsafeMutableRawBufferPointer, _ map: (UInt32) -> UInt32?) {
        let r = RTCPReader(UnsafeRawBufferPointer(datagram))
        if let new = map(r.u32(offset)) { store(new, at: offset, in: datagram) }
    }

    private static func store(_ value: UInt32, at offset: Int, in datagram: UnsafeMutableRawBufferPointer) {
        precondition(offset >= 0 && offset + 4 <= datagram.count, "RTCP write past the end")
        datagram.storeBigEndian(value, at: offset)
    }
}

/// Where the SSRCs inside a relayable feedback packet's FCI are: `count` of them, `stride` apart,
/// starting `firstOffset` bytes into the body. `nil` for packets that are not PLI, FIR, NACK or REMB.
private struct FeedbackFields {
    var firstOffset: Int
    var count: Int
    var stride: Int

    init?(_ frame: RTCPFrame) throws(RTCPError) {
        let body = frame.body
        switch (frame.packetType, frame.count) {
        case (.transportLayerFeedback, GenericNACK.format):
            _ = try GenericNACK.validate(body)
            self.init(firstOffset: 0, count: 0, stride: 4)
        case (.payloadSpecificFeedback, PictureLossIndication.format):
            _ = try FeedbackHeader.read(body, "a PLI")
            self.init(firstOffset: 0, count: 0, stride: 4)
        case (.payloadSpecificFeedback, FullIntraRequest.format):
            let count = try FullIntraRequest.validate(body)
            self.init(firstOffset: FeedbackHeader.length, count: count, stride: FullIntraRequest.entryLength)
        case (.payloadSpecificFeedback, REMB.format) where REMB.isREMB(body):
            let count = try REMB.validate(body)
            self.init(firstOffset: FeedbackHeader.length + REMB.fixedFCILength, count: count, stride: 4)
        default:
            return nil
        }
    }

    private init(firstOffset: Int, count: Int, stride: Int) {
        self.firstOffset = firstOffset
        self.count = count
        self.stride = stride
    }
}
