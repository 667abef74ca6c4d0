import Foundation

// Matroska element IDs (RFC 9559), the ones a live recording writes or repair reads.
extension EBMLID {
    public static let ebml = EBMLID(0x1A45_DFA3)
    public static let ebmlVersion = EBMLID(0x4286)
    public static let ebmlReadVersion = EBMLID(0x42F7)
    public static let ebmlMaxIDLength = EBMLID(0x42F2)
    public static let ebmlMaxSizeLength = EBMLID(0x42F3)
    public static let docType = EBMLID(0x4282)
    public static let docTypeVersion = EBMLID(0x4287)
    public static let docTypeReadVersion = EBMLID(0x4285)

    public static let segment = EBMLID(0x1853_8067)
    public static let seekHead = EBMLID(0x114D_9B74)
    public static let seek = EBMLID(0x4DBB)
    public static let seekID = EBMLID(0x53AB)
    public static let seekPosition = EBMLID(0x53AC)

    public static let info = EBMLID(0x1549_A966)
    public static let timestampScale = EBMLID(0x2AD7B1)
    public static let duration = EBMLID(0x4489)
    public static let muxingApp = EBMLID(0x4D80)
    public static let writingApp = EBMLID(0x5741)
    public static let dateUTC = EBMLID(0x4461)
    public static let title = EBMLID(0x7BA9)

    public static let tracks = EBMLID(0x1654_AE6B)
    public static let trackEntry = EBMLID(0xAE)
    public static let trackNumber = EBMLID(0xD7)
    public static let trackUID = EBMLID(0x73C5)
    public static let trackType = EBMLID(0x83)
    public static let flagLacing = EBMLID(0x9C)
    public static let name = EBMLID(0x536E)
    public static let codecID = EBMLID(0x86)
    public static let codecPrivate = EBMLID(0x63A2)
    public static let codecDelay = EBMLID(0x56AA)
    public static let seekPreRoll = EBMLID(0x56BB)
    public static let defaultDuration = EBMLID(0x23E383)
    public static let video = EBMLID(0xE0)
    public static let pixelWidth = EBMLID(0xB0)
    public static let pixelHeight = EBMLID(0xBA)
    public static let audio = EBMLID(0xE1)
    public static let samplingFrequency = EBMLID(0xB5)
    public static let channels = EBMLID(0x9F)

    public static let cluster = EBMLID(0x1F43_B675)
    public static let timestamp = EBMLID(0xE7)
    public static let simpleBlock = EBMLID(0xA3)
    public static let blockGroup = EBMLID(0xA0)
    public static let block = EBMLID(0xA1)
    public static let referenceBlock = EBMLID(0xFB)

    public static let cues = EBMLID(0x1C53_BB6B)
    public static let cuePoint = EBMLID(0xBB)
    public static let cueTime = EBMLID(0xB3)
    public static let cueTrackPositions = EBMLID(0xB7)
    public static let cueTrack = EBMLID(0xF7)
    public static let cueClusterPosition = EBMLID(0xF1)

    public static let tags = EBMLID(0x1254_C367)
    public static let chapters = EBMLID(0x1043_A770)
    public static let attachments = EBMLID(0x1941_A469)
    public static let void = EBMLID(0xEC)
    public static let crc32 = EBMLID(0xBF)
}

/// One track of a Matroska or WebM file, as its TrackEntry describes it.
public struct MatroskaTrack: Sendable, Equatable {
    public enum Kind: Sendable { case video, audio }

    /// The 1-based TrackNumber blocks refer to; 1 to 126, so it fits the one-byte field of every block.
    public var number: UInt64
    public var kind: Kind
    /// "V_VP8", "V_VP9", "V_AV1", "V_MPEG4/ISO/AVC", "A_OPUS".
    public var codecID: String
    /// OpusHead for Opus, avcC for H.264, av1C for AV1; nil for VP8 and VP9.
    public var codecPrivate: [UInt8]?
    public var width: Int
    public var height: Int
    public var sampleRate: Double
    public var channels: Int
    /// Opus: the pre-skip in nanoseconds (312 samples are 6 500 000 ns).
    public var codecDelayNanos: UInt64
    /// Opus: how much to decode before a seek target for the output to be right, 80 ms.
    public var seekPreRollNanos: UInt64
    /// Video: the shortest time between frames the track promises (0: not written). Readers take it
    /// as the frame rate's ceiling; ffmpeg, for one, times decoded frames in its units.
    public var defaultDurationNanos: UInt64 = 0
    public var name: String?

