/// AV1 over RTP (AOMedia "RTP Payload Format for AV1"): OBU elements of the aggregation header's
/// packets joined across fragments, temporal delimiters dropped, and every OBU written with
/// obu_has_size_field = 1: one temporal unit, as a Matroska block holds it (Matroska AV1 mapping).
struct AV1Depacketizer: RTPDepacketizer {
    private var data: [UInt8] = []
    /// The OBU element continued from the previous packet (that packet's Y bit).
    private var partial: [UInt8]?
    private var startsSequence = false
    private var sawSequenceHeader = false
    /// The frame type of the temporal unit's first frame header: true for KEY_FRAME.
    private var firstFrameIsKey: Bool?
    private var sequence: AV1SequenceHeader?
    private var packets = 0
    private(set) var codecPrivate: [UInt8]?

    init() {}

    enum OBUType {
        static let sequenceHeader: UInt8 = 1
        static let temporalDelimiter: UInt8 = 2
        static let frameHeader: UInt8 = 3
        static let frame: UInt8 = 6
        static let tileList: UInt8 = 8
        static let padding: UInt8 = 15
    }

    /// A packet opens a temporal unit when it has N, or when its first element is not a
    /// continuation (Z=0) and is a sequence header, or the base layer's frame (header).
    func beginsFrame(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 2 else { return false }
        let aggregation = payload[0]
        if aggregation & 0x08 != 0 { return true }
        guard aggregation & 0x80 == 0 else { return false }
        var o = 1
        if aggregation & 0x30 != 0x10 {  // the first element has a length unless it is the only one
            guard let (_, n) = LEB128.read(payload, at: o) else { return false }
            o += n
        }
        guard o < payload.count else { return false }
        let header = payload[o]
        let type = header >> 3 & 0x0F
        if type == OBUType.sequenceHeader || type == OBUType.temporalDelimiter { return true }
        guard type == OBUType.frameHeader || type == OBUType.frame else { return false }
        guard header & 0x04 != 0 else { return true }  // no extension: one spatial layer
        return o + 1 < payload.count && payload[o + 1] >> 3 & 0x03 == 0  // spatial_id 0
    }

    mutating func startFrame() {
        data.removeAll(keepingCapacity: true)
        partial = nil
        startsSequence = false
        sawSequenceHeader = false
        firstFrameIsKey = nil
        packets = 0
    }

    mutating func append(_ payload: [UInt8]) -> Bool {
        guard let aggregation = payload.first else { return false }
        let continues = aggregation & 0x80 != 0  // Z
        let willContinue = aggregation & 0x40 != 0  // Y
        let count = Int(aggregation >> 4 & 0x03)  // W: 0 means every element has a length
        if packets == 0, aggregation & 0x08 != 0 { startsSequence = true }
        packets += 1
        // Z must pick up exactly where the previous packet's Y left an element open.
        guard continues == (partial != nil) else {
            partial = nil
            return false
        }
        var o = 1
        var index = 0
        while o < payload.count {
            let length: Int
            if count != 0 && index == count - 1 {
                length = payload.count - o
            } else {
                guard let (value, n) = LEB128.read(payload, at: o) else { return false }
                o += n
                length = value
            }
            guard length >= 0, o + length <= payload.count else { return false }
            let element = payload[o..<(o + length)]
            o += length
            if index == 0 && continues {
                partial!.append(contentsOf: element)
            } else {
                partial = Array(element)
            }
            index += 1
            if o >= payload.count && willContinue { break }
            guard let obu = partial else { return false }
            partial = nil
            guard addOBU(obu) else { return false }
        }
        if count != 0 && index != count { return false }
        return true
    }

