import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import SFUCore
#if canImport(Glibc)
import Glibc
#endif

/// What the media thread needs to forward one room's packets: every publishing handle's streams
/// and, on each, the subscriber streams fed from it. The control context builds it from the room
/// (always through `room.forwarding.withLock`, never calling the host while it holds the lock,
/// because the room's media thread takes the same lock for every packet).
struct ForwardingTable {
    var feeds: [UInt64: FeedMedia] = [:]
    var subscribers: [UInt64: SubscriberMedia] = [:]
    /// Events the media thread produced (talking, layer switches). The control context sends them
    /// (`SFUPlugin.deliverEvents`), to handles it still knows: a handle named here may be gone by
    /// then, and only the control context knows that for certain.
    private(set) var pendingEvents: [PendingEvent] = []
    /// Asks the control context to send the pending events soon (the plugin sets it at start);
    /// false if it could not. Called once per batch, so no timer wakes anything while nothing happens.
    var requestDelivery: () -> Bool = { false }
    private var deliveryRequested = false

    mutating func queue(_ event: JSON, to handle: PluginHandle) {
        guard pendingEvents.count < 10_000 else { return }
        pendingEvents.append(PendingEvent(handleID: handle.id, event: event))
        if !deliveryRequested { deliveryRequested = requestDelivery() }
    }

    /// The events queued since the last call; the next one queued asks for delivery again.
    mutating func takeEvents() -> [PendingEvent] {
        deliveryRequested = false
        defer { pendingEvents.removeAll(keepingCapacity: true) }
        return pendingEvents
    }

    /// A feed stream and its feed: (publisher handle id, publisher m-line index).
    func stream(_ source: StreamSource?) -> (feed: FeedMedia, stream: FeedStreamMedia)? {
        guard let source, let feed = feeds[source.feed], source.mindex >= 0, Int(source.mindex) < feed.streams.count,
            let stream = feed.streams[Int(source.mindex)]
        else { return nil }
        return (feed, stream)
    }

    /// Takes a sink off the feed stream it is attached to.
    func detach(_ sink: SinkMedia) {
        stream(sink.source)?.stream.sinks.removeAll { $0 === sink }
        sink.source = nil
    }

    /// Removes a publisher's streams; the subscriber m-lines they fed lose their source.
    mutating func removeFeed(_ id: UInt64) {
        guard let feed = feeds.removeValue(forKey: id) else { return }
        for case let stream? in feed.streams {
            for sink in stream.sinks { sink.source = nil }
        }
    }
}

/// Where a subscriber m-line is fed from: the publisher's handle id and m-line index.
typealias StreamSource = (feed: UInt64, mindex: Int32)

struct PendingEvent {
    let handleID: UInt64
    let event: JSON
}

/// One publisher's PeerConnection as the media thread sees it.
final class FeedMedia {
    let handle: PluginHandle
    let room: SFUID
    let participant: SFUID
    /// By the publisher's m-line index.
    var streams: [FeedStreamMedia?] = []
    /// The handles told about talking (every publisher of the room), when the room has audiolevel_event.
    var talkingAudience: [PluginHandle] = []
    var audioActivePackets = 100
    var audioLevelAverage = 25
    /// One packet's copy, rewritten per subscriber (the host copies it again into its send buffer).
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1500, alignment: 16)

    init(handle: PluginHandle, room: SFUID, participant: SFUID) {
        self.handle = handle
        self.room = room
        self.participant = participant
    }

    deinit { scratch.deallocate() }
}

/// One published m-line: its codec, its simulcast layers, and its subscribers.
final class FeedStreamMedia {
    let mindex: Int32
    let mid: String
    let isVideo: Bool
    let codec: VideoCodec?
    let clockRate: UInt32
    /// Simulcast layers by rid (index 0 = lowest) or by SSRC (from `a=ssrc-group:SIM`, lowest first).
    let rids: [String]
    let simulcastSSRCs: [UInt32]
    var isSimulcast: Bool { rids.count > 1 || simulcastSSRCs.count > 1 }
    /// Per layer: when its last packet arrived, and its bitrate.
    var layers = LayerActivity()
    var layerBitrates = [BitrateMeter](repeating: BitrateMeter(), count: 3)
    /// The SSRC each layer arrives with (learned from packets that carry a rid).
    var layerSSRCs = [UInt32](repeating: 0, count: 3)
    var sinks: [SinkMedia] = []
    /// Moderated: a moderator muted this stream, nothing of it is forwarded.
    var muted = false
    var audioLevels = AudioLevelMeter()
    var lastKeyframeRequestAt: UInt64 = 0
    var keyframePending = false

