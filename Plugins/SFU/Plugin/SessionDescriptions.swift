import RTC
import SFUCore

/// The SDP the SFU writes: answers to publishers (receive only, simulcast accepted) and offers to
/// subscribers (one send-only m-line per subscribed stream, the publisher's codec). Media part only;
/// the host adds ICE, DTLS, candidates and SSRCs.
enum SessionDescriptions {
    /// Header extension ids in subscriber offers (one map for the whole BUNDLE).
    static let midID = 1
    static let absSendTimeID = 2
    static let audioLevelID = 3
    static let videoOrientationID = 4
    static let transportWideCCID = 5

    /// The answer to a publisher's offer and the streams it publishes.
    static func publisherAnswer(offer: SessionDescription, settings: RoomSettings, audioCodec: String?, videoCodec: String?,
                                descriptions: [String: String]) -> (answer: SessionDescription, streams: [PublishedStream]) {
        var preferences = AnswerPreferences()
        preferences.audioCodecs = audioCodec.map { [$0] } ?? settings.audioCodecs
        preferences.videoCodecs = videoCodec.map { [$0] } ?? settings.videoCodecs
        preferences.canSend = false
        preferences.acceptSimulcast = true
        var uris: Set<String> = [RTPHeaderExtensionURI.mid, RTPHeaderExtensionURI.absSendTime]
        if settings.audioLevelExtension { uris.insert(RTPHeaderExtensionURI.audioLevel) }
        if settings.videoOrientationExtension { uris.insert(RTPHeaderExtensionURI.videoOrientation) }
        if settings.transportWideCCExtension {
            // The host returns transport feedback: the browser's own estimator then adapts what it publishes.
            uris.insert(RTPHeaderExtensionURI.transportWideCC)
            preferences.feedbackTypes.insert("transport-cc")
        }
        preferences.extensionURIs = uris
        let answer = offer.answer(preferences: preferences)
        var streams: [PublishedStream] = []
        for (i, m) in answer.media.enumerated() where m.isRTP && (m.kind == .audio || m.kind == .video) {
            let offered = offer.media[i]
            let mid = offered.mid ?? "\(i)"
            guard !m.isRejected, offered.direction.sends, let codec = m.codecs.first else {
                if let codec = offered.codecs.first {
                    streams.append(PublishedStream(mindex: i, mid: mid, isVideo: m.kind == .video, codec: codec, disabled: true))
                }
                continue
            }
            var stream = PublishedStream(mindex: i, mid: mid, isVideo: m.kind == .video, codec: codec)
            stream.description = descriptions[mid]
            if m.kind == .video {
                stream.rids = layerOrder(m.simulcast?.receiveRIDs ?? [], offered: offered)
                if stream.rids.count < 2 { stream.rids = [] }
                if let sim = offered.ssrcGroups.first(where: { $0.semantics == "SIM" }) { stream.simulcastSSRCs = sim.ssrcs }
            } else {
                stream.audioLevelID = Int(m.extensionID(uri: RTPHeaderExtensionURI.audioLevel) ?? 0)
            }
            streams.append(stream)
        }
        return (answer, streams)
    }

    /// Simulcast rids from lowest to highest layer. Well-known names decide (`l`/`m`/`h` as janus.js
    /// sends them, `q`/`h`/`f`); else `max-width` restrictions; else the offer's order read as
    /// highest first, as browsers list encodings.
    static func layerOrder(_ rids: [String], offered: MediaDescription) -> [String] {
        let set = Set(rids)
        for names in [["l", "m", "h"], ["q", "h", "f"], ["low", "mid", "high"]] where set.isSubset(of: Set(names)) {
            return names.filter(set.contains)
        }
        let widths = Dictionary(offered.rids.compactMap { r in
            r.restrictions.first { $0.name == "max-width" }?.value.flatMap(Int.init).map { (r.id, $0) }
        }, uniquingKeysWith: { a, _ in a })
        // Every rid needs a width: `a=simulcast` may name rids that no `a=rid` line defines.
        if rids.allSatisfy({ widths[$0] != nil }) { return rids.sorted { widths[$0, default: 0] < widths[$1, default: 0] } }
        return rids.reversed()
    }

