/// The VP9 payload descriptor (RFC 9628 §4.2) of one packet, with its scalability structure.
struct VP9Descriptor {
    var pictureID: UInt16?
    var pictureIDIs15Bit = false
    /// P: inter-picture predicted.
    var interPredicted = false
    /// B and E: the first and last packet of a layer frame.
    var beginsLayerFrame = false
    var endsLayerFrame = false
    /// SID, 0 without layer indices.
    var spatialID = 0
    /// Sizes of the spatial layers from the scalability structure, when it is there with Y=1.
    var layerSizes: [(width: Int, height: Int)] = []
    /// Length of the descriptor; the VP9 data follows.
    var length = 1

    init?(_ p: [UInt8]) {
        guard let b0 = p.first else { return nil }
        interPredicted = b0 & 0x40 != 0
        beginsLayerFrame = b0 & 0x08 != 0
        endsLayerFrame = b0 & 0x04 != 0
        let flexible = b0 & 0x10 != 0
        var o = 1
        func byte() -> UInt8? {
            guard o < p.count else { return nil }
            defer { o += 1 }
            return p[o]
        }
        if b0 & 0x80 != 0 {  // I: picture id, M + 7 or 15 bits
            guard let first = byte() else { return nil }
            if first & 0x80 != 0 {
                guard let second = byte() else { return nil }
                pictureIDIs15Bit = true
                pictureID = UInt16(first & 0x7F) << 8 | UInt16(second)
            } else {
                pictureID = UInt16(first)
            }
        }
        if b0 & 0x20 != 0 {  // L: TID(3) U SID(3) D, then TL0PICIDX in non-flexible mode
            guard let layers = byte() else { return nil }
            spatialID = Int(layers >> 1 & 0x07)
            if !flexible { guard byte() != nil else { return nil } }
        }
        if flexible, interPredicted {  // up to 3 reference indices P_DIFF(7) N(1)
            for _ in 0..<3 {
                guard let diff = byte() else { return nil }
                if diff & 0x01 == 0 { break }
            }
        }
        if b0 & 0x02 != 0 {  // V: scalability structure N_S(3) Y G, sizes, picture group
            guard let ss = byte() else { return nil }
            let layerCount = Int(ss >> 5) + 1
            if ss & 0x10 != 0 {
                for _ in 0..<layerCount {
                    guard let w0 = byte(), let w1 = byte(), let h0 = byte(), let h1 = byte() else { return nil }
                    layerSizes.append((Int(w0) << 8 | Int(w1), Int(h0) << 8 | Int(h1)))
                }
            }
            if ss & 0x08 != 0 {
                guard let groupSize = byte() else { return nil }
                for _ in 0..<groupSize {
                    guard let picture = byte() else { return nil }
                    for _ in 0..<Int(picture >> 2 & 0x03) { guard byte() != nil else { return nil } }
                }
            }
        }
        length = o
    }
}

/// VP9 over RTP (RFC 9628): layer frames from B to E with descriptors stripped; the layer frames of
/// one picture (spatial layers, same timestamp) joined with a superframe index (VP9 Annex B).
struct VP9Depacketizer: RTPDepacketizer {
    private var layerFrames: [[UInt8]] = []
    private var layerOpen = false
    private var isKeyframe = false
    private var highestSpatialID = 0
    private var layerSizes: [(width: Int, height: Int)] = []
    private var lastPictureID: (id: UInt16, is15Bit: Bool)?

    init() {}

    func beginsFrame(_ payload: [UInt8]) -> Bool {
        guard let d = VP9Descriptor(payload) else { return false }
        return d.beginsLayerFrame && d.spatialID == 0
    }

    /// The spatial layers of a picture share its picture id, so the next picture's follows by one.
    func framesMayBeLost(before payload: [UInt8]) -> Bool {
        guard let d = VP9Descriptor(payload), let id = d.pictureID, let last = lastPictureID else { return true }
        let mask: UInt16 = last.is15Bit && d.pictureIDIs15Bit ? 0x7FFF : 0x7F
        return (id &- last.id) & mask != 1
    }

    mutating func startFrame() {
        layerFrames.removeAll(keepingCapacity: true)
        layerOpen = false
        isKeyframe = false
        highestSpatialID = 0
        layerSizes = []
    }

