/// The OpusHead identification header (RFC 7845 §5.1) for channel mapping family 0, mono or stereo:
/// the first packet of an Ogg Opus stream and the CodecPrivate of an Opus track in WebM.
public enum OpusHead {
    /// 19 bytes: "OpusHead", version 1, channels, pre-skip (LE), input sample rate (LE, informational),
    /// output gain 0, mapping family 0. `channels` is 1 or 2.
    public static func bytes(channels: Int, preSkip: UInt16 = 312, inputSampleRate: UInt32 = 48_000) -> [UInt8] {
        precondition((1...2).contains(channels), "mapping family 0 carries 1 or 2 channels, not \(channels)")
        var head = Array("OpusHead".utf8)
        head.append(1)
        head.append(UInt8(channels))
        head.appendLittleEndian(preSkip)
        head.appendLittleEndian(inputSampleRate)
        head.appendLittleEndian(UInt16(0))
        head.append(0)
        return head
    }
}

/// The CRC-32 of Ogg pages (RFC 3533 §6): polynomial 0x04C11DB7, initial value 0, no bit reflection,
/// no final XOR, computed over the page with its CRC field zeroed.
public enum OggCRC {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index) << 24
        for _ in 0..<8 { crc = crc & 0x8000_0000 != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
        return crc
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 24) ^ byte)] }
        }
        return crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}

/// An Ogg Opus file (RFC 7845 over RFC 3533) written while the recording runs.
///
/// Pages close at about one second of audio or when the segment table is nearly full, and on
/// `flushPage()`; a closed page is final, so a crash loses only the page still open. The granule
/// position counts 48 kHz samples, pre-skip included, and advances by exactly the samples given
/// with each packet: gaps must be filled by the caller (concealment packets), never skipped.
public final class OggOpusWriter {
    /// A page holding this much audio is closed: what ffmpeg does, and the bound on what a crash loses.
    public static let maxPageSamples: Int64 = 48_000

    public let path: String
    public let serial: UInt32
    public let preSkip: UInt16

    private let sink: FileSink
    private var sequence: UInt32 = 0
    private var lacing: [UInt8] = []
    private var body: [UInt8] = []
    private var page: [UInt8] = []
    /// The open page starts with the rest of a packet begun on the page before.
    private var pageContinues = false
    /// Granule of the last packet completed on the open page; -1 while none has.
    private var pageGranule: Int64 = -1
    private var pageStartGranule: Int64 = 0
    private var lastPageOffset: Int?
    private var finished = false
    /// An I/O error that may have left a page half written; nothing more is appended after it.
    private var failure: RecordingError?

    /// Samples written so far at 48 kHz, pre-skip included: the granule position of the last packet.
    public private(set) var granule: Int64 = 0

    /// Creates the file (never replacing one) and writes the OpusHead page and the OpusTags page
    /// (vendor "Atrium", `tags` as "KEY=value" comments). `channels` is 1 or 2.
    public init(path: String, channels: Int, preSkip: UInt16 = 312, serial: UInt32, inputSampleRate: UInt32 = 48_000, tags: [String] = []) throws {
        guard (1...2).contains(channels) else {
            throw RecordingError(.invalidArgument, "Ogg Opus with mapping family 0 carries 1 or 2 channels, not \(channels)", path: path)
        }
        self.path = path
        self.serial = serial
        self.preSkip = preSkip
        lacing.reserveCapacity(255)
        body.reserveCapacity(255 * 255)
        page.reserveCapacity(27 + 255 + 255 * 255)
        sink = try FileSink(creating: path)

        // OpusHead alone on the first page; OpusTags ends the second, so audio starts on a page of its own.
        try OpusHead.bytes(channels: channels, preSkip: preSkip, inputSampleRate: inputSampleRate).withUnsafeBytes { try add($0) }
        pageGranule = 0
        try closePage()
        var opusTags = Array("OpusTags".utf8)
        let vendor = Array("Atrium".utf8)
        opusTags.appendLittleEndian(UInt32(vendor.count))
        opusTags.append(contentsOf: vendor)
        opusTags.appendLittleEndian(UInt32(tags.count))
        for tag in tags {
            let comment = Array(tag.utf8)
            opusTags.appendLittleEndian(UInt32(comment.count))
            opusTags.append(contentsOf: comment)
        }
        try opusTags.withUnsafeBytes { try add($0) }
        pageGranule = 0
        try closePage()
        try sink.flush()
    }

