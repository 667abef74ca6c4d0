/// What `MatroskaRepair.repair` found in a file and did to it.
public struct MatroskaRepairReport: Sendable, Equatable {
    /// Clusters holding at least one kept block.
    public var clusters: Int
    /// Blocks kept.
    public var blocks: Int
    /// The Duration now in the file.
    public var durationMillis: Int64
    /// Bytes cut off the end: a block or cluster header the crash left half written, or Cues of an
    /// interrupted clean stop.
    public var truncatedBytes: Int
    /// The file was finished already and nothing was changed.
    public var alreadyFinished: Bool

    public init(clusters: Int, blocks: Int, durationMillis: Int64, truncatedBytes: Int, alreadyFinished: Bool) {
        self.clusters = clusters
        self.blocks = blocks
        self.durationMillis = durationMillis
        self.truncatedBytes = truncatedBytes
        self.alreadyFinished = alreadyFinished
    }
}

/// Finishes a WebM or Matroska recording that a crash left unfinished, as `MatroskaWriter.finish()`
/// would have: it reads the clusters, cuts the file after the last complete block, then appends Cues
/// and patches Duration and the SeekHead with the writer's own code.
///
/// A file that is not Matroska, or that has unreadable bytes before its end, is left untouched.
public enum MatroskaRepair {
    public static func repair(path: String) throws -> MatroskaRepairReport {
        let sink = try FileSink(repairing: path)
        defer { try? sink.close() }
        var file = FileWindow(sink: sink)
        let scan = try Scan(&file)

        let durationTicks = scan.storedDuration ?? Double(scan.index.endTimestamp ?? 0)
        let durationMillis = millis(ticks: durationTicks, scale: scan.timestampScale)
        if scan.isFinished {
            return MatroskaRepairReport(clusters: scan.index.clusters, blocks: scan.index.blocks, durationMillis: durationMillis, truncatedBytes: 0, alreadyFinished: true)
        }
        // Everything that could fail is checked before the first change.
        guard scan.layout.seekHead(cuesPosition: scan.keepEnd) != nil else {
            throw RecordingError(.unsupportedLayout, "the space before Info is too small for a SeekHead", path: path)
        }
        let truncated = file.size - scan.keepEnd
        if truncated > 0 { try sink.truncate(to: scan.keepEnd) }
        try scan.layout.finalize(sink, index: scan.index)
        try sink.close()
        let finalMillis = millis(ticks: Double(scan.index.endTimestamp ?? 0), scale: scan.timestampScale)
        return MatroskaRepairReport(clusters: scan.index.clusters, blocks: scan.index.blocks, durationMillis: finalMillis, truncatedBytes: truncated, alreadyFinished: false)
    }

    /// Milliseconds of `ticks` timestamp units; a stored Duration may be any float, NaN included.
    private static func millis(ticks: Double, scale: UInt64) -> Int64 {
        let millis = (ticks * Double(scale) / 1_000_000).rounded()
        guard millis.isFinite else { return 0 }
        return Int64(max(min(millis, 9e15), -9e15))
    }
}

/// A file read through a window of 64 KiB, so that walking a long recording's elements neither loads
/// it whole nor makes one system call per element.
private struct FileWindow {
    let sink: FileSink
    let size: Int
    private var start = 0
    private var window: [UInt8] = []

    init(sink: FileSink) {
        self.sink = sink
        size = sink.offset
    }

    var path: String { sink.path }

    /// Up to `count` bytes at `offset`; fewer at the end of the file, none past it.
    mutating func bytes(at offset: Int, count: Int) throws(RecordingError) -> [UInt8] {
        guard offset >= 0, offset < size, count > 0 else { return [] }
        let count = min(count, size - offset)
        if offset < start || offset + count > start + window.count {
            start = offset
            window = try sink.read(at: offset, count: max(count, 64 * 1024))
        }
        let from = offset - start
        return Array(window[from..<min(from + count, window.count)])
    }

    /// The element header at `offset`.
    mutating func header(at offset: Int) throws(RecordingError) -> HeaderRead {
        let bytes = try bytes(at: offset, count: 12)
        if let header = EBML.readHeader(bytes, at: 0) { return .header(header) }
        // Fewer than 12 bytes left: a header the crash cut; otherwise the bytes are not EBML.
        return bytes.count < 12 ? .cut : .invalid
    }

