/// The WebRTC transport stack: SDP, STUN/ICE, DTLS, SRTP, RTP/RTCP.
///
/// It has no dependency on the host or on any event loop, so the same code serves the host (server
/// role) and test peers or the load generator (client role).
public enum RTC {
    /// The stack's version, reported in logs.
    public static let version = "0.1.0"
}
