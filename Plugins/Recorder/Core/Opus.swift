/// Facts about one Opus packet (RFC 6716) that a recorder needs without decoding it.
public enum OpusPacket {
    /// Samples at 48 kHz in 120 ms, the most one Opus packet may hold (RFC 6716 §3.2.5).
    public static let maxSamples = 5760

    /// Samples at 48 kHz of one frame of TOC configuration `config` (RFC 6716 §3.1, table 2):
    /// SILK 10/20/40/60 ms, Hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
    public static func frameSamples(config: Int) -> Int {
        switch config {
        case 0...11: [480, 960, 1920, 2880][config & 3]
        case 12...15: [480, 960][config & 1]
        default: [120, 240, 480, 960][config & 3]
        }
    }

    /// Samples at 48 kHz of one Opus packet, from its TOC byte and frame count (RFC 6716 §3.1–3.2),
    /// or nil when the packet is malformed (empty, truncated, an odd code 1 length, no frames, or
    /// more than 120 ms).
    public static func samples(_ packet: UnsafeRawBufferPointer) -> Int? {
        guard let toc = packet.first else { return nil }
        let frames: Int
        switch toc & 0x03 {
        case 0:
            frames = 1
        case 1:  // two frames of equal size
            guard (packet.count - 1) % 2 == 0 else { return nil }
            frames = 2
        case 2:  // two frames, the first one's length follows the TOC
            guard packet.count >= 2 else { return nil }
            frames = 2
        default:  // code 3: the frame count is the low 6 bits of the next byte
            guard packet.count >= 2 else { return nil }
            frames = Int(packet[1] & 0x3F)
        }
        let total = frames * frameSamples(config: Int(toc >> 3))
        guard frames > 0, total <= maxSamples else { return nil }
        return total
    }

    public static func samples(_ packet: [UInt8]) -> Int? {
        packet.withUnsafeBytes { samples($0) }
    }

    /// Packets that make a decoder conceal `samples` of lost audio (RFC 7845 §4.1): code 3 packets
    /// (CBR, no padding) of zero-length frames, which a decoder treats as lost frames. They keep
    /// `toc`'s configuration and stereo bit, at most 120 ms each; what is left over when the gap is
    /// not a whole number of that frame size goes in shorter frames of the same mode and bandwidth,
    /// then CELT down to 2.5 ms. Less than 2.5 ms (120 samples) cannot be expressed and is left out:
    /// the returned samples then add up to less than asked, by under 120.
    public static func concealment(samples: Int, like toc: UInt8) -> [(packet: [UInt8], samples: Int)] {
        var remaining = max(samples, 0)
        var packets: [(packet: [UInt8], samples: Int)] = []
        for config in concealmentConfigs(like: Int(toc >> 3)) {
            let frame = frameSamples(config: config)
            while remaining >= frame {
                let count = min(maxSamples / frame, remaining / frame)
                let header = UInt8(config) << 3 | (toc & 0x04) | 0x03
                packets.append(([header, UInt8(count)], count * frame))
                remaining -= count * frame
            }
        }
        return packets
    }

    /// The configurations to conceal with, longest frames first: `config` itself, the shorter
    /// frames of its mode and bandwidth, then CELT frames of the nearest bandwidth.
    private static func concealmentConfigs(like config: Int) -> [Int] {
        let celtBase: Int
        var sameMode: [Int]
        switch config {
        case 0...11:  // SILK NB, MB, WB: 10, 20, 40, 60 ms
            let base = config & ~3
            sameMode = [base + 3, base + 2, base + 1, base]
            celtBase = [16, 20, 20][config / 4]
        case 12...15:  // Hybrid SWB, FB: 10, 20 ms
            let base = config & ~1
            sameMode = [base + 1, base]
            celtBase = config < 14 ? 24 : 28
        default:  // CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
            celtBase = config & ~3
            sameMode = []
        }
        sameMode = sameMode.filter { frameSamples(config: $0) <= frameSamples(config: config) }
        return [config] + sameMode + [celtBase + 3, celtBase + 2, celtBase + 1, celtBase]
    }
}

/// The audio timeline of one Opus stream: the packets to write, in order, with every gap (loss, or
/// DTX silence where the sender sent nothing) filled with concealment packets, so that the samples
/// written since the first packet always equal the extended RTP timestamp distance since it
/// (48 kHz). Ogg granule positions and A/V sync both rest on that.
///
/// A gap longer than `maxGapSamples`, or a timestamp going back more than a second, is not audio
/// that went missing but a discontinuity (the sender restarted its timestamps): nothing is filled,
/// `startsSegment` is set for that push, and the count carries on from the new timestamp. The caller
/// re-anchors its timestamp mapping there (a new offset from RTP time to file time).
public struct OpusTimeline: Sendable {
    public let maxGapSamples: Int64
    /// Samples written so far, concealment included.
    public private(set) var samplesWritten: Int64 = 0
    /// Whether the last `push` started a new segment at a discontinuity (or the first packet).
    public private(set) var startsSegment = false

    private var timestamps = WrapExtender<UInt32>()
    /// Where the next packet is expected: the end of the last one written.
    private var expected: Int64?
    private var lastTOC: UInt8 = 0
    /// Samples of a gap too short to conceal (under 2.5 ms), added to the next gap.
    private var owed: Int64 = 0

    /// `maxGapSamples`: 10 s by default.
    public init(maxGapSamples: Int64 = 480_000) {
        self.maxGapSamples = maxGapSamples
    }

    /// Feeds the next audio packet in sequence order (as the reorder buffer releases them). Returns
    /// what to write: concealment packets for any gap before it, then the packet, each with its
    /// sample count and extended RTP timestamp. Empty or malformed payloads and packets that overlap
    /// what was already written (a duplicate, or a sender's timestamp going back a little) give nothing.
    /// Gaps are measured by timestamps alone, since DTX leaves no sequence gap; `lossBefore` does
    /// not change what is written.
    public mutating func push(_ p: ReceivedPacket, lossBefore: Bool) -> [(packet: [UInt8], samples: Int, timestamp: Int64)] {
        startsSegment = false
        guard let samples = OpusPacket.samples(p.payload) else { return [] }
        let timestamp = timestamps.extend(p.timestamp)
        var out: [(packet: [UInt8], samples: Int, timestamp: Int64)] = []
        if let expected {
            // Wrapping, as the extended timestamps themselves wrap after 2^32 leaps of half the clock.
            let gap = timestamp &- expected
            if gap > maxGapSamples || gap < -48_000 {
                startsSegment = true
                owed = 0
            } else if gap < 0 {
                return []
            } else if gap > 0 || owed > 0 {
                var at = expected &- owed
                let fill = OpusPacket.concealment(samples: Int(gap + owed), like: lastTOC)
                for f in fill {
                    out.append((f.packet, f.samples, at))
                    at &+= Int64(f.samples)
                }
                let filled = fill.reduce(0) { $0 + $1.samples }
                samplesWritten += Int64(filled)
                owed = gap + owed - Int64(filled)
            }
        } else {
            startsSegment = true
        }
        out.append((p.payload, samples, timestamp))
        samplesWritten += Int64(samples)
        expected = timestamp &+ Int64(samples)
        lastTOC = p.payload[0]
        return out
    }
}