    public init(
        number: UInt64, kind: Kind, codecID: String, codecPrivate: [UInt8]? = nil,
        width: Int = 0, height: Int = 0, sampleRate: Double = 48_000, channels: Int = 2,
        codecDelayNanos: UInt64 = 0, seekPreRollNanos: UInt64 = 0, name: String? = nil
    ) {
        self.number = number
        self.kind = kind
        self.codecID = codecID
        self.codecPrivate = codecPrivate
        self.width = width
        self.height = height
        self.sampleRate = sampleRate
        self.channels = channels
        self.codecDelayNanos = codecDelayNanos
        self.seekPreRollNanos = seekPreRollNanos
        self.name = name
    }

    /// An Opus track with its OpusHead, CodecDelay from the pre-skip and the 80 ms SeekPreRoll the
    /// Matroska Opus mapping asks for.
    public static func opus(number: UInt64, channels: Int, preSkip: UInt16 = 312, name: String? = nil) -> MatroskaTrack {
        MatroskaTrack(
            number: number, kind: .audio, codecID: "A_OPUS",
            codecPrivate: OpusHead.bytes(channels: channels, preSkip: preSkip),
            sampleRate: 48_000, channels: channels,
            codecDelayNanos: UInt64(preSkip) * 1_000_000_000 / 48_000, seekPreRollNanos: 80_000_000, name: name
        )
    }

    var isOpus: Bool { codecID == "A_OPUS" }

    var entry: EBMLElement {
        var children: [EBMLElement] = [
            .uint(.trackNumber, number),
            // Random, so that files cut from one meeting never share a UID; zero is not allowed.
            .uint(.trackUID, UInt64.random(in: 1...UInt64.max)),
            .uint(.trackType, kind == .video ? 1 : 2),
            .uint(.flagLacing, 0),
        ]
        if let name { children.append(.string(.name, name)) }
        children.append(.string(.codecID, codecID))
        if let codecPrivate { children.append(.binary(.codecPrivate, codecPrivate)) }
        if codecDelayNanos > 0 || isOpus { children.append(.uint(.codecDelay, codecDelayNanos)) }
        if seekPreRollNanos > 0 || isOpus { children.append(.uint(.seekPreRoll, seekPreRollNanos)) }
        if defaultDurationNanos > 0 { children.append(.uint(.defaultDuration, defaultDurationNanos)) }
        switch kind {
        case .video:
            children.append(.master(.video, [.uint(.pixelWidth, UInt64(max(width, 0))), .uint(.pixelHeight, UInt64(max(height, 0)))]))
        case .audio:
            children.append(.master(.audio, [.float(.samplingFrequency, sampleRate), .uint(.channels, UInt64(max(channels, 1)))]))
        }
        return .master(.trackEntry, children)
    }
}

/// A WebM or Matroska file written while the recording runs, so that a crash leaves a file that plays.
///
/// The Segment and every Cluster have unknown size: each block is final once it reaches the disk,
/// and nothing before it needs rewriting. A clean stop (`finish()`) then appends Cues and patches
/// Duration and the SeekHead into space reserved for them; `MatroskaRepair` does the same for a file
/// a crash left behind. A writer dropped without `finish()` hands over what it buffered and leaves
/// the file as a crash would.
public final class MatroskaWriter {
    public let path: String
    public let docType: String
    public let tracks: [MatroskaTrack]
    /// A cluster older than this is closed at the next block, so a file without keyframes (audio only)
    /// still gets seek points.
    public var maxClusterMillis: Int64 = 5_000

