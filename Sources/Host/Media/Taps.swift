import AtriumJSON
import Dispatch
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// One incoming stream (an SSRC on an m-line of a labelled handle) as the tap extension shows it to
/// tap plugins: its id, what it carries, and the tap plugins that asked for its packets. Owned by
/// the media thread.
final class TapStream {
    let id: UInt64
    let ssrc: UInt32
    let rid: String?
    weak var peer: PeerConnection?
    let mindex: Int
    /// Tap plugins that answered stream_started with 1; they get its packets.
    var subscribers: [LoadedPlugin] = []
    /// Not a codec a tap can use (rtx, red, ulpfec…): known, so it is not announced again.
    let ignored: Bool

    init(id: UInt64, ssrc: UInt32, rid: String?, peer: PeerConnection, mindex: Int, ignored: Bool) {
        self.id = id
        self.ssrc = ssrc
        self.rid = rid
        self.peer = peer
        self.mindex = mindex
        self.ignored = ignored
    }
}

/// What stream_started tells a tap plugin, copied off the media thread.
struct TapStreamInfo: Sendable {
    let id: UInt64
    let handleID: UInt64
    let labels: String
    let isVideo: Bool
    let mid: String
    let rid: String?
    let codec: String
    let payloadType: UInt8
    let clockRate: UInt32
    let ssrc: UInt32
    let fmtp: String?
}

/// The codecs a tap is offered; retransmission and redundancy streams are not media of their own.
private let tappableCodecs: Set<String> = ["opus", "vp8", "vp9", "h264", "av1"]