    /// Whether every byte from `offset` to the end is zero: a file system can leave that after a
    /// power cut (the size was updated, the data was not).
    mutating func isZeroToEnd(from offset: Int) throws(RecordingError) -> Bool {
        var at = offset
        while at < size {
            let chunk = try bytes(at: at, count: 64 * 1024)
            if chunk.isEmpty { break }
            if chunk.contains(where: { $0 != 0 }) { return false }
            at += chunk.count
        }
        return true
    }

    enum HeaderRead {
        case header(EBML.ElementHeader)
        case cut
        case invalid
    }
}

/// One pass over a Matroska file: its layout, the blocks it holds and where the good part ends.
private struct Scan {
    var layout: MatroskaLayout
    var index: MatroskaIndex
    var timestampScale: UInt64
    /// Where the kept part ends: after the last complete block or the end of a cluster read whole
    /// (or, with no block, after Tracks).
    var keepEnd: Int
    /// The Duration Info holds, in timestamp units; nil while its place is a Void.
    var storedDuration: Double?
    var isFinished: Bool

    private static let clusterChildren: Set<EBMLID> = [
        .timestamp, .simpleBlock, .blockGroup, .void, .crc32,
        EBMLID(0x5854), EBMLID(0xA7), EBMLID(0xAB), EBMLID(0xAF),  // SilentTracks, Position, PrevSize, EncryptedBlock
    ]

    init(_ file: inout FileWindow) throws(RecordingError) {
        let path = file.path
        func notMatroska(_ why: String) -> RecordingError { RecordingError(.notMatroska, why, path: path) }
        func unsupported(_ why: String) -> RecordingError { RecordingError(.unsupportedLayout, why, path: path) }

        // The EBML header and its DocType.
        guard case .header(let ebml) = try file.header(at: 0), ebml.id == .ebml, let ebmlSize = ebml.size, ebmlSize <= 4096 else {
            throw notMatroska("does not start with an EBML header")
        }
        let ebmlBody = try file.bytes(at: ebml.headerLength, count: Int(ebmlSize))
        guard ebmlBody.count == Int(ebmlSize) else { throw notMatroska("the EBML header is cut off") }
        let docType = Self.children(of: ebmlBody).first { $0.id == .docType }.map { String(decoding: ebmlBody[$0.data], as: UTF8.self) }
        guard let docType, docType == "webm" || docType == "matroska" else {
            throw notMatroska("DocType \(docType.map { "\"\($0)\"" } ?? "missing") is not Matroska or WebM")
        }

        // The Segment.
        let segmentPosition = ebml.headerLength + Int(ebmlSize)
        guard case .header(let segment) = try file.header(at: segmentPosition), segment.id == .segment else {
            throw notMatroska("no Segment after the EBML header")
        }
        let segmentData = segmentPosition + segment.headerLength
        var segmentEnd = file.size
        var declaredEndIsFileEnd = false
        if let size = segment.size, size < UInt64(Int.max / 2) {
            segmentEnd = min(segmentData + Int(size), file.size)
            declaredEndIsFileEnd = segmentData + Int(size) == file.size
        }

        var seekHeadSlot: Range<Int>?
        var seekHeadWritten = false
        var infoPosition: Int?
        var durationSlot: Int?
        var storedDuration: Double?
        var timestampScale: UInt64 = 1_000_000
        var tracksPosition: Int?
        var index: MatroskaIndex?
        var knownTracks: Set<UInt64> = []
        var keepEnd = 0
        var lastCluster: Int?

        /// Why the walk ended.
        enum Stop { case end, cut, invalid(Int), cues(complete: Bool) }
        var stop = Stop.end
        var position = segmentData