    private let sink: FileSink
    private let layout: MatroskaLayout
    private var index: MatroskaIndex
    private var clusterTimestamp: Int64?
    private var finished = false
    /// An I/O error that may have left a block half written; nothing more is appended after it.
    private var failure: RecordingError?

    /// The timestamp of the last block written.
    public private(set) var lastTimestampMillis: Int64?

    /// Bytes in the file, buffered ones included.
    public var bytesWritten: Int { sink.offset }

    /// docType "webm" or "matroska". Writes the EBML header, an unknown-size Segment, a Void reserved
    /// for the SeekHead, Info (TimestampScale 1 ms, MuxingApp/WritingApp "Atrium", DateUTC, a Void
    /// reserved where Duration goes) and Tracks, and hands them to the kernel.
    public init(path: String, docType: String, tracks: [MatroskaTrack], title: String? = nil, date: Date? = nil) throws {
        try Self.validate(path: path, docType: docType, tracks: tracks)
        self.path = path
        self.docType = docType
        self.tracks = tracks

        var head: [UInt8] = []
        EBMLElement.master(.ebml, [
            .uint(.ebmlVersion, 1), .uint(.ebmlReadVersion, 1), .uint(.ebmlMaxIDLength, 4), .uint(.ebmlMaxSizeLength, 8),
            .string(.docType, docType),
            // CodecDelay and SeekPreRoll are version 4 elements; readers need version 2 features.
            .uint(.docTypeVersion, 4), .uint(.docTypeReadVersion, 2),
        ]).encode(into: &head)
        EBMLID.segment.write(into: &head)
        let segmentSizeOffset = head.count
        head.append(contentsOf: EBML.unknownSize)
        let segmentData = head.count
        let seekHeadSlot = segmentData..<(segmentData + MatroskaLayout.seekHeadReserve)
        EBMLElement.void(totalLength: MatroskaLayout.seekHeadReserve).encode(into: &head)

        let infoPosition = head.count
        var info: [EBMLElement] = [
            .uint(.timestampScale, 1_000_000),
            .string(.muxingApp, "Atrium"), .string(.writingApp, "Atrium"),
            .date(.dateUTC, nanosecondsSince2001: Int64(((date ?? Date()).timeIntervalSinceReferenceDate * 1e9).rounded())),
        ]
        if let title { info.append(.string(.title, title)) }
        // Duration is unknown until the end; a guessed one would outlive a crash and lie.
        info.append(.void(totalLength: MatroskaLayout.durationLength))
        EBMLElement.master(.info, info).encode(into: &head)
        let durationSlot = head.count - MatroskaLayout.durationLength

        let tracksPosition = head.count
        EBMLElement.master(.tracks, tracks.map(\.entry)).encode(into: &head)

        layout = MatroskaLayout(
            segmentSizeOffset: segmentSizeOffset, segmentSizeLength: EBML.unknownSize.count, segmentDataOffset: segmentData,
            seekHeadSlot: seekHeadSlot, durationSlot: durationSlot, infoPosition: infoPosition, tracksPosition: tracksPosition
        )
        index = MatroskaIndex(videoTracks: tracks.filter { $0.kind == .video }.map(\.number))
        sink = try FileSink(creating: path)
        try sink.append(head)
        try sink.flush()
    }

    private static func validate(path: String, docType: String, tracks: [MatroskaTrack]) throws(RecordingError) {
        guard docType == "webm" || docType == "matroska" else {
            throw RecordingError(.invalidArgument, "docType must be \"webm\" or \"matroska\", not \"\(docType)\"", path: path)
        }
        guard !tracks.isEmpty else { throw RecordingError(.invalidArgument, "a recording needs at least one track", path: path) }
        var seen: Set<UInt64> = []
        for track in tracks {
            guard (1...126).contains(track.number), seen.insert(track.number).inserted else {
                throw RecordingError(.invalidArgument, "track numbers must be distinct and 1 to 126; \(track.number) is not", path: path)
            }
            // WebM is the subset browsers play; H.264 there makes a file they refuse.
            let webmCodecs: Set<String> = ["V_VP8", "V_VP9", "V_AV1", "A_OPUS", "A_VORBIS"]
            if docType == "webm", !webmCodecs.contains(track.codecID) {
                throw RecordingError(.invalidArgument, "\(track.codecID) is not allowed in WebM; use docType \"matroska\"", path: path)
            }
        }
    }

