import RTC

/// One input to the SDP parser, then every typed view of what it parsed, the serializer, and the
/// answer skeleton the host starts its answers from. A parsed description must serialize to text
/// that parses again.
public func fuzzSDP(_ data: UnsafeRawBufferPointer) {
    let text = String(decoding: data, as: UTF8.self)
    guard let session = try? SessionDescription.parse(text) else { return }
    _ = (session.groups, session.bundleGroup, session.msidSemantic, session.iceLite, session.extmapAllowMixed)
    for media in session.media {
        _ = (media.isRTP, media.payloadTypes, media.mid, media.direction, media.rtcpMux, media.rtcpReducedSize)
        _ = (media.rtpMaps, media.formatParameters, media.rtcpFeedback, media.extensionMaps, media.msids)
        _ = (media.ssrcAttributes, media.ssrcs, media.ssrcGroups, media.rids, media.simulcast, media.candidates)
        _ = (media.endOfCandidates, media.sctpPort, media.maxMessageSize)
        _ = (session.iceCredentials(of: media), session.fingerprints(of: media), session.setup(of: media), session.iceOptions(of: media))
        _ = media.answerSkeleton()
        if let mid = media.mid { _ = session.mediaIndex(mid: mid) }
    }
    let written = session.answerSkeleton(origin: session.origin).serialized
    _ = written
    let again = session.serialized
    guard (try? SessionDescription.parse(again)) != nil else {
        fuzzFailure("the serializer's output does not parse:\n\(again)")
    }
}
