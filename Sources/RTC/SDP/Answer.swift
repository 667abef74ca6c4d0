/// What an answerer accepts: codecs in preference order per kind, the RTCP feedback and header
/// extensions it understands. Sections with no acceptable codec are rejected.
public struct AnswerPreferences: Sendable {
    public var audioCodecs: [String] = ["opus", "PCMU", "PCMA", "G722"]
    public var videoCodecs: [String] = ["VP8", "VP9", "H264", "AV1"]
    /// `a=rtcp-fb` types kept on the chosen codec (transport-cc only where the answerer also keeps
    /// the transport-wide sequence extension: the host then returns transport feedback).
    public var feedbackTypes: Set<String> = ["nack", "ccm", "goog-remb"]
    public var extensionURIs: Set<String> = [
        RTPHeaderExtensionURI.mid, RTPHeaderExtensionURI.audioLevel, RTPHeaderExtensionURI.absSendTime,
        RTPHeaderExtensionURI.videoOrientation,
    ]
    public var acceptAudio = true
    public var acceptVideo = true
    /// Whether the answerer sends media back (false: a receive-only answer, as an SFU's to a publisher).
    public var canSend = true
    /// Whether offered simulcast (RFC 8853, `a=simulcast` with `a=rid`) is accepted: the answer then
    /// receives every offered rid and keeps the rid header extension.
    public var acceptSimulcast = false

    public init() {}
}

extension SessionDescription {
    /// A media-only answer to this offer (RFC 8829 §5.3.1): per section one codec (the first of the
    /// preferences the offer has, with its fmtp and the feedback the preferences keep), the offer's
    /// ids for the kept extensions, rtcp-mux and rtcp-rsize when offered, the answering direction.
    /// The host completes it with ICE, DTLS and candidates.
    public func answer(preferences: AnswerPreferences = AnswerPreferences(),
                       origin: Origin = Origin(sessionID: String(UInt64.random(in: 1...(1 << 62))), sessionVersion: 1)) -> SessionDescription {
        var answer = answerSkeleton(origin: origin)
        for (i, offered) in media.enumerated() {
            var m = answer.media[i]
            defer { answer.media[i] = m }
            guard offered.isRTP, !offered.isRejected else { continue }
            let wanted: [String]
            switch offered.kind {
            case .audio where preferences.acceptAudio: wanted = preferences.audioCodecs
            case .video where preferences.acceptVideo: wanted = preferences.videoCodecs
            default: wanted = []
            }
            let codecs = offered.codecs
            guard var codec = wanted.lazy.compactMap({ name in Self.preferred(codecs.filter { $0.hasName(name) }) }).first else {
                m.port = 0
                m.formats = offered.formats.prefix(1).map { $0 }
                m.direction = .inactive
                continue
            }
            codec.feedback = codec.feedback.filter { preferences.feedbackTypes.contains($0.type) }
            codec.retransmissionPayloadType = nil
            m.append(codec)
            m.extensionMaps = offered.extensionMaps.filter { preferences.extensionURIs.contains($0.uri) }
                .map { ExtensionMap(id: $0.id, uri: $0.uri) }
            m.rtcpMux = offered.rtcpMux
            m.rtcpReducedSize = offered.rtcpReducedSize
            if !preferences.canSend { m.direction = offered.direction.answering(canSend: false) }
            if preferences.acceptSimulcast, let simulcast = offered.simulcast, !simulcast.send.isEmpty {
                let sent = Set(simulcast.sendRIDs)
                m.rids = offered.rids.filter { $0.direction == .send && sent.contains($0.id) }.map { RID(id: $0.id, direction: .recv) }
                m.simulcast = Simulcast(receive: simulcast.send)
                let rid = offered.extensionMaps.filter { $0.uri == RTPHeaderExtensionURI.rid }.map { ExtensionMap(id: $0.id, uri: $0.uri) }
                if !m.extensionMaps.contains(where: { $0.uri == RTPHeaderExtensionURI.rid }) { m.extensionMaps += rid }
            }
        }
        return answer
    }

    /// Among codecs of one name, the one a WebRTC endpoint decodes most widely (H.264 with
    /// packetization-mode=1 and the constrained baseline profile when offered).
    private static func preferred(_ codecs: [Codec]) -> Codec? {
        guard codecs.count > 1, codecs[0].hasName("H264") else { return codecs.first }
        func score(_ c: Codec) -> Int {
            (c.parameter("packetization-mode") == "1" ? 2 : 0) + (c.parameter("profile-level-id")?.lowercased().hasPrefix("42e0") == true ? 1 : 0)
        }
        return codecs.max { score($0) < score($1) }
    }
}