    /// Adds one whole OBU to the temporal unit, rewritten with a size field.
    private mutating func addOBU(_ obu: [UInt8]) -> Bool {
        guard let header = obu.first, header & 0x80 == 0 else { return obu.isEmpty }
        let type = header >> 3 & 0x0F
        let headerLength = header & 0x04 != 0 ? 2 : 1
        guard obu.count >= headerLength else { return false }
        var start = headerLength
        var end = obu.count
        if header & 0x02 != 0 {  // a size field after all: take the OBU it bounds
            guard let (size, n) = LEB128.read(obu, at: headerLength), headerLength + n + size <= obu.count else { return false }
            start = headerLength + n
            end = start + size
        }
        switch type {
        case OBUType.temporalDelimiter, OBUType.tileList, OBUType.padding:
            return true
        case OBUType.sequenceHeader:
            sawSequenceHeader = true
            if let parsed = AV1SequenceHeader(obu[start..<end]) {
                sequence = parsed
                if codecPrivate == nil {
                    codecPrivate = parsed.av1C(sequenceHeaderOBU: Self.withSizeField(obu, headerLength: headerLength, payload: start..<end))
                }
            }
        case OBUType.frameHeader, OBUType.frame:
            if firstFrameIsKey == nil {
                var r = BitReader(obu[start..<end])
                if sequence?.reducedStillPictureHeader == true {
                    firstFrameIsKey = true
                } else if let showExisting = try? r.bit(), let frameType = try? r.int(2) {
                    firstFrameIsKey = !showExisting && frameType == 0
                }
            }
        default:
            break
        }
        data.append(contentsOf: Self.withSizeField(obu, headerLength: headerLength, payload: start..<end))
        return true
    }

    private static func withSizeField(_ obu: [UInt8], headerLength: Int, payload: Range<Int>) -> [UInt8] {
        var out: [UInt8] = [obu[0] | 0x02]
        out.reserveCapacity(payload.count + 2 + 8)
        if headerLength == 2 { out.append(obu[1]) }
        LEB128.append(payload.count, to: &out)
        out.append(contentsOf: obu[payload])
        return out
    }

    var frameMayBeReference: Bool { true }

    mutating func finishFrame() -> FrameOutcome {
        guard partial == nil else { return .unusable }  // the last OBU never ended
        guard !data.isEmpty else { return .empty }
        let isKeyframe = startsSequence || (sawSequenceHeader && firstFrameIsKey == true)
        guard isKeyframe else { return .frame(data: data, isKeyframe: false, width: nil, height: nil) }
        guard codecPrivate != nil else { return .unusable }
        return .frame(data: data, isKeyframe: true, width: sequence?.maxFrameWidth, height: sequence?.maxFrameHeight)
    }
}

/// What the recorder reads from an AV1 sequence header OBU (AV1 §5.5): the av1C fields and the
/// maximum frame size.
struct AV1SequenceHeader: Equatable {
    var profile = 0
    var levelIndex = 0
    var tier = 0
    var highBitdepth = false
    var twelveBit = false
    var monochrome = false
    var subsamplingX = true
    var subsamplingY = true
    var chromaSamplePosition = 0
    var maxFrameWidth = 0
    var maxFrameHeight = 0
    var reducedStillPictureHeader = false

