import Synchronization

/// Media counters for /metrics, written by the media thread.
final class MediaMetrics: Sendable {
    let received = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let sendErrors = Atomic<Int>(0)
    let rtpIn = Atomic<Int>(0)
    let rtpOut = Atomic<Int>(0)
    let retransmitted = Atomic<Int>(0)
    let peers = Atomic<Int>(0)
    let tcpConnections = Atomic<Int>(0)

    /// The counters of every loop summed, then each loop's PeerConnections and handles placed on it.
    static func prometheus(_ loops: MediaLoops) -> String {
        func sum(_ counter: (MediaMetrics) -> Int) -> Int { loops.engines.reduce(0) { $0 + counter($1.metrics) } }
        let rows: [(String, String, String, Int)] = [
            ("atrium_media_datagrams_received_total", "counter", "UDP datagrams and ICE-TCP frames received on the media ports", sum { $0.received.load(ordering: .relaxed) }),
            ("atrium_media_datagrams_sent_total", "counter", "UDP datagrams and ICE-TCP frames sent from the media ports", sum { $0.sent.load(ordering: .relaxed) }),
            ("atrium_media_datagrams_dropped_total", "counter", "Datagrams dropped: strangers, bad STUN, DTLS or SRTP", sum { $0.dropped.load(ordering: .relaxed) }),
            ("atrium_media_send_errors_total", "counter", "Datagrams the host could not protect or send", sum { $0.sendErrors.load(ordering: .relaxed) }),
            ("atrium_media_rtp_received_total", "counter", "RTP packets decrypted and handed to plugins", sum { $0.rtpIn.load(ordering: .relaxed) }),
            ("atrium_media_rtp_sent_total", "counter", "RTP packets relayed to peers", sum { $0.rtpOut.load(ordering: .relaxed) }),
            ("atrium_media_rtp_retransmitted_total", "counter", "RTP packets sent again to answer NACKs", sum { $0.retransmitted.load(ordering: .relaxed) }),
            ("atrium_media_peerconnections", "gauge", "PeerConnections open", sum { $0.peers.load(ordering: .relaxed) }),
            ("atrium_media_tcp_connections", "gauge", "ICE-TCP connections open", sum { $0.tcpConnections.load(ordering: .relaxed) }),
        ]
        var text = rows.map { "# HELP \($0.0) \($0.2)\n# TYPE \($0.0) \($0.1)\n\($0.0) \($0.3)\n" }.joined()
        let (placed, groups) = loops.load
        text += "# HELP atrium_media_loop_peerconnections PeerConnections open on each media loop\n# TYPE atrium_media_loop_peerconnections gauge\n"
        for engine in loops.engines {
            text += "atrium_media_loop_peerconnections{loop=\"\(engine.index)\"} \(engine.metrics.peers.load(ordering: .relaxed))\n"
        }
        text += "# HELP atrium_media_loop_handles Handles placed on each media loop (what new groups are spread by)\n# TYPE atrium_media_loop_handles gauge\n"
        for (i, n) in placed.enumerated() { text += "atrium_media_loop_handles{loop=\"\(i)\"} \(n)\n" }
        text += "# HELP atrium_media_groups Handle groups (rooms) holding a media loop\n# TYPE atrium_media_groups gauge\natrium_media_groups \(groups)\n"
        return text
    }
}