    mutating func append(_ payload: [UInt8]) -> Bool {
        guard let d = VP9Descriptor(payload) else { return false }
        if let id = d.pictureID { lastPictureID = (id, d.pictureIDIs15Bit) }
        if !d.layerSizes.isEmpty { layerSizes = d.layerSizes }
        if d.beginsLayerFrame {
            guard !layerOpen else { return false }  // the previous layer frame never ended
            if layerFrames.isEmpty { isKeyframe = !d.interPredicted && d.spatialID == 0 }
            layerFrames.append([])
            layerOpen = true
            highestSpatialID = max(highestSpatialID, d.spatialID)
        } else if !layerOpen {
            return false
        }
        layerFrames[layerFrames.count - 1].append(contentsOf: payload[d.length...])
        if d.endsLayerFrame { layerOpen = false }
        return true
    }

    var frameMayBeReference: Bool { true }

    mutating func finishFrame() -> FrameOutcome {
        // A picture whose last packet lacks E (some senders set only the marker) still ends there.
        guard let first = layerFrames.first, !first.isEmpty else { return .unusable }
        let data = layerFrames.count == 1 ? first : Self.superframe(layerFrames)
        guard isKeyframe else { return .frame(data: data, isKeyframe: false, width: nil, height: nil) }
        var size: (width: Int, height: Int)?
        if !layerSizes.isEmpty {
            size = layerSizes[min(highestSpatialID, layerSizes.count - 1)]
        } else if layerFrames.count == 1 {
            size = VP9UncompressedHeader.keyframeSize(first)
        }
        return .frame(data: data, isKeyframe: true, width: size?.width, height: size?.height)
    }

    /// The layer frames followed by a superframe index (VP9 bitstream Annex B): a marker byte
    /// 0b110 | bytes per size - 1 (2 bits) | frames - 1 (3 bits), the sizes little-endian, the marker again.
    static func superframe(_ frames: [[UInt8]]) -> [UInt8] {
        let frames = frames.prefix(8)
        let largest = frames.map(\.count).max() ?? 0
        let bytesPerSize = largest < 1 << 8 ? 1 : largest < 1 << 16 ? 2 : largest < 1 << 24 ? 3 : 4
        let marker = 0xC0 | UInt8(bytesPerSize - 1) << 3 | UInt8(frames.count - 1)
        var out: [UInt8] = []
        out.reserveCapacity(frames.reduce(0) { $0 + $1.count } + 2 + bytesPerSize * frames.count)
        for f in frames { out.append(contentsOf: f) }
        out.append(marker)
        for f in frames {
            for i in 0..<bytesPerSize { out.append(UInt8(truncatingIfNeeded: f.count >> (8 * i))) }
        }
        out.append(marker)
        return out
    }
}

/// The start of the VP9 uncompressed header (VP9 bitstream §6.2), far enough for a keyframe's size.
enum VP9UncompressedHeader {
    /// The frame size of a keyframe, or nil when `frame` is not a keyframe or does not parse.
    static func keyframeSize(_ frame: [UInt8]) -> (width: Int, height: Int)? {
        var r = BitReader(frame)
        do {
            guard try r.int(2) == 2 else { return nil }  // frame_marker
            let low = try r.int(1)
            let profile = try r.int(1) << 1 | low
            if profile == 3 { try r.skip(1) }
            guard try !r.bit() else { return nil }  // show_existing_frame
            guard try !r.bit() else { return nil }  // frame_type: 0 is KEY_FRAME
            try r.skip(2)  // show_frame, error_resilient_mode
            guard try r.bits(24) == 0x49_83_42 else { return nil }  // frame_sync_code
            if profile >= 2 { try r.skip(1) }  // ten_or_twelve_bit
            let colorSpace = try r.int(3)
            if colorSpace != 7 {  // not CS_RGB
                try r.skip(1)  // color_range
                if profile == 1 || profile == 3 { try r.skip(3) }  // subsampling_x, subsampling_y, reserved
            } else if profile == 1 || profile == 3 {
                try r.skip(1)
            }
            let width = try r.int(16) + 1
            let height = try r.int(16) + 1
            return (width, height)
        } catch {
            return nil
        }
    }
}
