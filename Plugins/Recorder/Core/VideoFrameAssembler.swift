import RTC

/// One whole coded video frame (a picture), ready to be written as one block of a file.
public struct VideoFrame: Sendable, Equatable {
    /// The extended RTP timestamp (90 kHz), wraps removed.
    public var timestamp: Int64
    /// A frame a decoder can start from.
    public var isKeyframe: Bool
    /// The frame as files store it: VP8/VP9 frame (VP9 spatial layers joined by a superframe index),
    /// H.264 access unit in AVCC form (4-byte lengths), AV1 temporal unit of OBUs with size fields.
    public var data: [UInt8]
    /// The coded size, known on keyframes.
    public var width: Int?
    public var height: Int?

    public init(timestamp: Int64, isKeyframe: Bool, data: [UInt8], width: Int? = nil, height: Int? = nil) {
        self.timestamp = timestamp
        self.isKeyframe = isKeyframe
        self.data = data
        self.width = width
        self.height = height
    }
}

/// Turns the packets of one video stream, in sequence order, into whole frames, and keeps what is
/// written decodable: nothing before the first keyframe, and after a lost frame that later frames
/// may refer to, nothing until the next keyframe (a clean freeze instead of smearing).
public protocol VideoFrameAssembler: Sendable {
    /// Feeds one packet (in sequence order, with the reorder buffer's `lossBefore` flag). Returns
    /// the frames it completed.
    mutating func push(_ packet: ReceivedPacket, lossBefore: Bool) -> [VideoFrame]
    /// True from the start and after a loss that made the decoder state unusable: frames are
    /// withheld until a keyframe. The caller asks for one with a PLI (throttled) while it is set.
    var needsKeyframe: Bool { get }
    /// Matroska CodecPrivate once known: H.264 avcC from the first SPS and PPS, AV1 av1C from the
    /// sequence header; nil for VP8 and VP9.
    var codecPrivate: [UInt8]? { get }
}

/// The assembler for `codec`'s RTP payload format.
public func makeVideoFrameAssembler(_ codec: VideoCodec) -> any VideoFrameAssembler {
    switch codec {
    case .vp8: RTPFrameAssembler<VP8Depacketizer>()
    case .vp9: RTPFrameAssembler<VP9Depacketizer>()
    case .h264: RTPFrameAssembler<H264Depacketizer>()
    case .av1: RTPFrameAssembler<AV1Depacketizer>()
    }
}

/// What a frame's packets came to.
enum FrameOutcome {
    case frame(data: [UInt8], isKeyframe: Bool, width: Int?, height: Int?)
    /// Something is wrong with it (an unfinished fragment, no parameter sets for an IDR): dropped.
    case unusable
    /// Nothing to write (only access unit delimiters or temporal delimiters).
    case empty
}

/// One codec's RTP payload format: how packets of a frame join, where a frame visibly starts, and
/// what a lost frame means for the ones after it.
protocol RTPDepacketizer: Sendable {
    init()
    /// Whether this payload shows that it is the first packet of a frame, so that a loss just before
    /// it did not take the frame's start.
    func beginsFrame(_ payload: [UInt8]) -> Bool
    /// Whether whole frames may have been lost in a gap just before this first packet of a frame
    /// (VP8 and VP9 tell from consecutive picture ids). Called before `append` of that packet.
    func framesMayBeLost(before payload: [UInt8]) -> Bool
    /// Starts gathering a new frame.
    mutating func startFrame()
    /// Adds the next packet of the frame. False when it cannot be used (malformed, or a fragment
    /// without its start); also called for frames already known broken, to keep picture ids.
    mutating func append(_ payload: [UInt8]) -> Bool
    /// Whether later frames may refer to the frame gathered so far (false for VP8 N=1, H.264 nal_ref_idc 0).
    var frameMayBeReference: Bool { get }
    /// The frame from the packets appended since `startFrame`.
    mutating func finishFrame() -> FrameOutcome
    var codecPrivate: [UInt8]? { get }
}

extension RTPDepacketizer {
    func framesMayBeLost(before payload: [UInt8]) -> Bool { true }
    var codecPrivate: [UInt8]? { nil }
}

/// The frame rules common to every codec: a frame is the packets sharing one RTP timestamp, whole
/// from its start to the marker (or to the timestamp change when the sender set no marker); a
/// frame with a packet missing is dropped; keyframe gating and freezing.
struct RTPFrameAssembler<Format: RTPDepacketizer>: VideoFrameAssembler {
    private var format = Format()
    private var timestamps = WrapExtender<UInt32>()
    /// The frame being gathered: its timestamp and whether a packet of it is missing.
    private var gathering: (timestamp: Int64, broken: Bool)?
    /// A loss reported on a packet without payload (padding), carried to the next packet with payload.
    private var lossPending = false
    private(set) var needsKeyframe = true

    init() {}

    var codecPrivate: [UInt8]? { format.codecPrivate }

    mutating func push(_ packet: ReceivedPacket, lossBefore: Bool) -> [VideoFrame] {
        let loss = lossBefore || lossPending
        // Padding-only packets take sequence numbers but carry no media.
        guard !packet.payload.isEmpty else {
            lossPending = loss
            return []
        }
        lossPending = false
        let timestamp = timestamps.extend(packet.timestamp)
        var frames: [VideoFrame] = []
        if let current = gathering, current.timestamp != timestamp {
            // The sender set no marker, or the marker packet is what was lost.
            finish(broken: current.broken || loss, into: &frames)
        }
        if gathering == nil {
            var broken = false
            if loss {
                if format.framesMayBeLost(before: packet.payload) { needsKeyframe = true }
                broken = !format.beginsFrame(packet.payload)
            }
            format.startFrame()
            gathering = (timestamp, broken)
        } else if loss {
            gathering?.broken = true
        }
        if !format.append(packet.payload) { gathering?.broken = true }
        if packet.marker { finish(broken: gathering?.broken ?? true, into: &frames) }
        return frames
    }

    private mutating func finish(broken: Bool, into frames: inout [VideoFrame]) {
        guard let timestamp = gathering?.timestamp else { return }
        gathering = nil
        if broken {
            if format.frameMayBeReference { needsKeyframe = true }
            return
        }
        switch format.finishFrame() {
        case .empty:
            return
        case .unusable:
            if format.frameMayBeReference { needsKeyframe = true }
        case .frame(let data, let isKeyframe, let width, let height):
            if isKeyframe {
                needsKeyframe = false
            } else if needsKeyframe {
                return
            }
            frames.append(VideoFrame(timestamp: timestamp, isKeyframe: isKeyframe, data: data, width: width, height: height))
        }
    }
}
