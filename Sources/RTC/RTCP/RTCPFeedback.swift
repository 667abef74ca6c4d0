/// The part every RTPFB and PSFB packet shares (RFC 4585 §6.1): the two SSRCs before the FCI.
enum FeedbackHeader {
    static let length = 8

    static func begin(format: UInt8, type: RTCPPacketType, sender: UInt32, media: UInt32, into out: inout [UInt8]) -> Int {
        let start = RTCPWriter.beginPacket(count: format, type: type, into: &out)
        out.appendBigEndian(sender)
        out.appendBigEndian(media)
        return start
    }

    static func read(_ r: RTCPReader, _ what: String) throws(RTCPError) -> (sender: UInt32, media: UInt32) {
        try r.require(length, what)
        return (r.u32(0), r.u32(4))
    }
}

/// Generic NACK (RTPFB FMT 1, RFC 4585 §6.2.1): RTP sequence numbers the receiver is missing.
public struct GenericNACK: Sendable, Equatable {
    static let format: UInt8 = 1

    /// One FCI entry: a lost packet id and a bitmask of the 16 packets after it that are lost too.
    public struct Item: Sendable, Equatable {
        public var packetID: UInt16
        /// Bit i set means `packetID + i + 1` is lost as well (BLP).
        public var lostBitmask: UInt16