    /// Writes one frame as a SimpleBlock. `timestampMillis` is on the file's timeline (>= 0) and does not
    /// go back across calls (the caller interleaves the tracks). A new unknown-size Cluster starts at each
    /// video keyframe, when the cluster is `maxClusterMillis` old, or when the block's int16 offset from
    /// the cluster would overflow. Audio blocks are always flagged keyframe. After an I/O error (disk
    /// full) every later call throws: the file is left as a crash would leave it, for `MatroskaRepair`.
    public func write(track: UInt64, timestampMillis: Int64, keyframe: Bool, frame: UnsafeRawBufferPointer) throws {
        guard !finished else { throw RecordingError(.closed, "write after finish()", path: path) }
        if let failure { throw RecordingError(failure.code, "an earlier write failed: \(failure.message)", path: path) }
        guard let kind = tracks.first(where: { $0.number == track })?.kind else {
            throw RecordingError(.invalidArgument, "no track \(track)", path: path)
        }
        guard timestampMillis >= 0, timestampMillis >= (lastTimestampMillis ?? 0) else {
            throw RecordingError(.invalidArgument, "timestamp \(timestampMillis) ms goes back (last \(lastTimestampMillis ?? 0) ms)", path: path)
        }
        let isKey = kind == .audio || keyframe
        let startsCluster: Bool
        if let start = clusterTimestamp {
            let age = timestampMillis - start
            startsCluster = (kind == .video && isKey) || age >= maxClusterMillis || age > Int64(Int16.max)
        } else {
            startsCluster = true
        }
        do {
            if startsCluster { try startCluster(at: timestampMillis) }
            try appendBlock(track: track, relative: Int16(timestampMillis - clusterTimestamp!), keyframe: isKey, frame: frame)
        } catch {
            failure = error
            throw error
        }
        index.block(track: track, timestamp: timestampMillis, keyframe: isKey, end: sink.offset)
        lastTimestampMillis = timestampMillis
    }

    public func write(track: UInt64, timestampMillis: Int64, keyframe: Bool, frame: [UInt8]) throws {
        try frame.withUnsafeBytes { try write(track: track, timestampMillis: timestampMillis, keyframe: keyframe, frame: $0) }
    }

    private func appendBlock(track: UInt64, relative: Int16, keyframe: Bool, frame: UnsafeRawBufferPointer) throws(RecordingError) {
        try withUnsafeTemporaryAllocation(byteCount: 16, alignment: 1) { (header) throws(RecordingError) in
            var n = 0
            func put(_ byte: UInt8) { header[n] = byte; n += 1 }
            put(0xA3)
            // Body: track number (1 byte), relative timestamp (2), flags (1), the frame.
            let size = UInt64(4 + frame.count)
            let sizeLength = EBML.sizeLength(size)
            let marked = size | (UInt64(1) << UInt64(7 * sizeLength))
            for shift in stride(from: (sizeLength - 1) * 8, through: 0, by: -8) { put(UInt8(truncatingIfNeeded: marked >> UInt64(shift))) }
            put(0x80 | UInt8(track))
            put(UInt8(truncatingIfNeeded: UInt16(bitPattern: relative) >> 8))
            put(UInt8(truncatingIfNeeded: UInt16(bitPattern: relative)))
            put(keyframe ? 0x80 : 0x00)
            try sink.append(UnsafeRawBufferPointer(rebasing: header[0..<n]))
        }
        try sink.append(frame)
    }

    private func startCluster(at timestamp: Int64) throws(RecordingError) {
        // The finished cluster goes to the kernel now, so a crash of this process cannot take it along.
        try sink.flush()
        index.clusterStarted(at: sink.offset, header: EBML.ElementHeader(id: .cluster, size: nil, headerLength: 4 + EBML.unknownSize.count))
        var header: [UInt8] = []
        EBMLID.cluster.write(into: &header)
        header.append(contentsOf: EBML.unknownSize)
        EBMLElement.uint(.timestamp, UInt64(timestamp)).encode(into: &header)
        try sink.append(header)
        clusterTimestamp = timestamp
    }

