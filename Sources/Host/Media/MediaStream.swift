import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// One m-line of a PeerConnection: what arrives on it (remote SSRCs and their statistics, the
/// extension ids the peer writes) and what the host sends on it (its SSRC, counters for sender
/// reports, the retransmission buffer). Owned by the media thread.
final class MediaStream {
    let index: Int
    let mid: String
    let isVideo: Bool
    /// NUL-terminated copies handed to plugins with every packet (no allocation per packet).
    let midCString: UnsafeMutablePointer<CChar>
    /// The mid's bytes (without the NUL), as the mid header extension carries them.
    let midBytes: UnsafeRawBufferPointer
    private var ridCStrings: [String: UnsafeMutablePointer<CChar>] = [:]

    // Receiving.
    var receives = false
    var incomingMidID: UInt8 = 0
    var incomingRidID: UInt8 = 0
    var incomingAudioLevelID: UInt8 = 0
    var incomingOrientationID: UInt8 = 0
    var incomingTransportWideID: UInt8 = 0
    var clockRates: [UInt8: UInt32] = [:]
    /// What each payload type the peer sends is, for taps.
    var codecs: [UInt8: (name: String, clockRate: UInt32, fmtp: String?)] = [:]
    /// Tap streams by remote SSRC (labelled handles only).
    var taps: [UInt32: TapStream] = [:]
    var statistics: [UInt32: RTPReceiveStatistics] = [:]
    /// Video only: what each remote SSRC failed to deliver, to ask for again (keyed as `statistics`,
    /// and as bounded).
    var missing: [UInt32: MissingPackets] = [:]
    var receiving = false
    var lastPacketAt: UInt64 = 0
    var lastKeyframeRequestAt: UInt64 = 0

    // Sending.
    var sends = false
    var localSSRC: UInt32 = 0
    var outgoingIDs = OutgoingExtensionIDs()
    var sendClockRate: UInt32 = 90_000
    var packetsSent: UInt32 = 0
    var octetsSent: UInt32 = 0
    var lastRTPTimestamp: UInt32 = 0
    var lastSentAt: UInt64 = 0
    var retransmissions: RetransmissionBuffer?
    var nackedThisInterval: UInt32 = 0
    /// The RFC 4588 repair stream, when the section negotiated RTX for the codec sent: NACKs are
    /// answered on it (a receiver then tells repairs from media and counts them), and probes
    /// send their filler on it.
    var repair: (ssrc: UInt32, payloadType: UInt8)?
    var repairSequence = UInt16.random(in: 0...UInt16.max)
    /// The last media sequence number sent: probes resend recent packets as filler.
    var lastSequenceSent: UInt16?

    init(index: Int, mid: String, isVideo: Bool) {
        self.index = index
        self.mid = mid
        self.isVideo = isVideo
        midCString = strdup(mid)!
        midBytes = UnsafeRawBufferPointer(start: midCString, count: strlen(midCString))
    }

    deinit {
        free(midCString)
        for p in ridCStrings.values { free(p) }
    }

    var kind: String { isVideo ? "video" : "audio" }

    /// The C string of a rid, made once per rid; nil past `limit` different rids, which only a
    /// peer inventing rids (a new one per packet would otherwise grow this table forever) reaches.
    func ridCString(_ rid: String, limit: Int) -> UnsafePointer<CChar>? {
        if let p = ridCStrings[rid] { return UnsafePointer(p) }
        guard ridCStrings.count < limit, let p = strdup(rid) else { return nil }
        ridCStrings[rid] = p
        return UnsafePointer(p)
    }

    /// What the peer's description says about this section: the extension ids it writes, its payload
    /// types' clock rates, the SSRCs it announced.
    func applyRemote(_ m: MediaDescription) {
        func id(_ uri: String) -> UInt8 { m.extensionID(uri: uri).map { UInt8(truncatingIfNeeded: $0) } ?? 0 }
        incomingMidID = id(RTPHeaderExtensionURI.mid)
        incomingRidID = id(RTPHeaderExtensionURI.rid)
        incomingAudioLevelID = id(RTPHeaderExtensionURI.audioLevel)
        incomingOrientationID = id(RTPHeaderExtensionURI.videoOrientation)
        incomingTransportWideID = id(RTPHeaderExtensionURI.transportWideCC)
        let fmtp = Dictionary(m.formatParameters.map { ($0.payloadType, $0.parameters) }, uniquingKeysWith: { a, _ in a })
        for map in m.rtpMaps {
            clockRates[map.payloadType] = map.clockRate
            codecs[map.payloadType] = (map.encodingName, map.clockRate, fmtp[map.payloadType])
        }
    }

    /// What this side's description says: whether it sends, with which SSRC and extension ids.
    func applyLocal(_ m: MediaDescription, ssrc: UInt32, repairSSRC: UInt32?, retransmissionPackets: Int, sharedPayloads: SharedPayloads) {
        sends = !m.isRejected && m.direction.sends
        receives = !m.isRejected && m.direction.receives
        localSSRC = ssrc
        repair = nil
        if sends, isVideo, let repairSSRC, let rtx = Self.repairPayloadType(m) { repair = (repairSSRC, rtx) }
        outgoingIDs = OutgoingExtensionIDs(m)
        if let first = m.payloadTypes.first, let map = m.rtpMaps.first(where: { $0.payloadType == first }) {
            sendClockRate = map.clockRate
        }
        if sends && isVideo && retransmissions == nil {
            retransmissions = RetransmissionBuffer(capacity: retransmissionPackets, shared: sharedPayloads)
        }
    }

    /// The RTX payload type for the codec a section sends (its first), if it negotiated one.
    static func repairPayloadType(_ m: MediaDescription) -> UInt8? {
        guard let first = m.payloadTypes.first else { return nil }
        return m.codecs.first { $0.isRetransmission && $0.associatedPayloadType == first }?.payloadType
    }
}