extension MediaEngine {
    /// Hands an incoming RTP packet of a labelled handle to the tap plugins that asked for its
    /// stream, announcing the stream first when its SSRC is new (media thread).
    func tap(_ bytes: UnsafeRawBufferPointer, packet: RTPPacketView, peer: PeerConnection, stream: MediaStream, now: UInt64) {
        let ssrc = packet.ssrc
        guard let tap = stream.taps[ssrc] else {
            startTap(packet: packet, peer: peer, stream: stream)
            return
        }
        guard !tap.subscribers.isEmpty else { return }
        var p = atrium_rtp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtp_packet_t>.size), mindex: Int32(stream.index), is_video: stream.isVideo ? 1 : 0,
            buffer: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), length: UInt32(bytes.count),
            audio_level: -1, audio_voice: -1, video_rotation: -1, mid: UnsafePointer(stream.midCString), rid: nil)
        let arrival = now / 1_000
        for plugin in tap.subscribers {
            calling(plugin) { _ = plugin.tap?.stream_rtp?(plugin.pluginPointer, tap.id, &p, arrival) }
        }
    }

    /// Hands an RTCP compound packet carrying sender reports to the tap plugins of the streams it
    /// reports on (media thread).
    func tapRTCP(_ plain: UnsafeRawBufferPointer, reportedSSRCs: [UInt32], peer: PeerConnection, now: UInt64) {
        guard peer.tapLabels != nil else { return }
        var p = atrium_rtcp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtcp_packet_t>.size), mindex: -1, is_video: 0,
            buffer: plain.baseAddress!.assumingMemoryBound(to: UInt8.self), length: UInt32(plain.count))
        for ssrc in reportedSSRCs {
            guard let i = peer.streamBySSRC[ssrc], i < peer.streams.count, let tap = peer.streams[i].taps[ssrc] else { continue }
            p.mindex = Int32(i)
            p.is_video = peer.streams[i].isVideo ? 1 : 0
            for plugin in tap.subscribers {
                calling(plugin) { _ = plugin.tap?.stream_rtcp?(plugin.pluginPointer, tap.id, &p, now / 1_000) }
            }
        }
    }

    private func startTap(packet: RTPPacketView, peer: PeerConnection, stream: MediaStream) {
        guard let labels = peer.tapLabels else { return }
        let codec = stream.codecs[packet.payloadType]
        let name = codec?.name.lowercased() ?? ""
        let rid = stream.incomingRidID != 0 ? packet.headerExtensionString(id: stream.incomingRidID) : nil
        let tap = TapStream(id: nextTapStreamID(), ssrc: packet.ssrc, rid: rid, peer: peer, mindex: stream.index,
                            ignored: !tappableCodecs.contains(name))
        // A new SSRC in the place of another (same m-line and rid) means the old one is over.
        for (ssrc, old) in stream.taps where old.rid == rid && !old.ignored && !tap.ignored {
            stream.taps.removeValue(forKey: ssrc)
            endTap(old)
        }
        stream.taps[packet.ssrc] = tap
        tapStreamsByID[tap.id] = tap
        guard !tap.ignored, let codec else { return }
        let info = TapStreamInfo(
            id: tap.id, handleID: peer.handle.id, labels: labels, isVideo: stream.isVideo, mid: stream.mid, rid: rid,
            codec: name, payloadType: packet.payloadType, clockRate: codec.clockRate, ssrc: packet.ssrc, fmtp: codec.fmtp)
        for plugin in tapPlugins {
            plugin.queue.async { [self] in
                guard plugin.tapStreamStarted(info) else { return }
                let id = info.id
                post { self.tapStreamsByID[id]?.subscribers.append(plugin) }
            }
        }
    }

    /// Ends every tap stream of a PeerConnection (it closed, or its handle lost its labels).
    func endTaps(of peer: PeerConnection) {
        for stream in peer.streams {
            for tap in stream.taps.values { endTap(tap) }
            stream.taps.removeAll()
        }
    }

    func endTap(_ tap: TapStream) {
        tapStreamsByID.removeValue(forKey: tap.id)
        tap.subscribers = []
        let id = tap.id
        // Every plugin hears the end, even one whose acceptance is still on its way: after this no
        // packet of the stream reaches it.
        for plugin in tapPlugins where !tap.ignored {
            plugin.queue.async { plugin.tapStreamEnded(id) }
        }
    }

    /// A handle's labels changed: its PeerConnection starts announcing streams (or stops, when
    /// the labels were cleared). Runs on the media thread.
    func labelsChanged(_ handle: Handle, labels: String?) {
        guard let peer = peer(for: handle) else { return }
        peer.tapLabels = labels
        if labels == nil { endTaps(of: peer) }
    }

    /// The tap extension's keyframe request for a stream.
    func tapRequestKeyframe(_ id: UInt64) -> Int32 {
        guard let tap = tapStreamsByID[id], let peer = tap.peer else { return ATRIUM_ERR_NOT_FOUND }
        requestKeyframe(peer, mindex: Int32(tap.mindex), now: monotonicNanoseconds())
        return ATRIUM_OK
    }

    /// The tap extension's retransmission request: a generic NACK to the stream's sender.
    func tapRequestRetransmission(_ id: UInt64, _ sequenceNumbers: [UInt16]) -> Int32 {
        guard let tap = tapStreamsByID[id], let peer = tap.peer else { return ATRIUM_ERR_NOT_FOUND }
        guard peer.isConnected else { return ATRIUM_ERR_STATE }
        sendRTCP(peer, packets: [.genericNACK(GenericNACK(senderSSRC: peer.hostSSRC, mediaSSRC: tap.ssrc, lostSequenceNumbers: sequenceNumbers))])
        return ATRIUM_OK
    }
}

extension LoadedPlugin {
    /// stream_started on the plugin's control context: whether it wants the packets.
    func tapStreamStarted(_ info: TapStreamInfo) -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let started = tap?.stream_started else { return false }
        return info.labels.withCString { labels in
            info.mid.withCString { mid in
                info.codec.withCString { codec in
                    withOptionalCString(info.rid) { rid in
                        withOptionalCString(info.fmtp) { fmtp in
                            var s = atrium_tap_stream_t(
                                struct_size: UInt32(MemoryLayout<atrium_tap_stream_t>.size), stream_id: info.id, handle_id: info.handleID,
                                labels_json: labels, labels_len: strlen(labels), is_video: info.isVideo ? 1 : 0, mid: mid, rid: rid,
                                codec: codec, payload_type: UInt32(info.payloadType), clock_rate: info.clockRate, ssrc: info.ssrc, fmtp: fmtp)
                            return started(pluginPointer, &s) == 1
                        }
                    }
                }
            }
        }
    }

    func tapStreamEnded(_ id: UInt64) {
        dispatchPrecondition(condition: .onQueue(queue))
        tap?.stream_ended?(pluginPointer, id)
    }

    func tapLabelsChanged(handleID: UInt64, labels: String) {
        dispatchPrecondition(condition: .onQueue(queue))
        labels.withCString { tap?.labels_changed?(pluginPointer, handleID, $0, strlen($0)) }
    }
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}
