import AtriumJSON
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// Why a PeerConnection ended: the ABI code for hangup_media and the Janus reason text for the
/// client's `hangup` event.
struct HangupReason: Sendable {
    let code: Int32
    let text: String

    static let client = HangupReason(code: ATRIUM_HANGUP_CLIENT, text: "Janus API")
    static let closePC = HangupReason(code: ATRIUM_HANGUP_CLOSE_PC, text: "Close PC")
    static let dtlsAlert = HangupReason(code: ATRIUM_HANGUP_DTLS_ALERT, text: "DTLS alert")
    static let dtlsError = HangupReason(code: ATRIUM_HANGUP_ERROR, text: "DTLS error")
    static let iceFailed = HangupReason(code: ATRIUM_HANGUP_ICE_FAILED, text: "ICE failed")
    static let detach = HangupReason(code: ATRIUM_HANGUP_DETACH, text: "Detach")
}

/// A client's WebRTC PeerConnection as the host sees it: one ICE-lite agent, one DTLS association,
/// SRTP both ways, and a stream per m-line. Owned by the media thread; nothing here locks.
final class PeerConnection {
    let handle: Handle
    var ice: IceLiteAgent
    var dtls: DTLSTransport?
    var dtlsRole: DTLSTransport.Role?
    var remoteFingerprint: String?
    var inbound: SRTPContext?
    var outbound: SRTPContext?
    var streams: [MediaStream] = []
    /// Remote SSRC → index in `streams`, learned from the SDP or the first packet.
    var streamBySSRC: [UInt32: Int] = [:]
    /// ICE restarts this minute, so a client cannot make the media thread restart ICE at will.
    var restartBudget = RestartBudget()
    /// Paths that passed a connectivity check (all demultiplex to this PeerConnection).
    var paths: Set<IcePath> = []
    /// Its ICE-TCP connections, by the peer's address.
    var connections: [TransportAddress: TCPConnection] = [:]
    var remoteDescription: SessionDescription?
    /// The host sent an offer (a plugin's) and waits for the client's answer.
    var awaitingAnswer = false
    /// The client sent an offer and the plugin has not answered yet.
    var awaitingLocalAnswer = false
    var webrtcUp = false
    var closed = false
    var rembBitrate: UInt64 = 0
    let hostSSRC = UInt32.random(in: 1...UInt32.max)
    var transportSequence: UInt16 = 0
    /// The send-side estimate, when the host writes transport-wide sequence numbers here.
    var bandwidth: BandwidthEstimator?
    /// Counts probe filler packets, to pick which recent packet the next one resends.
    var fillerCount = 0
    /// What arrived under the peer's transport-wide sequence numbers since the last feedback
    /// (made on the first such packet).
    var arrivals: FeedbackRecorder?
    var lastReportAt: UInt64 = 0
    var cname: String
    /// The handle's labels as JSON text while it has any: its incoming streams are offered to taps.
    var tapLabels: String?

    init(handle: Handle, now: UInt64, consentTimeout: Double) {
        self.handle = handle
        ice = IceLiteAgent(now: now, consentTimeoutSeconds: consentTimeout)
        cname = "atrium-\(handle.id)"
    }

    var plugin: LoadedPlugin { handle.plugin }
    var isConnected: Bool { inbound != nil && outbound != nil && !closed }

    /// For the admin API's handle_info: where ICE, DTLS and each stream stand.
    var summary: JSON {
        let dtlsState: String = switch dtls?.state {
        case nil: "none"
        case .new?: "new"
        case .connecting?: "connecting"
        case .connected?: "connected"
        case .closed?: "closed"
        case .failed(let why)?: "failed: \(why)"
        }
        let streamList: [JSON] = streams.map { s in
            [
                "mid": .string(s.mid), "type": .string(s.kind), "send": .bool(s.sends), "receive": .bool(s.receives),
                "receiving": .bool(s.receiving), "local_ssrc": .int(Int64(s.localSSRC)),
                "remote_ssrcs": .array(s.statistics.keys.sorted().map { .int(Int64($0)) }),
                "packets_received": .int(Int64(s.statistics.values.reduce(0) { $0 + Int($1.received) })),
                "packets_sent": .int(Int64(s.packetsSent)),
                "nacked_upstream": .int(Int64(s.missing.values.reduce(0) { $0 + $1.requested })),
                "recovered_upstream": .int(Int64(s.missing.values.reduce(0) { $0 + $1.recovered })),
            ]
        }
        return [
            "peerconnection": true,
            "ice": ["state": .string("\(ice.state)"), "local_ufrag": .string(ice.local.ufrag),
                    "selected": ice.selected.map { .string($0.description) } ?? .null],
            "dtls": ["state": .string(dtlsState), "role": .string(dtlsRole.map { $0 == .client ? "active" : "passive" } ?? "unset")],
            "srtp": .bool(inbound != nil),
            "streams": .array(streamList),
            "bandwidth": bandwidth.map { b in
                [
                    "estimate": .int(Int64(b.estimate)), "desired": .int(Int64(b.desired)),
                    "acked": b.ackedBitsPerSecond.map { .int(Int64($0)) } ?? .null,
                    "delay": .string("\(b.delayUsage)"), "loss": .double(b.lossFraction), "feedback": .int(Int64(b.feedbackCount)),
                    "probes": .int(Int64(b.prober.clusters)),
                ]
            } ?? .null,
        ]
    }

