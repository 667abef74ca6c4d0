public import PluginKit
import RTC

extension TapStream {
    /// The participant the stream belongs to: its `participant` label, else its handle.
    public var participant: String { labels["participant"] ?? "handle-\(handleID)" }
}

/// A frame ready for a file: where it falls on the recorder's clock, and its bytes.
public struct TimedFrame: Sendable {
    public var micros: Int64
    public var isVideo: Bool
    public var isKeyframe: Bool
    public var data: [UInt8]
    /// Opus samples (48 kHz) for audio; 0 for video.
    public var samples: Int
    public var width: Int?
    public var height: Int?
}

/// One recorded stream on its way to disk: packets are put in order (waiting for retransmissions),
/// assembled into frames (video from a keyframe on, audio with its gaps filled) and placed on the
/// recorder's clock.
public final class TrackInput {
    public let description: TapStream
    public var clock: StreamClock
    private var reorder: ReorderBuffer
    private var video: (any VideoFrameAssembler)?
    private var audio: OpusTimeline?
    private var lastKeyframeRequest: Int64?
    private var waitingSince: Int64?
    public private(set) var ended = false
    /// Counters for the manifest.
    public private(set) var packets = 0
    public private(set) var lostPackets = 0
    public private(set) var frames = 0
    public private(set) var keyframeRequests = 0

    /// How far before its arrival a frame may be placed (see `StreamClock.place`). Counted from
    /// the arrival, not from when the reorder buffer lets the frame out: a stream's first frames
    /// wait the whole reorder horizon, and that wait must not cut what a sender report may say
    /// about them (lip sync).
    let latestLagMicros: Int64

    public init?(_ description: TapStream, reorderMillis: Int, latestLagMillis: Int = 600) {
        latestLagMicros = Int64(latestLagMillis) * 1_000
        self.description = description
        clock = StreamClock(clockRate: description.clockRate)
        reorder = ReorderBuffer(horizonNanos: UInt64(reorderMillis) * 1_000_000)
        if description.isVideo {
            guard let codec = VideoCodec(encodingName: description.codec) else { return nil }
            video = makeVideoFrameAssembler(codec)
        } else {
            guard description.codec == "opus" else { return nil }
            audio = OpusTimeline()
        }
    }

    /// Matroska's codec id for the stream.
    public var codecID: String {
        switch description.codec {
        case "vp8": "V_VP8"
        case "vp9": "V_VP9"
        case "av1": "V_AV1"
        case "h264": "V_MPEG4/ISO/AVC"
        default: "A_OPUS"
        }
    }

    /// H.264 needs Matroska; everything else fits WebM.
    public var needsMatroska: Bool { description.codec == "h264" }

    /// CodecPrivate once known (H.264 avcC, AV1 av1C); nil for the others.
    public var codecPrivate: [UInt8]? { video?.codecPrivate }

    /// An RTP packet as it arrived.
    public func rtp(_ bytes: UnsafeRawBufferPointer, arrivalMicros: Int64, participant: inout SenderClockOffset) {
        guard let packet = ReceivedPacket(bytes: bytes, arrivalNanos: UInt64(max(arrivalMicros, 0)) * 1_000) else { return }
        packets += 1
        _ = clock.observe(timestamp: packet.timestamp, arrivalMicros: arrivalMicros, participant: &participant)
        _ = reorder.insert(packet)
    }

    /// A sender report about this stream.
    public func senderReport(ntp: UInt64, rtpTimestamp: UInt32) {
        clock.senderReport(ntp: ntp, rtpTimestamp: rtpTimestamp)
    }

    /// Frames completed by now, placed on the recorder's clock (in order).
    public func frames(now micros: Int64, participant: SenderClockOffset) -> [TimedFrame] {
        let released = ended ? reorder.drain() : reorder.release(now: UInt64(max(micros, 0)) * 1_000)
        var out: [TimedFrame] = []
        for (packet, lossBefore) in released {
            if lossBefore { lostPackets += 1 }
            let arrived = Int64(packet.arrivalNanos / 1_000)
            if var assembler = video {
                for f in assembler.push(packet, lossBefore: lossBefore) {
                    guard let at = place(f.timestamp, participant: participant, arrived: arrived) else { continue }
                    out.append(TimedFrame(micros: at, isVideo: true, isKeyframe: f.isKeyframe, data: f.data, samples: 0, width: f.width, height: f.height))
                }
                video = assembler
            } else if var timeline = audio {
                for p in timeline.push(packet, lossBefore: lossBefore) {
                    guard let at = place(p.timestamp, participant: participant, arrived: arrived) else { continue }
                    out.append(TimedFrame(micros: at, isVideo: false, isKeyframe: true, data: p.packet, samples: p.samples, width: nil, height: nil))
                }
                audio = timeline
            }
        }
        frames += out.count
        return out
    }

    /// A frame's time on the recorder's clock; `arrived`: when the packet that completed it arrived.
    /// Nil also for a frame placed more than `placementLimitMicros` from its arrival.
    private func place(_ timestamp: Int64, participant: SenderClockOffset, arrived: Int64) -> Int64? {
        // Drained at the stream's end, frames may be older than that.
        guard let at = clock.place(clock.extendNear(UInt32(truncatingIfNeeded: timestamp)), participant: participant,
                                   notBefore: ended ? .min : arrived - latestLagMicros)
        else { return nil }
        // Placements follow arrivals within seconds (reorder horizon, lip sync). Timestamps or
        // sender reports that put a frame further away are no sender's clock; bounding placements
        // by arrival also bounds the arithmetic on them downstream (file offsets, audio gaps).
        guard at >= arrived - Self.placementLimitMicros, at <= arrived + Self.placementLimitMicros else { return nil }
        return at
    }

    /// How far from its arrival a frame may be placed: ten minutes.
    static let placementLimitMicros: Int64 = 600_000_000

    /// Sequence numbers to ask again for now.
    public func nacks(now micros: Int64) -> [UInt16] {
        ended ? [] : reorder.nacks(now: UInt64(max(micros, 0)) * 1_000)
    }

    /// Whether to ask the sender for a keyframe now: while video waits for one, every 200 ms for
    /// the first second, then once a second.
    public func wantsKeyframe(now micros: Int64) -> Bool {
        guard !ended, let video, video.needsKeyframe else {
            waitingSince = nil
            return false
        }
        let since = waitingSince ?? micros
        waitingSince = since
        let interval: Int64 = micros - since < 1_000_000 ? 200_000 : 1_000_000
        if let last = lastKeyframeRequest, micros - last < interval { return false }
        lastKeyframeRequest = micros
        keyframeRequests += 1
        return true
    }

    /// The stream ended: what is buffered is released on the next `frames` call.
    public func end() { ended = true }
}
