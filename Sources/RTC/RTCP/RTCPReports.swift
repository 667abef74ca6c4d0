/// Reception statistics for one source (RFC 3550 §6.4.1), carried in sender and receiver reports.
public struct ReportBlock: Sendable, Equatable {
    /// The wire size of a block.
    public static let length = 24

    /// The source these statistics are about.
    public var ssrc: UInt32
    /// Packets lost since the previous report, as a fixed-point fraction of 256.
    public var fractionLost: UInt8
    /// Packets lost since reception began; 24-bit signed on the wire (duplicates can make it
    /// negative), clamped to that range when written.
    public var cumulativeLost: Int32
    /// The highest sequence number received, with the count of wraparounds in the upper 16 bits.
    public var extendedHighestSequenceNumber: UInt32
    /// Interarrival jitter in RTP timestamp units.
    public var jitter: UInt32
    /// The middle 32 bits of the NTP timestamp of the last sender report received (LSR), or 0.
    public var lastSenderReport: UInt32
    /// Delay since that sender report in units of 1/65536 s (DLSR), or 0.
    public var delaySinceLastSenderReport: UInt32

    public static let cumulativeLostRange: ClosedRange<Int32> = -0x80_0000...0x7F_FFFF

    public init(
        ssrc: UInt32, fractionLost: UInt8 = 0, cumulativeLost: Int32 = 0, extendedHighestSequenceNumber: UInt32 = 0,
        jitter: UInt32 = 0, lastSenderReport: UInt32 = 0, delaySinceLastSenderReport: UInt32 = 0
    ) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequenceNumber = extendedHighestSequenceNumber
        self.jitter = jitter
        self.lastSenderReport = lastSenderReport
        self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }

    init(_ r: RTCPReader, at o: Int) {
        ssrc = r.u32(o)
        fractionLost = r.u8(o + 4)
        // Sign-extend the 24-bit field.
        cumulativeLost = Int32(bitPattern: r.u24(o + 5) << 8) >> 8
        extendedHighestSequenceNumber = r.u32(o + 8)
        jitter = r.u32(o + 12)
        lastSenderReport = r.u32(o + 16)
        delaySinceLastSenderReport = r.u32(o + 20)
    }

    func encode(into out: inout [UInt8]) {
        out.appendBigEndian(ssrc)
        out.append(fractionLost)
        let lost = min(max(cumulativeLost, Self.cumulativeLostRange.lowerBound), Self.cumulativeLostRange.upperBound)
        RTCPWriter.append24(UInt32(bitPattern: lost) & 0xFF_FFFF, to: &out)
        out.appendBigEndian(extendedHighestSequenceNumber)
        out.appendBigEndian(jitter)
        out.appendBigEndian(lastSenderReport)
        out.appendBigEndian(delaySinceLastSenderReport)
    }

    /// Reads `count` blocks starting at `offset`; the caller has checked they fit.
    static func blocks(_ r: RTCPReader, at offset: Int, count: Int) -> [ReportBlock] {
        (0..<count).map { ReportBlock(r, at: offset + $0 * length) }
    }

    static func encode(_ blocks: [ReportBlock], into out: inout [UInt8]) throws(RTCPError) {
        guard blocks.count < 32 else { throw RTCPError(.notEncodable, "\(blocks.count) report blocks; at most 31 fit in one report") }
        for b in blocks { b.encode(into: &out) }
    }
}

/// A sender report (SR, RFC 3550 §6.4.1): what a source sent, plus reception report blocks.
public struct SenderReport: Sendable, Equatable {
    public var ssrc: UInt32
    /// The 64-bit NTP timestamp (seconds since 1900 in the upper 32 bits, fraction in the lower).
    public var ntpTimestamp: UInt64
    /// The RTP timestamp that corresponds to `ntpTimestamp`.
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reports: [ReportBlock]
    /// Profile-specific extension bytes after the report blocks, kept as they are.
    public var profileExtension: [UInt8]

    public init(
        ssrc: UInt32, ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32, octetCount: UInt32,
        reports: [ReportBlock] = [], profileExtension: [UInt8] = []
    ) {
        self.ssrc = ssrc
        self.ntpTimestamp = ntpTimestamp
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
        self.reports = reports
        self.profileExtension = profileExtension
    }