        walk: while position < segmentEnd {
            let read = try file.header(at: position)
            guard case .header(let header) = read else {
                stop = if case .cut = read { .cut } else { .invalid(position) }
                break
            }
            let dataStart = position + header.headerLength

            if header.id == .cluster {
                guard var clusterIndex = index else { throw unsupported("a Cluster comes before Tracks") }
                let clusterEnd = header.size.map { dataStart + Int(min($0, UInt64(segmentEnd))) }.map { min($0, segmentEnd) } ?? segmentEnd
                clusterIndex.clusterStarted(at: position, header: header)
                lastCluster = position
                var clusterTimestamp: Int64?
                var at = dataStart
                while at < clusterEnd {
                    let childRead = try file.header(at: at)
                    guard case .header(let child) = childRead else {
                        stop = if case .cut = childRead { .cut } else { .invalid(at) }
                        index = clusterIndex
                        break walk
                    }
                    // An unknown-size cluster ends where an element starts that cannot be its child.
                    if header.size == nil, !Self.clusterChildren.contains(child.id) { break }
                    guard let childSize = child.size, childSize <= UInt64(file.size) else {
                        stop = child.size == nil ? .invalid(at) : .cut
                        index = clusterIndex
                        break walk
                    }
                    let childData = at + child.headerLength
                    let childEnd = childData + Int(childSize)
                    guard childEnd <= clusterEnd else {
                        // Past the end of the file: cut there. Past the end of a cluster of known size: damage.
                        stop = childEnd > file.size ? .cut : .invalid(at)
                        index = clusterIndex
                        break walk
                    }
                    switch child.id {
                    case .timestamp:
                        guard childSize <= 8, let value = EBML.readUInt(try file.bytes(at: childData, count: Int(childSize))[...]) else {
                            stop = .invalid(at)
                            index = clusterIndex
                            break walk
                        }
                        // Bounded (35 years of milliseconds), so sums of garbage timestamps cannot overflow.
                        clusterTimestamp = Int64(min(value, 1 << 40))
                    case .simpleBlock, .blockGroup:
                        let block: (track: UInt64, relative: Int16, keyframe: Bool)?
                        if child.id == .simpleBlock {
                            block = Self.blockHeader(try file.bytes(at: childData, count: min(Int(childSize), 12))).map { ($0.track, $0.relative, $0.flags & 0x80 != 0) }
                        } else {
                            block = try Self.blockGroup(&file, data: childData, size: Int(childSize))
                        }
                        guard let block, let base = clusterTimestamp, knownTracks.contains(block.track) else {
                            stop = .invalid(at)
                            index = clusterIndex
                            break walk
                        }
                        clusterIndex.block(track: block.track, timestamp: base + Int64(block.relative), keyframe: block.keyframe, end: childEnd)
                        keepEnd = childEnd
                    default:
                        break
                    }
                    at = childEnd
                }
                // Read whole: the cluster keeps every child, the ones after its last block included.
                if clusterIndex.clusterEnded(at: at) { keepEnd = at }
                index = clusterIndex
                position = header.size == nil ? at : clusterEnd
                continue
            }

            if header.id == .cues, lastCluster != nil {
                // Cues after the clusters: a clean stop began. Unless it ended, it is done again from the start.
                // The header may itself cross the segment's declared end: then its data starts past it.
                let complete = header.size.map { dataStart <= segmentEnd && $0 <= UInt64(segmentEnd - dataStart) } ?? false
                stop = .cues(complete: complete)
                break
            }
            guard let size = header.size, size <= UInt64(file.size) else {
                stop = header.size == nil ? .invalid(position) : .cut
                break
            }
            let end = dataStart + Int(size)
            guard end <= segmentEnd else {
                stop = .cut
                break
            }
            switch header.id {
            case .void where position == segmentData, .seekHead where position == segmentData:
                seekHeadSlot = position..<end
                seekHeadWritten = header.id == .seekHead
            case .info where infoPosition == nil:
                guard size <= 64 * 1024 else { throw unsupported("Info of \(size) bytes") }
                infoPosition = position
                let body = try file.bytes(at: dataStart, count: Int(size))
                for child in Self.children(of: body) {
                    let value = body[child.data]
                    switch child.id {
                    case .timestampScale:
                        if let scale = EBML.readUInt(value), scale > 0 { timestampScale = scale }
                    case .duration where child.start + MatroskaLayout.durationLength == child.data.upperBound && value.count == 8:
                        durationSlot = dataStart + child.start
                        storedDuration = EBML.readFloat(value)
                    case .void where child.data.upperBound - child.start == MatroskaLayout.durationLength:
                        durationSlot = dataStart + child.start
                    default:
                        break
                    }
                }
            case .tracks where tracksPosition == nil:
                guard size <= 4 * 1024 * 1024 else { throw unsupported("Tracks of \(size) bytes") }
                tracksPosition = position
                let body = try file.bytes(at: dataStart, count: Int(size))
                var video: [UInt64] = []
                for entry in Self.children(of: body) where entry.id == .trackEntry {
                    let fields = Self.children(of: Array(body[entry.data]))
                    let entryBody = Array(body[entry.data])
                    let number = fields.first { $0.id == .trackNumber }.flatMap { EBML.readUInt(entryBody[$0.data]) }
                    let type = fields.first { $0.id == .trackType }.flatMap { EBML.readUInt(entryBody[$0.data]) }
                    guard let number else { continue }
                    knownTracks.insert(number)
                    if type == 1 { video.append(number) }
                }
                index = MatroskaIndex(videoTracks: video)
                keepEnd = end
            case .info, .tracks, .segment, .ebml:
                stop = .invalid(position)
                break walk
            case .void, .seekHead, .tags, .chapters, .attachments:
                if tracksPosition != nil { keepEnd = end }
            default:
                // Before the clusters, an element this reader does not know is skipped, as EBML says.
                // Among them it is damage: a block or a cluster's timestamp outside any cluster.
                if lastCluster != nil {
                    stop = .invalid(position)
                    break walk
                }
            }
            position = end
        }

