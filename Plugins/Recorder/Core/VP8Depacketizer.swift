import RTC

/// VP8 over RTP (RFC 7741): the payload descriptors stripped and the partitions joined; a frame
/// starts at S=1 with partition index 0, and the VP8 payload header tells keyframes (RFC 6386 §9.1).
struct VP8Depacketizer: RTPDepacketizer {
    private var data: [UInt8] = []
    private var sawStart = false
    private var nonReference = false
    /// The picture id of the last packet that had one, and its width in bits (7 or 15).
    private var lastPictureID: (id: UInt16, is15Bit: Bool)?

    init() {}

    private static func descriptor(_ payload: [UInt8]) -> VP8Descriptor? {
        payload.withUnsafeBytes { VP8Descriptor($0) }
    }

    func beginsFrame(_ payload: [UInt8]) -> Bool {
        Self.descriptor(payload)?.startsFrame ?? false
    }

    /// Nothing but padding can have gone when this frame's picture id follows the last one.
    func framesMayBeLost(before payload: [UInt8]) -> Bool {
        guard let d = Self.descriptor(payload), d.pictureIDOffset != nil, let last = lastPictureID else { return true }
        let mask: UInt16 = last.is15Bit && d.pictureIDIs15Bit ? 0x7FFF : 0x7F
        return (d.pictureID &- last.id) & mask != 1
    }

    mutating func startFrame() {
        data.removeAll(keepingCapacity: true)
        sawStart = false
        nonReference = false
    }

    mutating func append(_ payload: [UInt8]) -> Bool {
        guard let d = Self.descriptor(payload) else { return false }
        if d.pictureIDOffset != nil { lastPictureID = (d.pictureID, d.pictureIDIs15Bit) }
        if payload[0] & 0x20 != 0 { nonReference = true }  // N
        if d.startsFrame {
            guard !sawStart else { return false }
            sawStart = true
        } else if !sawStart {
            return false
        }
        data.append(contentsOf: payload[d.length...])
        return true
    }

    var frameMayBeReference: Bool { !nonReference }

    mutating func finishFrame() -> FrameOutcome {
        guard sawStart, data.count >= 3 else { return .unusable }
        // The payload header's P bit is 0 on a keyframe, which then carries the start code 9D 01 2A
        // and two 16-bit little-endian fields: 14 bits of size, 2 bits of scale.
        guard data[0] & 0x01 == 0 else { return .frame(data: data, isKeyframe: false, width: nil, height: nil) }
        guard data.count >= 10, data[3] == 0x9D, data[4] == 0x01, data[5] == 0x2A else { return .unusable }
        let width = (Int(data[6]) | Int(data[7]) << 8) & 0x3FFF
        let height = (Int(data[8]) | Int(data[9]) << 8) & 0x3FFF
        return .frame(data: data, isKeyframe: true, width: width, height: height)
    }
}
