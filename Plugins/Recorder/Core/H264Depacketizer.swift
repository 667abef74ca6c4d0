/// H.264 over RTP (RFC 6184, packetization-mode 1): single NAL units, STAP-A and FU-A joined into
/// one access unit in AVCC form (4-byte big-endian lengths), as Matroska and MP4 store it.
/// Access unit delimiters and filler are dropped; in-band SPS and PPS stay in the samples, and the
/// first ones seen make the avcC.
struct H264Depacketizer: RTPDepacketizer {
    private var data: [UInt8] = []
    /// The NAL being rebuilt from FU-A fragments.
    private var fragment: [UInt8]?
    private var hasIDR = false
    private var sawSlice = false
    private var sawReferenceSlice = false
    private var sps: [UInt8]?
    private var pps: [UInt8]?
    private var size: (width: Int, height: Int)?
    private(set) var codecPrivate: [UInt8]?

    init() {}

    /// After a loss, an access unit is known whole when it opens with an AUD or an SPS, or with the
    /// first slice of a picture (first_mb_in_slice = 0, whose ue(v) is the single bit 1).
    func beginsFrame(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 2 else { return false }
        var header = payload[0]
        var body = 1
        switch payload[0] & 0x1F {
        case 24:
            guard payload.count >= 4 else { return false }
            header = payload[3]
            body = 4
        case 28:
            guard payload[1] & 0x80 != 0 else { return false }
            header = payload[0] & 0xE0 | payload[1] & 0x1F
            body = 2
        default:
            break
        }
        switch header & 0x1F {
        case 7, 9: return true
        case 1, 5: return body < payload.count && payload[body] & 0x80 != 0
        default: return false
        }
    }

    mutating func startFrame() {
        data.removeAll(keepingCapacity: true)
        fragment = nil
        hasIDR = false
        sawSlice = false
        sawReferenceSlice = false
    }

    mutating func append(_ payload: [UInt8]) -> Bool {
        guard payload.count >= 2 else { return false }
        let type = payload[0] & 0x1F
        switch type {
        case 1...23:
            guard fragment == nil else { return false }
            add(payload[...])
        case 24:  // STAP-A: [16-bit size][NAL] repeated
            guard fragment == nil else { return false }
            var o = 1
            while o < payload.count {
                guard o + 2 <= payload.count else { return false }
                let size = Int(payload[o]) << 8 | Int(payload[o + 1])
                guard size > 0, o + 2 + size <= payload.count else { return false }
                add(payload[(o + 2)..<(o + 2 + size)])
                o += 2 + size
            }
        case 28:  // FU-A: indicator F|NRI|28, header S|E|R|type
            let fuHeader = payload[1]
            // Any fragment tells the slice's kind, so a frame missing its first one is still judged.
            noteSlice(payload[0] & 0xE0 | fuHeader & 0x1F)
            if fuHeader & 0x80 != 0 {
                guard fragment == nil else { return false }
                fragment = [payload[0] & 0xE0 | fuHeader & 0x1F]
            } else if fragment == nil {
                return false
            }
            fragment!.append(contentsOf: payload[2...])
            if fuHeader & 0x40 != 0 {
                add(fragment![...])
                fragment = nil
            }
        default:  // STAP-B, MTAP, FU-B belong to interleaved mode; 0, 30, 31 are reserved
            return false
        }
        return true
    }

    private mutating func add(_ nal: ArraySlice<UInt8>) {
        guard let header = nal.first else { return }
        let type = header & 0x1F
        switch type {
        case 9, 12:  // access unit delimiter, filler
            return
        case 1...5:
            noteSlice(header)
        case 7:
            if let parsed = H264SequenceParameterSet(nal: nal) { size = (parsed.width, parsed.height) }
            if sps == nil { sps = Array(nal) }
        case 8:
            if pps == nil { pps = Array(nal) }
        default:
            break
        }
        let n = nal.count
        data.append(contentsOf: [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)])
        data.append(contentsOf: nal)
        if codecPrivate == nil, let sps, let pps { codecPrivate = H264SequenceParameterSet.avcC(sps: sps, pps: pps) }
    }

    private mutating func noteSlice(_ header: UInt8) {
        let type = header & 0x1F
        guard (1...5).contains(type) else { return }
        sawSlice = true
        if header & 0x60 != 0 { sawReferenceSlice = true }
        if type == 5 { hasIDR = true }
    }

    /// nal_ref_idc 0 on every slice seen: no other picture refers to this one.
    var frameMayBeReference: Bool { !sawSlice || sawReferenceSlice }

    mutating func finishFrame() -> FrameOutcome {
        guard fragment == nil else { return .unusable }  // an FU-A without its end
        guard !data.isEmpty else { return .empty }
        guard hasIDR else { return .frame(data: data, isKeyframe: false, width: nil, height: nil) }
        // An IDR is no use to a decoder that has not seen its parameter sets.
        guard codecPrivate != nil else { return .unusable }
        return .frame(data: data, isKeyframe: true, width: size?.width, height: size?.height)
    }
}

/// What the recorder reads from an H.264 sequence parameter set (H.264 §7.3.2.1.1): the profile
/// fields of the avcC and the picture size after cropping.
public struct H264SequenceParameterSet: Equatable {
    var profileIDC: UInt8
    var constraintFlags: UInt8
    var levelIDC: UInt8
    var chromaFormatIDC = 1
    var bitDepthLumaMinus8 = 0
    var bitDepthChromaMinus8 = 0
    var width: Int
    var height: Int