    init(mindex: Int32, mid: String, isVideo: Bool, codec: VideoCodec?, clockRate: UInt32, rids: [String], simulcastSSRCs: [UInt32]) {
        self.mindex = mindex
        self.mid = mid
        self.isVideo = isVideo
        self.codec = codec
        self.clockRate = clockRate
        self.rids = rids
        self.simulcastSSRCs = simulcastSSRCs
    }

    /// The layer of a packet: by its rid, else its SSRC, else 0.
    func layer(rid: UnsafePointer<CChar>?, ssrc: UInt32) -> Int {
        if let rid, !rids.isEmpty {
            for (i, r) in rids.enumerated() where r.withCString({ strcmp($0, rid) == 0 }) {
                if i < layerSSRCs.count { layerSSRCs[i] = ssrc }
                return i
            }
        }
        if let i = layerSSRCs.firstIndex(of: ssrc), ssrc != 0 { return i }
        if let i = simulcastSSRCs.firstIndex(of: ssrc) { return min(i, 2) }
        return 0
    }


    /// The highest layer `bitrate` (bits per second) carries for a sink now on `current`; 2 when unlimited.
    func layerCap(bitrate: UInt64, current: Int) -> Int {
        guard bitrate > 0, isSimulcast else { return 2 }
        return SimulcastSelector.layerCap(bitrates: layerBitrates.lazy.map(\.bitsPerSecond), budget: bitrate, current: current)
    }

    /// What this stream would take forwarded to `sink` at the layer it asked for.
    func wantedBitrate(for sink: SinkMedia) -> UInt64 {
        guard isVideo else { return SubscriberMedia.audioAllowance }
        let rates = layerBitrates.map(\.bitsPerSecond)
        return isSimulcast ? sink.simulcast.wantedBitrate(bitrates: rates) : rates[0] / 5 * 6
    }

    /// Asks the publisher for a keyframe, at most once a second (a request inside that second is
    /// remembered and sent when it ends, from the packet path).
    func requestKeyframe(host: PluginHost, feed: PluginHandle, now: UInt64) {
        guard isVideo else { return }
        if now - min(now, lastKeyframeRequestAt) >= 1_000_000_000 || lastKeyframeRequestAt == 0 {
            lastKeyframeRequestAt = now
            keyframePending = false
            host.requestKeyframe(feed, mindex: mindex)
        } else {
            keyframePending = true
        }
    }
}

/// One subscriber PeerConnection as the media thread sees it.
final class SubscriberMedia {
    let handle: PluginHandle
    let room: SFUID
    /// By the subscriber's m-line index.
    var sinks: [Int32: SinkMedia] = [:]
    var paused = false
    /// What is relayed to it, and the cap its estimates impose: a REMB below what it receives is
    /// congestion, and caps its simulcast layers to that estimate for `capSeconds`. (A receive-side
    /// estimate rises only with what arrives, so it is read as a ceiling after congestion, not
    /// as permission: otherwise a subscriber started on a low layer could never climb.)
    var sent = BitrateMeter()
    var capBitrate: UInt64 = 0
    var capUntil: UInt64 = 0
    var firstSentAt: UInt64 = 0
    /// Consecutive REMBs below what it receives.
    var lowEstimates = 0
    /// A receiver's estimator starts low and settles on what it receives within a few seconds
    /// (libwebrtc's AIMD control initialises from the incoming rate after 5 s); before that a low
    /// REMB is not congestion.
    static let warmupNanos: UInt64 = 6_000_000_000
    var videoSinks = 1
    var audioSinks = 0
    static let capNanos: UInt64 = 10_000_000_000
    /// What one audio stream is reckoned to take (Opus at its usual WebRTC rates, with headers).
    static let audioAllowance: UInt64 = 50_000
    /// The host's send-side estimate (transport-cc), bits/s; 0 when it has none, and then REMB caps.
    var estimate: UInt64 = 0
    /// When the host was last told what this subscriber wants, to probe toward it.
    var desiredAt: UInt64 = 0
    static let desiredIntervalNanos: UInt64 = 1_000_000_000