    /// The stream for a remote description's sections, created or updated in index order, and the
    /// SSRCs that the previous description announced and this one does not (their statistics and
    /// taps are over). The SSRC map is rebuilt from what this description announces and what the
    /// streams still track, so renegotiating with new SSRCs again and again grows nothing.
    func updateStreams(remote: SessionDescription) -> [(stream: MediaStream, ssrc: UInt32)] {
        var gone: [(stream: MediaStream, ssrc: UInt32)] = []
        var map: [UInt32: Int] = [:]
        for (i, m) in remote.media.enumerated() {
            guard m.isRTP, m.kind == .audio || m.kind == .video else { continue }
            let stream = stream(at: i, mid: m.mid ?? "\(i)", isVideo: m.kind == .video)
            stream.applyRemote(m)
            let announced = Set(m.ssrcs)
            if let previous = remoteDescription, i < previous.media.count {
                for ssrc in Set(previous.media[i].ssrcs).subtracting(announced) where stream.statistics[ssrc] != nil || stream.taps[ssrc] != nil {
                    gone.append((stream, ssrc))
                }
            }
            for ssrc in stream.statistics.keys { map[ssrc] = i }
            for ssrc in announced { map[ssrc] = i }
        }
        for (_, ssrc) in gone where !remote.media.contains(where: { $0.ssrcs.contains(ssrc) }) { map.removeValue(forKey: ssrc) }
        streamBySSRC = map
        return gone
    }

    func stream(at index: Int, mid: String, isVideo: Bool) -> MediaStream {
        while streams.count <= index { streams.append(MediaStream(index: streams.count, mid: "\(streams.count)", isVideo: false)) }
        if streams[index].mid != mid || streams[index].isVideo != isVideo {
            streams[index] = MediaStream(index: index, mid: mid, isVideo: isVideo)
        }
        return streams[index]
    }

    /// Which stream an incoming packet belongs to: its SSRC if known, else its mid extension,
    /// else the one section that negotiated its payload type. A stream learns at most
    /// `maxSSRCsPerStream` SSRCs from packets: a peer sending from ever new SSRCs would otherwise
    /// grow the statistics, which the media thread walks every second, without bound.
    func resolveStream(_ packet: RTPPacketView, maxSSRCsPerStream: Int) -> MediaStream? {
        if let i = streamBySSRC[packet.ssrc], i < streams.count { return streams[i] }
        var found: MediaStream?
        if let midID = streams.first(where: { $0.incomingMidID != 0 })?.incomingMidID,
            let mid = packet.headerExtensionString(id: midID)
        {
            found = streams.first { $0.mid == mid }
        }
        if found == nil {
            let candidates = streams.filter { $0.clockRates[packet.payloadType] != nil }
            if candidates.count == 1 { found = candidates[0] }
        }
        guard let found, found.statistics.count < maxSSRCsPerStream else { return nil }
        streamBySSRC[packet.ssrc] = found.index
        return found
    }

    /// A send-side estimate while some stream sends with transport-wide sequence numbers, none otherwise.
    func updateBandwidth() {
        let numbered = streams.contains { $0.sends && $0.outgoingIDs.transportWideCC != 0 }
        if numbered, bandwidth == nil { bandwidth = BandwidthEstimator() }
        if !numbered { bandwidth = nil }
    }

    /// The stream a plugin's packet goes out on: `mindex`, or the first sending one of its kind.
    func outgoingStream(mindex: Int32, isVideo: Bool) -> MediaStream? {
        if mindex >= 0 {
            guard Int(mindex) < streams.count else { return nil }
            let s = streams[Int(mindex)]
            return s.sends ? s : nil
        }
        return streams.first { $0.sends && $0.isVideo == isVideo }
    }
}

/// Counts ICE restarts in one-minute windows.
struct RestartBudget {
    private var windowStart: UInt64 = 0
    private var count = 0

    /// Whether one more restart fits in the current minute (and counts it if so).
    mutating func take(now: UInt64, perMinute: Int) -> Bool {
        if windowStart == 0 || nanoseconds(from: windowStart, to: now) >= 60_000_000_000 {
            windowStart = now
            count = 0
        }
        guard count < perMinute else { return false }
        count += 1
        return true
    }
}