        public init(packetID: UInt16, lostBitmask: UInt16 = 0) {
            self.packetID = packetID
            self.lostBitmask = lostBitmask
        }
    }

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var items: [Item]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, items: [Item]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.items = items
    }

    /// A NACK for these sequence numbers, given in ascending order (modulo 2^16).
    public init(senderSSRC: UInt32, mediaSSRC: UInt32, lostSequenceNumbers: some Sequence<UInt16>) {
        self.init(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, items: Self.items(lostSequenceNumbers: lostSequenceNumbers))
    }

    /// The lost sequence numbers the items name, in order.
    public var lostSequenceNumbers: [UInt16] { Self.lostSequenceNumbers(items) }

    /// The compact PID/BLP encoding of sequence numbers given in ascending order (modulo 2^16):
    /// each item covers its packet id and the 16 that follow it.
    public static func items(lostSequenceNumbers: some Sequence<UInt16>) -> [Item] {
        var items: [Item] = []
        for seq in lostSequenceNumbers {
            if let last = items.last {
                let distance = seq &- last.packetID
                if distance == 0 { continue }
                if distance <= 16 {
                    items[items.count - 1].lostBitmask |= 1 << (distance - 1)
                    continue
                }
            }
            items.append(Item(packetID: seq))
        }
        return items
    }

    /// The sequence numbers a list of PID/BLP items names, in order.
    public static func lostSequenceNumbers(_ items: [Item]) -> [UInt16] {
        var out: [UInt16] = []
        for item in items {
            out.append(item.packetID)
            for bit in 0..<16 where item.lostBitmask & (1 << bit) != 0 {
                out.append(item.packetID &+ UInt16(bit + 1))
            }
        }
        return out
    }

    /// Checks the sizes and returns the number of items.
    static func validate(_ r: RTCPReader) throws(RTCPError) -> Int {
        _ = try FeedbackHeader.read(r, "a NACK")
        let fci = r.count - FeedbackHeader.length
        guard fci % 4 == 0 else { throw RTCPError(.malformed, "NACK FCI of \(fci) bytes is not a whole number of items") }
        return fci / 4
    }

    init(body r: RTCPReader) throws(RTCPError) {
        _ = try Self.validate(r)
        (senderSSRC, mediaSSRC) = (r.u32(0), r.u32(4))
        items = stride(from: FeedbackHeader.length, to: r.count, by: 4).map { Item(packetID: r.u16($0), lostBitmask: r.u16($0 + 2)) }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = FeedbackHeader.begin(format: Self.format, type: .transportLayerFeedback, sender: senderSSRC, media: mediaSSRC, into: &out)
        for item in items {
            out.appendBigEndian(item.packetID)
            out.appendBigEndian(item.lostBitmask)
        }
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// Picture loss indication (PLI, PSFB FMT 1, RFC 4585 §6.3.1): the receiver needs a keyframe.
public struct PictureLossIndication: Sendable, Equatable {
    static let format: UInt8 = 1

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32

    public init(senderSSRC: UInt32, mediaSSRC: UInt32) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
    }

    init(body r: RTCPReader) throws(RTCPError) {
        // PLI has no FCI; anything after the SSRCs is ignored, as libwebrtc does.
        (senderSSRC, mediaSSRC) = try FeedbackHeader.read(r, "a PLI")
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = FeedbackHeader.begin(format: Self.format, type: .payloadSpecificFeedback, sender: senderSSRC, media: mediaSSRC, into: &out)
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// Full intra request (FIR, PSFB FMT 4, RFC 5104 §4.3.1): a decoder refresh for each listed source.
public struct FullIntraRequest: Sendable, Equatable {
    static let format: UInt8 = 4
    static let entryLength = 8

    /// One FCI entry: the source asked for a keyframe and the request's sequence number, which
    /// the requester increments for each new request (not for repetitions).
    public struct Entry: Sendable, Equatable {
        public var ssrc: UInt32
        public var sequenceNumber: UInt8

        public init(ssrc: UInt32, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    public var senderSSRC: UInt32
    /// Unused by FIR and normally 0; the targets are in `entries`.
    public var mediaSSRC: UInt32
    public var entries: [Entry]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32 = 0, entries: [Entry]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.entries = entries
    }

    /// Checks the sizes and returns the number of entries.
    static func validate(_ r: RTCPReader) throws(RTCPError) -> Int {
        _ = try FeedbackHeader.read(r, "a FIR")
        let fci = r.count - FeedbackHeader.length
        guard fci % entryLength == 0 else { throw RTCPError(.malformed, "FIR FCI of \(fci) bytes is not a whole number of entries") }
        return fci / entryLength
    }

    init(body r: RTCPReader) throws(RTCPError) {
        _ = try Self.validate(r)
        (senderSSRC, mediaSSRC) = (r.u32(0), r.u32(4))
        entries = stride(from: FeedbackHeader.length, to: r.count, by: Self.entryLength).map { Entry(ssrc: r.u32($0), sequenceNumber: r.u8($0 + 4)) }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = FeedbackHeader.begin(format: Self.format, type: .payloadSpecificFeedback, sender: senderSSRC, media: mediaSSRC, into: &out)
        for entry in entries {
            out.appendBigEndian(entry.ssrc)
            out.append(entry.sequenceNumber)
            out.append(contentsOf: [0, 0, 0])
        }
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// Receiver estimated maximum bitrate (REMB): the bitrate a receiver can take for the listed sources.
///
/// draft-alvestrand-rmcat-remb-03: a PSFB packet with FMT 15 whose FCI starts with "REMB".
public struct REMB: Sendable, Equatable {
    static let format: UInt8 = 15
    /// "REMB" in ASCII.
    static let identifier: UInt32 = 0x5245_4D42
    static let fixedFCILength = 8
    static let mantissaBits = 18

    public var senderSSRC: UInt32
    /// Unused by REMB and normally 0; the sources are in `ssrcs`.
    public var mediaSSRC: UInt32
    /// Bits per second. The wire carries an 18-bit mantissa and a 6-bit exponent, so values above
    /// 2^18 lose their low bits (rounded down) when written.
    public var bitrate: UInt64
    public var ssrcs: [UInt32]

    /// The largest bitrate the format can express, (2^18 - 1) · 2^46; larger wire values clamp to it.
    public static let maximumBitrate = UInt64((1 << mantissaBits) - 1) << 46

    public init(senderSSRC: UInt32, mediaSSRC: UInt32 = 0, bitrate: UInt64, ssrcs: [UInt32]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.bitrate = bitrate
        self.ssrcs = ssrcs
    }

    /// The smallest exponent whose 18-bit mantissa holds `bitrate`; the mantissa is rounded down
    /// so the sender is never told it may send more than the estimate.
    public static func exponentAndMantissa(bitrate: UInt64) -> (exponent: UInt8, mantissa: UInt32) {
        let value = min(bitrate, maximumBitrate)
        var exponent: UInt8 = 0
        while value >> exponent >= 1 << mantissaBits { exponent += 1 }
        return (exponent, UInt32(value >> exponent))
    }

    /// The bitrate an exponent and mantissa stand for, clamped to `maximumBitrate`.
    public static func bitrate(exponent: UInt8, mantissa: UInt32) -> UInt64 {
        let m = UInt64(mantissa & ((1 << mantissaBits) - 1))
        let e = UInt64(exponent & 0x3F)
        guard m != 0 else { return 0 }
        // Bits the shift would push out of 64 mean the value exceeds the maximum anyway.
        guard e <= UInt64(m.leadingZeroBitCount) else { return maximumBitrate }
        return min(m << e, maximumBitrate)
    }

    static func isREMB(_ r: RTCPReader) -> Bool {
        guard r.count >= FeedbackHeader.length + 4 else { return false }
        return r.u32(FeedbackHeader.length) == identifier
    }

    /// Checks the sizes and returns the number of sources listed.
    static func validate(_ r: RTCPReader) throws(RTCPError) -> Int {
        let f = FeedbackHeader.length
        try r.require(f + fixedFCILength, "a REMB")
        let count = Int(r.u8(f + 4))
        let expected = f + fixedFCILength + count * 4
        guard r.count >= expected else { throw RTCPError(.truncated, "REMB lists \(count) sources but has room for fewer") }
        guard r.count == expected else { throw RTCPError(.malformed, "REMB lists \(count) sources but has \(r.count - expected) more bytes") }
        return count
    }

    init(body r: RTCPReader) throws(RTCPError) {
        let count = try Self.validate(r)
        let f = FeedbackHeader.length
        (senderSSRC, mediaSSRC) = (r.u32(0), r.u32(4))
        let word = r.u24(f + 5)
        bitrate = Self.bitrate(exponent: UInt8(word >> 18), mantissa: word & 0x3_FFFF)
        ssrcs = (0..<count).map { r.u32(f + Self.fixedFCILength + $0 * 4) }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        guard ssrcs.count <= 255 else { throw RTCPError(.notEncodable, "REMB with \(ssrcs.count) sources; at most 255") }
        let start = FeedbackHeader.begin(format: Self.format, type: .payloadSpecificFeedback, sender: senderSSRC, media: mediaSSRC, into: &out)
        out.appendBigEndian(Self.identifier)
        out.append(UInt8(ssrcs.count))
        let (exponent, mantissa) = Self.exponentAndMantissa(bitrate: bitrate)
        RTCPWriter.append24(UInt32(exponent) << 18 | mantissa, to: &out)
        for ssrc in ssrcs { out.appendBigEndian(ssrc) }
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}