    /// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
    static let highProfiles: Set<UInt8> = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]

    /// Parses the SPS NAL unit `nal` (header byte included, emulation prevention still in).
    init?<Bytes: Collection<UInt8>>(nal: Bytes) {
        let rbsp = Self.removingEmulationPrevention(nal.dropFirst())
        guard rbsp.count >= 4 else { return nil }
        profileIDC = rbsp[0]
        constraintFlags = rbsp[1]
        levelIDC = rbsp[2]
        var r = BitReader(rbsp.dropFirst(3))
        do {
            _ = try r.ue()  // seq_parameter_set_id
            var separateColourPlane = false
            if Self.highProfiles.contains(profileIDC) {
                chromaFormatIDC = try r.ue()
                if chromaFormatIDC == 3 { separateColourPlane = try r.bit() }
                bitDepthLumaMinus8 = try r.ue()
                bitDepthChromaMinus8 = try r.ue()
                try r.skip(1)  // qpprime_y_zero_transform_bypass_flag
                if try r.bit() {  // seq_scaling_matrix_present_flag
                    for i in 0..<(chromaFormatIDC != 3 ? 8 : 12) {
                        if try r.bit() { try Self.skipScalingList(&r, size: i < 6 ? 16 : 64) }
                    }
                }
            }
            _ = try r.ue()  // log2_max_frame_num_minus4
            switch try r.ue() {  // pic_order_cnt_type
            case 0:
                _ = try r.ue()  // log2_max_pic_order_cnt_lsb_minus4
            case 1:
                try r.skip(1)  // delta_pic_order_always_zero_flag
                _ = try r.se()  // offset_for_non_ref_pic
                _ = try r.se()  // offset_for_top_to_bottom_field
                let cycle = try r.ue()
                guard cycle < 256 else { return nil }
                for _ in 0..<cycle { _ = try r.se() }
            default:
                break
            }
            _ = try r.ue()  // max_num_ref_frames
            try r.skip(1)  // gaps_in_frame_num_value_allowed_flag
            let widthInMBs = try r.ue() + 1
            let heightInMapUnits = try r.ue() + 1
            let frameMBsOnly = try r.bit()
            if !frameMBsOnly { try r.skip(1) }  // mb_adaptive_frame_field_flag
            try r.skip(1)  // direct_8x8_inference_flag
            var crop = (left: 0, right: 0, top: 0, bottom: 0)
            if try r.bit() {
                crop = (try r.ue(), try r.ue(), try r.ue(), try r.ue())
            }
            // Crop units (H.264 §7.4.2.1.1): chroma samples unless there is no chroma array.
            let chromaArrayType = separateColourPlane ? 0 : chromaFormatIDC
            let fieldFactor = frameMBsOnly ? 1 : 2
            let cropX = chromaArrayType == 0 ? 1 : (chromaFormatIDC == 3 ? 1 : 2)
            let cropY = (chromaArrayType == 0 ? 1 : (chromaFormatIDC == 1 ? 2 : 1)) * fieldFactor
            width = widthInMBs * 16 - cropX * (crop.left + crop.right)
            height = heightInMapUnits * 16 * fieldFactor - cropY * (crop.top + crop.bottom)
            guard width > 0, height > 0 else { return nil }
        } catch {
            return nil
        }
    }

    /// scaling_list() (H.264 §7.3.2.1.1.1): read to get past it; the values are of no use here.
    private static func skipScalingList(_ r: inout BitReader, size: Int) throws(BitReader.Overrun) {
        var last = 8
        var next = 8
        for _ in 0..<size where next != 0 {
            next = (last + (try r.se()) + 256) % 256
            if next != 0 { last = next }
        }
    }

    /// The RBSP of a NAL unit's payload: each 00 00 03 loses its 03.
    static func removingEmulationPrevention<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var zeros = 0
        for b in bytes {
            if zeros >= 2 && b == 3 {
                zeros = 0
                continue
            }
            zeros = b == 0 ? zeros + 1 : 0
            out.append(b)
        }
        return out
    }

    /// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) of one SPS and one PPS, with
    /// 4-byte NAL lengths, and the chroma and bit-depth fields every profile beyond Baseline, Main
    /// and Extended adds.
    public static func avcC(sps: [UInt8], pps: [UInt8]) -> [UInt8]? {
        guard sps.count >= 4, sps.count <= 0xFFFF, pps.count <= 0xFFFF, !pps.isEmpty else { return nil }
        var out: [UInt8] = [1, sps[1], sps[2], sps[3], 0xFC | 3, 0xE0 | 1]
        out += [UInt8(sps.count >> 8), UInt8(sps.count & 0xFF)] + sps
        out += [1, UInt8(pps.count >> 8), UInt8(pps.count & 0xFF)] + pps
        if ![66, 77, 88].contains(sps[1]) {
            guard let parsed = H264SequenceParameterSet(nal: sps) else { return nil }
            out += [
                0xFC | UInt8(parsed.chromaFormatIDC & 3), 0xF8 | UInt8(parsed.bitDepthLumaMinus8 & 7),
                0xF8 | UInt8(parsed.bitDepthChromaMinus8 & 7), 0,  // numOfSequenceParameterSetExt
            ]
        }
        return out
    }
}