    /// An RTX payload type for each video payload type, from the dynamic range and unlike any
    /// `taken` one: sections of one BUNDLE must not give a payload type two meanings.
    static func repairPayloadTypes(for video: [UInt8], taken: Set<UInt8>) -> [UInt8: UInt8] {
        var map: [UInt8: UInt8] = [:]
        var free = (96...127).map(UInt8.init).filter { !taken.contains($0) }.makeIterator()
        for pt in video where map[pt] == nil {
            guard let rtx = free.next() else { break }
            map[pt] = rtx
        }
        return map
    }

    /// A subscriber offer: the streams in m-line order; inactive ones stay (direction inactive) so
    /// m-line indexes never move.
    static func subscriberOffer(_ subscription: Subscription) -> SessionDescription? {
        subscription.sessionVersion += 1
        let transportWideCC = subscription.room.settings.transportWideCCExtension
        let repairTypes = repairPayloadTypes(for: subscription.streams.filter(\.isVideo).map(\.codec.payloadType),
                                             taken: Set(subscription.streams.map(\.codec.payloadType)))
        var lines = [
            "v=0", "o=- \(subscription.sessionID) \(subscription.sessionVersion) IN IP4 0.0.0.0",
            "s=VideoRoom \(subscription.stream ?? subscription.room.id.description)", "t=0 0", "a=msid-semantic: WMS *",
        ]
        for s in subscription.streams {
            let c = s.codec
            let rtx = s.isVideo ? repairTypes[c.payloadType] : nil
            lines.append("m=\(s.type) 9 UDP/TLS/RTP/SAVPF \(c.payloadType)" + (rtx.map { " \($0)" } ?? ""))
            lines.append("c=IN IP4 0.0.0.0")
            lines.append("a=mid:\(s.mid)")
            lines.append(s.active ? "a=sendonly" : "a=inactive")
            lines.append("a=rtcp-mux")
            lines.append("a=rtcp-rsize")
            lines.append("a=rtpmap:\(c.payloadType) \(c.name)/\(c.clockRate)" + (c.channels.map { "/\($0)" } ?? ""))
            if let parameters = c.parameters, !parameters.isEmpty { lines.append("a=fmtp:\(c.payloadType) \(parameters)") }
            if s.isVideo {
                for fb in ["nack", "nack pli", "ccm fir", "goog-remb"] { lines.append("a=rtcp-fb:\(c.payloadType) \(fb)") }
            }
            if transportWideCC { lines.append("a=rtcp-fb:\(c.payloadType) transport-cc") }
            if let rtx {
                lines.append("a=rtpmap:\(rtx) rtx/\(c.clockRate)")
                lines.append("a=fmtp:\(rtx) apt=\(c.payloadType)")
            }
            lines.append("a=extmap:\(midID) \(RTPHeaderExtensionURI.mid)")
            if transportWideCC { lines.append("a=extmap:\(transportWideCCID) \(RTPHeaderExtensionURI.transportWideCC)") }
            if s.isVideo {
                lines.append("a=extmap:\(absSendTimeID) \(RTPHeaderExtensionURI.absSendTime)")
                lines.append("a=extmap:\(videoOrientationID) \(RTPHeaderExtensionURI.videoOrientation)")
            } else {
                lines.append("a=extmap:\(audioLevelID) \(RTPHeaderExtensionURI.audioLevel)")
            }
            if s.active, let feed = s.feed {
                lines.append("a=msid:janus\(feed) janus\(feed)\(s.type)\(s.feedMid ?? s.mid)")
            }
        }
        return try? SessionDescription.parse(lines.joined(separator: "\r\n") + "\r\n")
    }
}