    /// The middle 32 bits of the NTP timestamp: what a receiver echoes as LSR.
    public var compactNTPTimestamp: UInt32 { UInt32(truncatingIfNeeded: ntpTimestamp >> 16) }

    init(count: UInt8, body r: RTCPReader) throws(RTCPError) {
        let blocksEnd = 24 + Int(count) * ReportBlock.length
        try r.require(blocksEnd, "a sender report with \(count) report blocks")
        ssrc = r.u32(0)
        ntpTimestamp = r.u64(4)
        rtpTimestamp = r.u32(12)
        packetCount = r.u32(16)
        octetCount = r.u32(20)
        reports = ReportBlock.blocks(r, at: 24, count: Int(count))
        profileExtension = r.array(blocksEnd, r.count - blocksEnd)
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = RTCPWriter.beginPacket(count: UInt8(truncatingIfNeeded: reports.count), type: .senderReport, into: &out)
        out.appendBigEndian(ssrc)
        out.appendBigEndian(ntpTimestamp)
        out.appendBigEndian(rtpTimestamp)
        out.appendBigEndian(packetCount)
        out.appendBigEndian(octetCount)
        try ReportBlock.encode(reports, into: &out)
        out.append(contentsOf: profileExtension)
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// A receiver report (RR, RFC 3550 §6.4.2): reception report blocks from a source that does not send.
public struct ReceiverReport: Sendable, Equatable {
    public var ssrc: UInt32
    public var reports: [ReportBlock]
    /// Profile-specific extension bytes after the report blocks, kept as they are.
    public var profileExtension: [UInt8]

    public init(ssrc: UInt32, reports: [ReportBlock] = [], profileExtension: [UInt8] = []) {
        self.ssrc = ssrc
        self.reports = reports
        self.profileExtension = profileExtension
    }

    init(count: UInt8, body r: RTCPReader) throws(RTCPError) {
        let blocksEnd = 4 + Int(count) * ReportBlock.length
        try r.require(blocksEnd, "a receiver report with \(count) report blocks")
        ssrc = r.u32(0)
        reports = ReportBlock.blocks(r, at: 4, count: Int(count))
        profileExtension = r.array(blocksEnd, r.count - blocksEnd)
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        let start = RTCPWriter.beginPacket(count: UInt8(truncatingIfNeeded: reports.count), type: .receiverReport, into: &out)
        out.appendBigEndian(ssrc)
        try ReportBlock.encode(reports, into: &out)
        out.append(contentsOf: profileExtension)
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// Source description (SDES, RFC 3550 §6.5): per-source items, of which WebRTC uses CNAME.
public struct SourceDescription: Sendable, Equatable {
    /// The items describing one source.
    public struct Chunk: Sendable, Equatable {
        public var ssrc: UInt32
        public var items: [Item]

        public init(ssrc: UInt32, items: [Item]) {
            self.ssrc = ssrc
            self.items = items
        }

        /// The CNAME item's text, if there is one.
        public var cname: String? {
            items.first { $0.type == .cname }.map { String(decoding: $0.value, as: UTF8.self) }
        }
    }

    /// One SDES item: a type and up to 255 bytes of UTF-8 text.
    public struct Item: Sendable, Equatable {
        public var type: ItemType
        public var value: [UInt8]

        public init(type: ItemType, value: [UInt8]) {
            self.type = type
            self.value = value
        }

        public init(type: ItemType, text: String) { self.init(type: type, value: Array(text.utf8)) }

        /// The canonical end-point identifier, which ties a participant's streams together.
        public static func cname(_ text: String) -> Item { Item(type: .cname, text: text) }
    }

    /// SDES item types (RFC 3550 §6.5).
    public struct ItemType: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let cname = ItemType(rawValue: 1)
        public static let name = ItemType(rawValue: 2)
        public static let email = ItemType(rawValue: 3)
        public static let phone = ItemType(rawValue: 4)
        public static let location = ItemType(rawValue: 5)
        public static let tool = ItemType(rawValue: 6)
        public static let note = ItemType(rawValue: 7)
        public static let privateExtension = ItemType(rawValue: 8)
    }

    public var chunks: [Chunk]

    public init(chunks: [Chunk]) { self.chunks = chunks }

    /// One chunk with only a CNAME, what WebRTC endpoints send.
    public init(ssrc: UInt32, cname: String) { self.init(chunks: [Chunk(ssrc: ssrc, items: [.cname(cname)])]) }

    init(count: UInt8, body r: RTCPReader) throws(RTCPError) {
        chunks = []
        var o = 0
        for index in 0..<Int(count) {
            guard o + 4 <= r.count else { throw RTCPError(.truncated, "SDES chunk \(index) of \(count) is missing") }
            var chunk = Chunk(ssrc: r.u32(o), items: [])
            o += 4
            while true {
                guard o < r.count else { throw RTCPError(.truncated, "SDES chunk \(index) has no end-of-items octet") }
                let type = r.u8(o)
                if type == 0 {
                    // The terminating null octet, then padding to the next 32-bit boundary.
                    o = (o + 4) & ~3
                    break
                }
                guard o + 2 <= r.count else { throw RTCPError(.truncated, "SDES item at byte \(o) has no length") }
                let length = Int(r.u8(o + 1))
                guard o + 2 + length <= r.count else {
                    throw RTCPError(.truncated, "SDES item of \(length) bytes at byte \(o) overruns the packet")
                }
                chunk.items.append(Item(type: ItemType(rawValue: type), value: r.array(o + 2, length)))
                o += 2 + length
            }
            guard o <= r.count else { throw RTCPError(.truncated, "SDES chunk \(index) padding overruns the packet") }
            chunks.append(chunk)
        }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        guard chunks.count < 32 else { throw RTCPError(.notEncodable, "\(chunks.count) SDES chunks; at most 31 fit in one packet") }
        let start = RTCPWriter.beginPacket(count: UInt8(chunks.count), type: .sourceDescription, into: &out)
        for chunk in chunks {
            out.appendBigEndian(chunk.ssrc)
            for item in chunk.items {
                guard item.type.rawValue != 0, item.value.count <= 255 else {
                    throw RTCPError(.notEncodable, "SDES item of type \(item.type.rawValue) with \(item.value.count) bytes")
                }
                out.append(item.type.rawValue)
                out.append(UInt8(item.value.count))
                out.append(contentsOf: item.value)
            }
            // At least one null octet ends the items, then zeros to the 32-bit boundary.
            out.append(0)
            while (out.count - start) % 4 != 0 { out.append(0) }
        }
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}

/// Goodbye (BYE, RFC 3550 §6.6): sources that are leaving, with an optional reason.
public struct Goodbye: Sendable, Equatable {
    public var ssrcs: [UInt32]
    public var reason: String?

    public init(ssrcs: [UInt32], reason: String? = nil) {
        self.ssrcs = ssrcs
        self.reason = reason
    }

    init(count: UInt8, body r: RTCPReader) throws(RTCPError) {
        let listEnd = Int(count) * 4
        try r.require(listEnd, "a BYE with \(count) sources")
        ssrcs = (0..<Int(count)).map { r.u32($0 * 4) }
        reason = nil
        if listEnd < r.count {
            let length = Int(r.u8(listEnd))
            guard listEnd + 1 + length <= r.count else {
                throw RTCPError(.truncated, "BYE reason of \(length) bytes overruns the packet")
            }
            reason = String(decoding: r.array(listEnd + 1, length), as: UTF8.self)
        }
    }

    func encode(into out: inout [UInt8]) throws(RTCPError) {
        guard ssrcs.count < 32 else { throw RTCPError(.notEncodable, "\(ssrcs.count) sources; at most 31 fit in one BYE") }
        let start = RTCPWriter.beginPacket(count: UInt8(ssrcs.count), type: .goodbye, into: &out)
        for ssrc in ssrcs { out.appendBigEndian(ssrc) }
        if let reason {
            let text = Array(reason.utf8)
            guard text.count <= 255 else { throw RTCPError(.notEncodable, "BYE reason of \(text.count) bytes; at most 255") }
            out.append(UInt8(text.count))
            out.append(contentsOf: text)
            // The reason is padded with zeros, not with RTCP padding (RFC 3550 §6.6).
            while (out.count - start) % 4 != 0 { out.append(0) }
        }
        try RTCPWriter.endPacket(start: start, into: &out)
    }
}