        if case .invalid(let at) = stop, try !file.isZeroToEnd(from: at) {
            throw RecordingError(.corrupt, "bytes at offset \(at) of \(file.size) are not Matroska; nothing was changed", path: path)
        }
        guard let seekHeadSlot else { throw unsupported("no Void or SeekHead at the start of the Segment to hold a SeekHead") }
        guard let infoPosition, let durationSlot else { throw unsupported("no complete Info with an 11-byte place for Duration") }
        guard let tracksPosition, let index else { throw unsupported("no complete Tracks") }
        layout = MatroskaLayout(
            segmentSizeOffset: segmentPosition + segment.id.byteCount, segmentSizeLength: segment.headerLength - segment.id.byteCount,
            segmentDataOffset: segmentData, seekHeadSlot: seekHeadSlot, durationSlot: durationSlot,
            infoPosition: infoPosition, tracksPosition: tracksPosition
        )
        self.index = index
        self.timestampScale = timestampScale
        self.keepEnd = keepEnd
        self.storedDuration = storedDuration
        // The Segment size is patched last, after a sync: once it matches the file, the rest is done.
        let walkedToEnd = switch stop {
        case .end, .cues(complete: true): true
        default: false
        }
        isFinished = walkedToEnd && declaredEndIsFileEnd && seekHeadWritten && storedDuration != nil
    }

    /// The elements laid one after another in `bytes` (a master element's data), as far as they are complete.
    static func children(of bytes: [UInt8]) -> [(id: EBMLID, start: Int, data: Range<Int>)] {
        var out: [(id: EBMLID, start: Int, data: Range<Int>)] = []
        var at = 0
        while let header = EBML.readHeader(bytes, at: at), let size = header.size, size <= UInt64(bytes.count - at - header.headerLength) {
            let data = (at + header.headerLength)..<(at + header.headerLength + Int(size))
            out.append((header.id, at, data))
            at = data.upperBound
        }
        return out
    }

    /// The start of a SimpleBlock or Block: track number, timestamp relative to the cluster, flags.
    static func blockHeader(_ bytes: [UInt8]) -> (track: UInt64, relative: Int16, flags: UInt8)? {
        guard let (track, length) = EBML.readSize(bytes, at: 0), let track, bytes.count >= length + 3 else { return nil }
        let relative = Int16(bitPattern: UInt16(bytes[length]) << 8 | UInt16(bytes[length + 1]))
        return (track, relative, bytes[length + 2])
    }

    /// The Block inside a BlockGroup; a keyframe when nothing is referenced.
    static func blockGroup(_ file: inout FileWindow, data: Int, size: Int) throws(RecordingError) -> (track: UInt64, relative: Int16, keyframe: Bool)? {
        guard size <= 16 * 1024 * 1024 else { return nil }
        let body = try file.bytes(at: data, count: size)
        let children = children(of: body)
        guard let block = children.first(where: { $0.id == .block }), let header = blockHeader(Array(body[block.data].prefix(12))) else { return nil }
        return (header.track, header.relative, !children.contains { $0.id == .referenceBlock })
    }
}