    /// The bitrate one simulcast stream may use now; 0: no cap. A send-side estimate is the
    /// budget, shared by the video streams after audio's share; without one, a REMB cap is.
    func layerBudget(now: UInt64) -> UInt64 {
        if estimate > 0 {
            let audio = Self.audioAllowance * UInt64(audioSinks)
            return max(1, (estimate - min(estimate, audio)) / UInt64(max(1, videoSinks)))
        }
        return now < capUntil ? max(1, capBitrate / UInt64(max(1, videoSinks))) : 0
    }

    init(handle: PluginHandle, room: SFUID) {
        self.handle = handle
        self.room = room
    }

    /// What every stream it receives would take at the layers asked for: what the host probes toward.
    func wantedBitrate(table: ForwardingTable) -> UInt64 {
        var total: UInt64 = 0
        for sink in sinks.values where sink.send {
            guard let (_, stream) = table.stream(sink.source) else { continue }
            total &+= stream.wantedBitrate(for: sink)
        }
        return total
    }
}

/// One subscriber m-line: where it is fed from and how its stream is kept continuous.
final class SinkMedia {
    unowned let subscriber: SubscriberMedia
    let mindex: Int32
    let mid: String
    var source: StreamSource?
    var payloadType: UInt8
    var send = true
    var continuity: RTPContinuity
    var vp8 = VP8Continuity()
    var simulcast = SimulcastSelector()
    var capHold = LayerCapHold()

    init(subscriber: SubscriberMedia, mindex: Int32, mid: String, payloadType: UInt8, clockRate: UInt32) {
        self.subscriber = subscriber
        self.mindex = mindex
        self.mid = mid
        self.payloadType = payloadType
        continuity = RTPContinuity(clockRate: clockRate)
    }
}

/// The media thread's work: one publisher packet in, one rewritten copy out per subscriber.
enum Forwarder {
    /// [media] A publisher's RTP packet, forwarded in its room's `table`.
    static func forward(_ packet: UnsafePointer<atrium_rtp_packet_t>, from handle: PluginHandle, in room: Guarded<ForwardingTable>, host: PluginHost) {
        let now = monotonicNanoseconds()
        room.withLock { table in
            let p = packet.pointee
            guard let (feed, stream) = table.stream((handle.id, p.mindex)) else { return }
            forward(p, stream: stream, feed: feed, table: &table, host: host, now: now)
        }
    }