    /// Hands buffered bytes to the kernel: a crash of this process no longer loses them.
    public func flush() throws { try sink.flush() }

    /// Flushes, then puts the file on disk: a power cut no longer loses it.
    public func sync() throws { try sink.sync() }

    /// Stops cleanly: appends Cues (one CuePoint per cluster that starts with a video keyframe, or per
    /// cluster when there is no video), patches Duration (the last block's timestamp plus its estimated
    /// duration) and the SeekHead (Info, Tracks, Cues), then syncs and closes the file.
    public func finish() throws {
        guard !finished else { throw RecordingError(.closed, "finish() called twice", path: path) }
        finished = true
        // On failure the file stays as a crash would leave it: playable, and repair can finish it.
        defer { try? sink.close() }
        if let failure { throw RecordingError(failure.code, "an earlier write failed, so the file is left for repair: \(failure.message)", path: path) }
        try layout.finalize(sink, index: index)
        try sink.close()
    }
}

/// Where a live recording keeps the places a clean stop fills in. Both `MatroskaWriter.finish()` and
/// `MatroskaRepair` finish a file through `finalize`, so a repaired file is laid out like a finished one.
struct MatroskaLayout {
    /// Room for a SeekHead of four entries with 8-byte positions.
    static let seekHeadReserve = 128
    /// A Duration: 2-byte ID, 1-byte size, 8-byte float.
    static let durationLength = 11

    var segmentSizeOffset: Int
    var segmentSizeLength: Int
    var segmentDataOffset: Int
    /// Absolute; a Void now, the SeekHead (and a Void after it) once finished.
    var seekHeadSlot: Range<Int>
    /// Absolute position of the 11 bytes for Duration.
    var durationSlot: Int
    var infoPosition: Int
    var tracksPosition: Int

    /// Appends Cues at the end of `sink` and patches Duration, the SeekHead, the Clusters' sizes and
    /// the Segment's size. It syncs before the Segment size, so that a known Segment size always
    /// means the rest is on disk.
    func finalize(_ sink: FileSink, index: MatroskaIndex) throws(RecordingError) {
        let cuesPosition = index.cuePoints.isEmpty ? nil : sink.offset
        guard let seekHeadBytes = seekHead(cuesPosition: cuesPosition) else {
            throw RecordingError(.io, "the SeekHead does not fit the \(seekHeadSlot.count) bytes reserved for it", path: sink.path)
        }
        if !index.cuePoints.isEmpty {
            let points: [EBMLElement] = index.cuePoints.map { point in
                .master(.cuePoint, [
                    .uint(.cueTime, UInt64(max(point.time, 0))),
                    .master(.cueTrackPositions, [
                        .uint(.cueTrack, point.track), .uint(.cueClusterPosition, UInt64(point.clusterPosition - segmentDataOffset)),
                    ]),
                ])
            }
            try sink.append(EBMLElement.master(.cues, points).encoded)
        }
        try sink.patch(at: durationSlot, bytes: EBMLElement.float(.duration, Double(index.endTimestamp ?? 0)).encoded)
        try sink.patch(at: seekHeadSlot.lowerBound, bytes: seekHeadBytes)
        // Readers dislike an unknown-size Cluster inside a Segment of known size (ffmpeg says so on
        // every run), so each Cluster gets its size too: up to its last block.
        for cluster in index.clusterExtents {
            let size = UInt64(cluster.end - cluster.dataStart)
            if size <= EBML.maxValue(length: cluster.sizeLength) {
                try sink.patch(at: cluster.sizeOffset, bytes: EBML.size(size, length: cluster.sizeLength))
            }
        }
        try sink.sync()

        let segmentSize = UInt64(sink.offset - segmentDataOffset)
        if segmentSize <= EBML.maxValue(length: segmentSizeLength) {
            try sink.patch(at: segmentSizeOffset, bytes: EBML.size(segmentSize, length: segmentSizeLength))
            try sink.sync()
        }
    }