    /// Parses the payload of a sequence header OBU (after its header and size).
    init?<Bytes: Collection<UInt8>>(_ payload: Bytes) {
        var r = BitReader(payload)
        do {
            profile = try r.int(3)
            try r.skip(1)  // still_picture
            reducedStillPictureHeader = try r.bit()
            if reducedStillPictureHeader {
                levelIndex = try r.int(5)
            } else {
                var decoderModelInfo = false
                var bufferDelayLength = 0
                if try r.bit() {  // timing_info_present_flag
                    try r.skip(64)  // num_units_in_display_tick, time_scale
                    if try r.bit() { _ = try r.uvlc() }  // equal_picture_interval: num_ticks_per_picture_minus_1
                    decoderModelInfo = try r.bit()
                    if decoderModelInfo {
                        bufferDelayLength = try r.int(5) + 1
                        try r.skip(32 + 5 + 5)  // num_units_in_decoding_tick, two length fields
                    }
                }
                let initialDisplayDelay = try r.bit()
                let operatingPoints = try r.int(5) + 1
                for i in 0..<operatingPoints {
                    try r.skip(12)  // operating_point_idc
                    let level = try r.int(5)
                    let tier = level > 7 ? try r.int(1) : 0
                    if i == 0 {
                        levelIndex = level
                        self.tier = tier
                    }
                    if decoderModelInfo, try r.bit() {  // decoder_model_present_for_this_op
                        try r.skip(2 * bufferDelayLength + 1)
                    }
                    if initialDisplayDelay, try r.bit() { try r.skip(4) }
                }
            }
            let widthBits = try r.int(4) + 1
            let heightBits = try r.int(4) + 1
            maxFrameWidth = try r.int(widthBits) + 1
            maxFrameHeight = try r.int(heightBits) + 1
            if !reducedStillPictureHeader, try r.bit() {  // frame_id_numbers_present_flag
                try r.skip(4 + 3)
            }
            try r.skip(3)  // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
            if !reducedStillPictureHeader {
                try r.skip(4)  // interintra_compound, masked_compound, warped_motion, dual_filter
                let orderHint = try r.bit()
                if orderHint { try r.skip(2) }  // jnt_comp, ref_frame_mvs
                let chooseScreenContentTools = try r.bit()
                let forceScreenContentTools = chooseScreenContentTools ? 2 : try r.int(1)
                if forceScreenContentTools > 0, try !r.bit() {  // seq_choose_integer_mv
                    try r.skip(1)  // seq_force_integer_mv
                }
                if orderHint { try r.skip(3) }  // order_hint_bits_minus_1
            }
            try r.skip(3)  // enable_superres, enable_cdef, enable_restoration
            // color_config (AV1 §5.5.2)
            highBitdepth = try r.bit()
            if profile == 2 && highBitdepth { twelveBit = try r.bit() }
            monochrome = profile == 1 ? false : try r.bit()
            var primaries = 2
            var transfer = 2
            var matrix = 2
            if try r.bit() {  // color_description_present_flag
                primaries = try r.int(8)
                transfer = try r.int(8)
                matrix = try r.int(8)
            }
            if monochrome {
                subsamplingX = true
                subsamplingY = true
            } else if primaries == 1 && transfer == 13 && matrix == 0 {  // sRGB: 4:4:4
                subsamplingX = false
                subsamplingY = false
            } else {
                try r.skip(1)  // color_range
                switch profile {
                case 0:
                    subsamplingX = true
                    subsamplingY = true
                case 1:
                    subsamplingX = false
                    subsamplingY = false
                default:
                    if twelveBit {
                        subsamplingX = try r.bit()
                        subsamplingY = subsamplingX ? try r.bit() : false
                    } else {
                        subsamplingX = true
                        subsamplingY = false
                    }
                }
                if subsamplingX && subsamplingY { chromaSamplePosition = try r.int(2) }
            }
        } catch {
            return nil
        }
    }

    /// The AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3, the Matroska CodecPrivate): marker and
    /// version, profile and level, the colour format flags, no initial presentation delay, then
    /// `sequenceHeaderOBU` (with its size field).
    func av1C(sequenceHeaderOBU: [UInt8]) -> [UInt8] {
        func flag(_ b: Bool, _ shift: Int) -> UInt8 { b ? 1 << shift : 0 }
        let flags = UInt8(tier & 1) << 7 | flag(highBitdepth, 6) | flag(twelveBit, 5) | flag(monochrome, 4)
            | flag(subsamplingX, 3) | flag(subsamplingY, 2) | UInt8(chromaSamplePosition & 3)
        return [0x81, UInt8(profile & 7) << 5 | UInt8(levelIndex & 0x1F), flags, 0] + sequenceHeaderOBU
    }
}