    /// Writes one Opus packet covering `samples` samples at 48 kHz; the granule advances by exactly that.
    /// An empty packet is malformed Opus: a concealment packet is at least its TOC byte.
    public func write(packet: [UInt8], samples: Int) throws {
        guard !finished else { throw RecordingError(.closed, "write after finish()", path: path) }
        guard !packet.isEmpty, samples >= 0 else {
            throw RecordingError(.invalidArgument, "an Opus packet has at least one byte and no negative duration", path: path)
        }
        try checkHealthy()
        do {
            try packet.withUnsafeBytes { raw in Result { () throws(RecordingError) in try add(raw) } }.get()
            granule += Int64(samples)
            pageGranule = granule
            if granule - pageStartGranule >= Self.maxPageSamples || lacing.count >= 255 { try closePage() }
        } catch {
            failure = error
            throw error
        }
    }

    private func checkHealthy() throws(RecordingError) {
        if let failure { throw RecordingError(failure.code, "an earlier write failed: \(failure.message)", path: path) }
    }

    /// Closes the open page, if a packet is waiting in it, so that it reaches the kernel on `flush()`.
    public func flushPage() throws {
        guard !finished else { throw RecordingError(.closed, "flushPage after finish()", path: path) }
        try checkHealthy()
        do {
            try closePage()
        } catch {
            failure = error
            throw error
        }
    }

    /// Closes the open page and hands everything to the kernel.
    public func flush() throws {
        try flushPage()
        try sink.flush()
    }

    /// Flushes, then puts the file on disk.
    public func sync() throws {
        try flushPage()
        try sink.sync()
    }

    /// Ends the stream: the last page is flagged end-of-stream, then the file is synced and closed.
    public func finish() throws {
        guard !finished else { throw RecordingError(.closed, "finish() called twice", path: path) }
        finished = true
        defer { try? sink.close() }
        try checkHealthy()
        if !lacing.isEmpty {
            try closePage(endOfStream: true)
        } else if let lastPageOffset {
            // Everything is already in closed pages: the last one becomes the end of the stream.
            page[5] |= 0x04
            page.replaceSubrange(22..<26, with: [0, 0, 0, 0])
            let crc = OggCRC.checksum(page)
            page.replaceSubrange(22..<26, with: littleEndianBytes(crc))
            try sink.patch(at: lastPageOffset, bytes: Array(page[0..<27]))
        }
        try sink.sync()
        try sink.close()
    }

    /// Laces one packet into the open page, closing pages as the segment table fills. A packet that
    /// would not fit the open page starts a new one, unless it is too big for any page.
    private func add(_ packet: UnsafeRawBufferPointer) throws(RecordingError) {
        let values = packet.count / 255 + 1
        if !lacing.isEmpty, lacing.count + values > 255, values <= 255 { try closePage() }
        var offset = 0
        while true {
            if lacing.count == 255 {
                try closePage()
                pageContinues = true
            }
            // L bytes are floor(L/255) values of 255 and one of L mod 255, which is 0 for a multiple of 255.
            let chunk = min(packet.count - offset, 255)
            lacing.append(UInt8(chunk))
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: packet[offset..<(offset + chunk)]))
            offset += chunk
            if chunk < 255 { break }
        }
    }

    /// Writes the open page to the sink: header, segment table, data, CRC.
    private func closePage(endOfStream: Bool = false) throws(RecordingError) {
        guard !lacing.isEmpty else { return }
        var flags: UInt8 = 0
        if pageContinues { flags |= 0x01 }
        if sequence == 0 { flags |= 0x02 }
        if endOfStream { flags |= 0x04 }
        page.removeAll(keepingCapacity: true)
        // "OggS", version 0 (byte by byte: an array literal here would allocate on every page).
        page.append(0x4F)
        page.append(0x67)
        page.append(0x67)
        page.append(0x53)
        page.append(0)
        page.append(flags)
        page.appendLittleEndian(UInt64(bitPattern: pageGranule))
        page.appendLittleEndian(serial)
        page.appendLittleEndian(sequence)
        page.appendLittleEndian(UInt32(0))
        page.append(UInt8(lacing.count))
        page.append(contentsOf: lacing)
        page.append(contentsOf: body)
        let crc = OggCRC.checksum(page)
        page[22] = UInt8(truncatingIfNeeded: crc)
        page[23] = UInt8(truncatingIfNeeded: crc >> 8)
        page[24] = UInt8(truncatingIfNeeded: crc >> 16)
        page[25] = UInt8(truncatingIfNeeded: crc >> 24)
        lastPageOffset = sink.offset
        try sink.append(page)
        sequence &+= 1
        lacing.removeAll(keepingCapacity: true)
        body.removeAll(keepingCapacity: true)
        pageContinues = false
        pageGranule = -1
        pageStartGranule = granule
    }

    private func littleEndianBytes(_ value: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLittleEndian(value)
        return out
    }
}

extension [UInt8] {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<(T.bitWidth / 8) { append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }
}