    /// The SeekHead pointing at Info, Tracks and (when there are any) Cues, followed by a Void to
    /// fill its slot exactly; nil when it does not fit.
    func seekHead(cuesPosition: Int?) -> [UInt8]? {
        var entries: [(EBMLID, Int)] = [(.info, infoPosition), (.tracks, tracksPosition)]
        if let cuesPosition { entries.append((.cues, cuesPosition)) }
        let seekHead = EBMLElement.master(.seekHead, entries.map { id, position in
            .master(.seek, [.binary(.seekID, id.bytes), .uint(.seekPosition, UInt64(position - segmentDataOffset))])
        })
        return seekHead.filling(seekHeadSlot.count)
    }
}

/// What finishing a file needs to know about its blocks: where each cluster's blocks end, the
/// clusters to seek to and where the timeline ends. The writer keeps one as it goes; repair builds
/// one by reading the clusters.
struct MatroskaIndex {
    struct CuePoint: Equatable {
        var time: Int64
        var track: UInt64
        /// Absolute offset of the cluster in the file.
        var clusterPosition: Int
    }

    /// A cluster that holds blocks: where its size field is and where its last block ends.
    struct Cluster {
        var sizeOffset: Int
        var sizeLength: Int
        var dataStart: Int
        var end: Int
    }

    private(set) var cuePoints: [CuePoint] = []
    private(set) var clusterExtents: [Cluster] = []
    private(set) var blocks = 0
    private let videoTracks: [UInt64]
    /// The cluster begun last, until its first block makes it count.
    private var openCluster: (position: Int, header: EBML.ElementHeader)?
    /// Per track: the last block's timestamp and the step from the one before it.
    private var lastBlocks: [UInt64: (timestamp: Int64, step: Int64)] = [:]

    init(videoTracks: [UInt64]) {
        self.videoTracks = videoTracks
        cuePoints.reserveCapacity(1024)
        clusterExtents.reserveCapacity(1024)
    }

    var clusters: Int { clusterExtents.count }

    /// A cluster starts at absolute offset `position` with `header` (its ID and size field).
    mutating func clusterStarted(at position: Int, header: EBML.ElementHeader) {
        openCluster = (position, header)
    }

    /// The cluster started last was read whole up to absolute offset `end`. Returns whether it holds
    /// a block: then its size, patched by finalize, reaches `end` rather than its last block, so
    /// that what follows the last block (a CRC-32, a Void, an element this reader skips) stays
    /// inside it instead of lying between clusters, where a reader (this one included) calls it damage.
    mutating func clusterEnded(at end: Int) -> Bool {
        defer { openCluster = nil }
        guard openCluster == nil, !clusterExtents.isEmpty else { return false }
        clusterExtents[clusterExtents.count - 1].end = end
        return true
    }

    /// A block of `track` ends at absolute offset `end`.
    mutating func block(track: UInt64, timestamp: Int64, keyframe: Bool, end: Int) {
        if let (position, header) = openCluster {
            openCluster = nil
            let idLength = header.id.byteCount
            clusterExtents.append(Cluster(
                sizeOffset: position + idLength, sizeLength: header.headerLength - idLength,
                dataStart: position + header.headerLength, end: end
            ))
            // A seek lands on a cluster and decodes from its first block: only a keyframe there makes
            // it a place to start. Without video every cluster is one.
            let isVideo = videoTracks.contains(track)
            if videoTracks.isEmpty || (isVideo && keyframe) {
                cuePoints.append(CuePoint(time: timestamp, track: track, clusterPosition: position))
            }
        }
        if !clusterExtents.isEmpty { clusterExtents[clusterExtents.count - 1].end = end }
        blocks += 1
        let step = lastBlocks[track].map { timestamp - $0.timestamp } ?? 0
        lastBlocks[track] = (timestamp, step)
    }

    /// The end of the timeline: over all tracks, the last block's timestamp plus the step before it,
    /// the best guess at the last block's duration.
    var endTimestamp: Int64? { lastBlocks.values.map { $0.timestamp + $0.step }.max() }
}