    private static func forward(_ p: atrium_rtp_packet_t, stream: FeedStreamMedia, feed: FeedMedia, table: inout ForwardingTable,
                                host: PluginHost, now: UInt64) {
        let length = Int(p.length)
        guard length >= 12, length <= feed.scratch.count else { return }
        feed.scratch.copyMemory(from: UnsafeRawBufferPointer(start: p.buffer, count: length))
        guard let view = try? RTPPacketView(buffer: feed.scratch, length: length) else { return }
        let ssrc = view.ssrc
        let sequence = view.sequenceNumber
        let timestamp = view.timestamp
        let payload = UnsafeRawBufferPointer(rebasing: feed.scratch[view.payloadOffset..<(view.payloadOffset + view.payloadLength)])

        if !stream.isVideo, p.audio_level >= 0, !feed.talkingAudience.isEmpty {
            if let talking = stream.audioLevels.add(level: Int(p.audio_level), packets: feed.audioActivePackets, threshold: feed.audioLevelAverage) {
                let event: JSON = [
                    "videoroom": .string(talking ? "talking" : "stopped-talking"), "room": feed.room.json, "id": feed.participant.json,
                    "mindex": .int(Int64(stream.mindex)), "mid": .string(stream.mid),
                    "audio-level-dBov-avg": .double(stream.audioLevels.lastAverage),
                ]
                for h in feed.talkingAudience { table.queue(event, to: h) }
            }
        }
        if stream.muted { return }

        var layer = 0
        var keyframe = false
        var vp8: VP8Descriptor?
        if stream.isVideo {
            layer = stream.isSimulcast ? min(stream.layer(rid: p.rid, ssrc: ssrc), 2) : 0
            stream.layers.packet(layer: layer, now: now)
            stream.layerBitrates[layer].add(bytes: length, now: now)
            if let codec = stream.codec {
                if codec == .vp8 { vp8 = VP8Descriptor(payload) }
                keyframe = vp8?.isKeyframe ?? VideoPayload.isKeyframe(codec, payload)
            }
            if stream.keyframePending { stream.requestKeyframe(host: host, feed: feed.handle, now: now) }
        }
        var wantsKeyframe = false
        var out = p
        out.buffer = UnsafePointer(feed.scratch.baseAddress!.assumingMemoryBound(to: UInt8.self))
        out.rid = nil

        for sink in stream.sinks {
            let subscriber = sink.subscriber
            guard sink.send, !subscriber.paused else { continue }
            if stream.isSimulcast {
                let active = stream.layers.choosable(now: now, current: sink.simulcast.substream)
                let cap = sink.capHold.update(stream.layerCap(bitrate: subscriber.layerBudget(now: now), current: sink.simulcast.substream), now: now)
                switch sink.simulcast.decide(layer: layer, keyframe: keyframe, active: active, cap: cap) {
                case .drop:
                    if sink.simulcast.wantsKeyframe(active: active, cap: cap) { wantsKeyframe = true }
                    continue
                case .switched:
                    table.queue(["videoroom": "event", "room": subscriber.room.json, "mid": .string(sink.mid), "substream": .int(Int64(layer))],
                                to: subscriber.handle)
                case .forward:
                    if sink.simulcast.wantsKeyframe(active: active, cap: cap) { wantsKeyframe = true }
                }
            }
            if let vp8, vp8.temporalID > sink.simulcast.targetTemporal {
                sink.continuity.skip(ssrc: ssrc, sequence: sequence)
                continue
            }
            let mapped = sink.continuity.map(ssrc: ssrc, sequence: sequence, timestamp: timestamp, now: now)
            view.rewrite(ssrc: ssrc, sequenceNumber: mapped.sequence, timestamp: mapped.timestamp, payloadType: sink.payloadType)
            if let vp8 {
                let ids = sink.vp8.map(ssrc: ssrc, pictureID: vp8.pictureID, tl0PicIdx: vp8.tl0PicIdx)
                vp8.rewrite(UnsafeMutableRawBufferPointer(rebasing: feed.scratch[view.payloadOffset...]), pictureID: ids.pictureID, tl0PicIdx: ids.tl0PicIdx)
            }
            out.mindex = sink.mindex
            withUnsafePointer(to: &out) { _ = host.relayRTP(subscriber.handle, $0) }
            subscriber.sent.add(bytes: length, now: now)
            if subscriber.firstSentAt == 0 { subscriber.firstSentAt = now }
            if stream.isVideo, now - min(now, subscriber.desiredAt) >= SubscriberMedia.desiredIntervalNanos {
                subscriber.desiredAt = now
                host.setDesiredBitrate(subscriber.handle, subscriber.wantedBitrate(table: table))
            }
        }
        if wantsKeyframe { stream.requestKeyframe(host: host, feed: feed.handle, now: now) }
    }

    /// [media] The host's send-side estimate for a subscriber moved.
    static func estimateChanged(_ bitrate: UInt64, for handle: PluginHandle, in room: Guarded<ForwardingTable>) {
        room.withLock { table in table.subscribers[handle.id]?.estimate = bitrate }
    }

    /// [media] RTCP from a subscriber: keyframe requests go to the publisher of that stream, REMB
    /// becomes the subscriber's bandwidth estimate.
    static func subscriberFeedback(_ packets: [RTCPPacket], mindex: Int32, from handle: PluginHandle, in room: Guarded<ForwardingTable>,
                                   host: PluginHost) {
        let now = monotonicNanoseconds()
        room.withLock { table in
            guard let subscriber = table.subscribers[handle.id] else { return }
            for packet in packets {
                switch packet {
                case .pictureLossIndication, .fullIntraRequest:
                    guard let (feed, stream) = table.stream(subscriber.sinks[mindex]?.source) else { continue }
                    stream.requestKeyframe(host: host, feed: feed.handle, now: now)
                case .remb(let remb):
                    let receiving = subscriber.sent.bitsPerSecond
                    let settled = subscriber.firstSentAt != 0 && now - min(now, subscriber.firstSentAt) >= SubscriberMedia.warmupNanos
                    guard settled, receiving > 0, remb.bitrate < receiving / 10 * 9 else {
                        subscriber.lowEstimates = 0
                        continue
                    }
                    subscriber.lowEstimates += 1
                    if subscriber.lowEstimates >= 2 {
                        subscriber.capBitrate = remb.bitrate
                        subscriber.capUntil = now + SubscriberMedia.capNanos
                    }
                default:
                    break
                }
            }
        }
    }
}
