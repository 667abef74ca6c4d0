import Foundation
import Testing
import RTC

/// The SDP fixtures under Fixtures/sdp.
enum SDPFixture {
    /// Offers captured from real peers: headless Chromium (fake camera and mic) and aiortc, on loopback
    /// (Fixtures/sdp/capture has the scripts). Written back line for line.
    static let captured = [
        "chromium-audio-video", "chromium-audio-only", "chromium-video-only", "chromium-audio-video-datachannel",
        "chromium-video-simulcast", "chromium-recvonly", "aiortc-audio-video", "aiortc-datachannel",
    ]
    /// Hand-written, because Firefox cannot be installed here: the shape of a Firefox 99 offer
    /// (`o=mozilla...THIS_IS_SDPARTA-99.0`, extmap directions, `{uuid}` msids, no ssrc lines,
    /// upper-case `UDP`/`TCP` candidates, rid + simulcast), not a capture.
    static let handWritten = ["firefox-style-simulcast"]

    static func text(_ name: String) throws -> String {
        let url = try #require(
            Bundle.module.url(forResource: name, withExtension: "sdp", subdirectory: "Fixtures/sdp"),
            "fixture Fixtures/sdp/\(name).sdp is missing from the test bundle"
        )
        return try String(contentsOf: url, encoding: .utf8)
    }

    static func parsed(_ name: String) throws -> SessionDescription {
        try SessionDescription.parse(text(name))
    }

    /// The names of every .sdp file in the bundle's Fixtures/sdp.
    static var allNames: [String] {
        Bundle.module.paths(forResourcesOfType: "sdp", inDirectory: "Fixtures/sdp")
            .map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent }.sorted()
    }
}

/// The lines of SDP text, whichever line ending it uses.
private func lines(_ text: String) -> [String] {
    text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}

@Suite struct SDPRoundTripTests {
    @Test func everyFixtureIsListedAndPresent() {
        #expect(SDPFixture.allNames == (SDPFixture.captured + SDPFixture.handWritten).sorted())
    }

    @Test(arguments: SDPFixture.captured + SDPFixture.handWritten)
    func reparsingTheSerializedFormGivesTheSameDescription(_ name: String) throws {
        let description = try SDPFixture.parsed(name)
        #expect(try SessionDescription.parse(description.serialized) == description)
    }

    @Test(arguments: SDPFixture.captured + SDPFixture.handWritten)
    func serializingGivesBackTheOriginalLines(_ name: String) throws {
        let text = try SDPFixture.text(name)
        let written = try SessionDescription.parse(text).serialized
        let original = lines(text), rewritten = lines(written)
        #expect(rewritten.count == original.count)
        for (index, pair) in zip(original, rewritten).enumerated() where pair.0 != pair.1 {
            Issue.record("\(name) line \(index + 1): read \(pair.0), wrote \(pair.1)")
        }
    }

    @Test func outputEndsEveryLineWithCRLF() throws {
        let written = try SDPFixture.parsed("chromium-audio-video").serialized
        #expect(written.hasSuffix("\r\n"))
        #expect(!written.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(!written.replacingOccurrences(of: "\r\n", with: "").contains("\r"))
    }

    @Test func acceptsBareLineFeedsAndBlankLines() throws {
        let text = try SDPFixture.text("chromium-audio-only")
        let bare = text.replacingOccurrences(of: "\r\n", with: "\n")
        #expect(try SessionDescription.parse(bare) == SessionDescription.parse(text))
        let spaced = bare.replacingOccurrences(of: "\nm=", with: "\n\n  \nm=")
        #expect(try SessionDescription.parse(spaced) == SessionDescription.parse(text))
    }

    @Test func unknownAttributesAreKeptInOrder() throws {
        let description = try SDPFixture.parsed("chromium-audio-video")
        let audio = description.media[0]
        #expect(audio.otherAttributes == [
            .other(name: "rtcp", value: "9 IN IP4 0.0.0.0"),
            .other(name: "rtcp-xr", value: "rcvr-rtt=all"),
        ])
        // a=rtcp comes right after c=, before the candidates, as Chromium wrote it.
        #expect(audio.attributes.first == .other(name: "rtcp", value: "9 IN IP4 0.0.0.0"))
    }
}

@Suite struct ChromiumOfferTests {
    @Test func audioAndVideo() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video")
        #expect(offer.origin.username == "-")
        #expect(offer.origin.sessionVersion == 2)
        #expect(offer.timings == [Timing(start: 0, stop: 0)])
        #expect(offer.bundleGroup == MediaGroup.bundle(["0", "1"]))
        #expect(offer.extmapAllowMixed)
        #expect(!offer.iceLite)
        #expect(offer.msidSemantic?.semantic == "WMS")
        #expect(offer.media.map(\.kind) == [.audio, .video])
        #expect(offer.media.map(\.transportProtocol) == ["UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVPF"])

        let audio = try #require(offer.media(mid: "0"))
        #expect(audio.direction == .sendrecv)
        #expect(audio.rtcpMux && audio.rtcpReducedSize)
        #expect(audio.connections == [ConnectionData(address: "127.0.0.1")])
        let opus = try #require(audio.codecs.first)
        #expect(opus.payloadType == 111 && opus.name == "opus" && opus.clockRate == 48000 && opus.channels == 2)
        #expect(opus.parameters == "minptime=10;useinbandfec=1")
        #expect(opus.parameter("useinbandfec") == "1")
        #expect(opus.supportsFeedback("transport-cc"))
        #expect(audio.payloadTypes == [111, 63, 9, 0, 8, 13, 110, 126])
        #expect(audio.codecs.map(\.name) == ["opus", "red", "G722", "PCMU", "PCMA", "CN", "telephone-event", "telephone-event"])
        #expect(audio.extensionID(uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level") == 1)
        #expect(audio.extensionID(uri: "urn:ietf:params:rtp-hdrext:sdes:mid") == 4)

        let video = try #require(offer.media(mid: "1"))
        let vp8 = try #require(video.codecs(named: "vp8").first)
        #expect(vp8.payloadType == 96 && vp8.clockRate == 90000)
        #expect(vp8.retransmissionPayloadType == 97)
        #expect(vp8.supportsFeedback("nack") && vp8.supportsFeedback("nack", "pli") && vp8.supportsFeedback("ccm", "fir"))
        let rtx = try #require(video.codec(payloadType: 97))
        #expect(rtx.isRetransmission && rtx.associatedPayloadType == 96)
        for codec in video.codecs where codec.isRetransmission {
            let apt = try #require(codec.associatedPayloadType, "rtx \(codec.payloadType) has no apt")
            #expect(video.codec(payloadType: apt)?.retransmissionPayloadType == codec.payloadType)
        }
        let h264 = video.codecs(named: "H264")
        #expect(h264.count == 6)
        #expect(h264.first?.parameter("packetization-mode") == "1")
        #expect(h264.first?.parameter("profile-level-id") == "42001f")

        // One stream, two tracks: msid, msid-semantic and the ssrc lines agree.
        let stream = try #require(offer.msidSemantic?.identifiers.first)
        #expect(audio.msids.map(\.streamID) == [stream] && video.msids.map(\.streamID) == [stream])
        let fid = try #require(video.ssrcGroups.first)
        #expect(fid.semantics == "FID" && fid.ssrcs.count == 2)
        #expect(video.ssrcs == fid.ssrcs)
        #expect(video.ssrcAttributes.filter { $0.attribute == "msid" }.allSatisfy { $0.value == "\(stream) \(video.msids[0].trackID ?? "")" })
        #expect(audio.ssrcAttributes.first?.attribute == "cname")
    }

    @Test func transportAttributesAndCandidates() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video")
        let audio = offer.media[0], video = offer.media[1]
        let credentials = try #require(offer.iceCredentials(of: audio))
        #expect(credentials == offer.iceCredentials(of: video))
        #expect(credentials.ufrag.count >= 4 && credentials.password.count >= 22)
        #expect(offer.iceOptions(of: audio) == ["trickle"])
        #expect(offer.setup(of: audio) == .actpass)
        let fingerprint = try #require(offer.fingerprints(of: audio).first)
        #expect(fingerprint.algorithm == "sha-256")
        #expect(fingerprint.bytes?.count == 32)

        #expect(audio.candidates.count == 2)
        let udp = audio.candidates[0]
        #expect(udp.transport == .udp && udp.kind == .host && udp.component == 1)
        #expect(udp.address == "127.0.0.1" && udp.port == audio.port)
        #expect(udp.priority == 2122260223)
        #expect(udp.tcpType == nil && udp.relatedAddress == nil)
        #expect(udp.extensionValue("generation") == "0" && udp.extensionValue("network-id") == "1")
        #expect(udp.extensions.map(\.name) == ["generation", "network-id", "network-cost"])
        let tcp = audio.candidates[1]
        #expect(tcp.transport == .tcp && tcp.tcpType == .active && tcp.port == 9)
        #expect(!audio.endOfCandidates)
    }

    @Test func audioOnlyAndVideoOnly() throws {
        let audioOnly = try SDPFixture.parsed("chromium-audio-only")
        #expect(audioOnly.media.map(\.kind) == [.audio])
        #expect(audioOnly.bundleGroup?.mids == ["0"])
        #expect(audioOnly.media[0].codecs.first?.name == "opus")

        let videoOnly = try SDPFixture.parsed("chromium-video-only")
        #expect(videoOnly.media.map(\.kind) == [.video])
        let video = videoOnly.media[0]
        #expect(video.codecs.first?.name == "VP8")
        #expect(!video.codecs(named: "AV1").isEmpty && !video.codecs(named: "VP9").isEmpty)
        #expect(video.extensionMaps.contains { $0.uri == "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" })
    }

    @Test func dataChannel() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video-datachannel")
        #expect(offer.bundleGroup?.mids == ["0", "1", "2"])
        let data = try #require(offer.media(mid: "2"))
        #expect(data.kind == .application)
        #expect(data.transportProtocol == "UDP/DTLS/SCTP" && data.formats == ["webrtc-datachannel"])
        #expect(!data.isRTP)
        #expect(data.sctpPort == 5000 && data.maxMessageSize == 262144)
        #expect(data.codecs.isEmpty && data.rtpMaps.isEmpty)
        #expect(data.directionAttribute == nil)
        #expect(offer.iceCredentials(of: data) == offer.iceCredentials(of: offer.media[0]))
        #expect(offer.mediaIndex(mid: "2") == 2)
    }

    @Test func simulcastWithThreeRIDs() throws {
        let offer = try SDPFixture.parsed("chromium-video-simulcast")
        let video = try #require(offer.media.first)
        #expect(video.direction == .sendonly)
        #expect(video.rids.map(\.id) == ["h", "m", "l"])
        #expect(video.rids.allSatisfy { $0.direction == .send && $0.restrictions.isEmpty })
        let simulcast = try #require(video.simulcast)
        #expect(simulcast.sendRIDs == ["h", "m", "l"] && simulcast.receive.isEmpty)
        #expect(simulcast.send.allSatisfy { $0.count == 1 && !$0[0].paused })
        #expect(video.extensionID(uri: "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id") == 10)
        #expect(video.extensionID(uri: "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id") == 11)
        #expect(video.ssrcAttributes.isEmpty, "Chromium announces rid-based simulcast without ssrc lines")
        #expect(video.direction.answering() == .recvonly)
    }

    @Test func receiveOnly() throws {
        let offer = try SDPFixture.parsed("chromium-recvonly")
        #expect(offer.media.map(\.direction) == [.recvonly, .recvonly])
        #expect(offer.media.allSatisfy { $0.msids.isEmpty && $0.ssrcAttributes.isEmpty })
        #expect(offer.msidSemantic == MSIDSemantic(semantic: "WMS", identifiers: []))
        #expect(offer.media.map { $0.direction.answering() } == [.sendonly, .sendonly])
    }
}

@Suite struct AiortcOfferTests {
    @Test func audioAndVideo() throws {
        let offer = try SDPFixture.parsed("aiortc-audio-video")
        #expect(offer.msidSemantic?.identifiers == ["*"])
        #expect(offer.msidSemantic?.spaceAfterColon == false)
        #expect(!offer.extmapAllowMixed)
        let audio = offer.media[0], video = offer.media[1]
        let opus = try #require(audio.codecs.first)
        #expect(opus.payloadType == 96 && opus.name == "opus" && opus.channels == 2)
        #expect(opus.parameters == nil)
        #expect(audio.rtcpMux && !audio.rtcpReducedSize)
        #expect(audio.fingerprints.map(\.algorithm) == ["sha-256", "sha-384", "sha-512"])
        #expect(audio.fingerprints.map { $0.bytes?.count } == [32, 48, 64])
        #expect(audio.endOfCandidates)
        let candidate = try #require(audio.candidates.first)
        #expect(candidate.transport == .udp && candidate.kind == .host && candidate.extensions.isEmpty)
        #expect(candidate.port == audio.port)
        #expect(offer.iceOptions(of: audio).isEmpty)

        let vp8 = try #require(video.codecs(named: "VP8").first)
        #expect(vp8.payloadType == 97 && vp8.retransmissionPayloadType == 98)
        #expect(video.ssrcGroups == [SSRCGroup(semantics: "FID", ssrcs: video.ssrcs)])
    }

    @Test func dataChannel() throws {
        let offer = try SDPFixture.parsed("aiortc-datachannel")
        #expect(offer.media.count == 1)
        let data = offer.media[0]
        #expect(data.kind == .application && data.transportProtocol == "UDP/DTLS/SCTP")
        #expect(data.formats == ["webrtc-datachannel"])
        #expect(data.sctpPort == 5000 && data.maxMessageSize == 262144)
        #expect(data.endOfCandidates && data.candidates.count == 1)
    }
}

/// firefox-style-simulcast.sdp is hand-written in the shape of a Firefox 99 offer, not captured.
@Suite struct FirefoxStyleOfferTests {
    @Test func firefoxShape() throws {
        let offer = try SDPFixture.parsed("firefox-style-simulcast")
        #expect(offer.origin.username == "mozilla...THIS_IS_SDPARTA-99.0")
        #expect(offer.origin.sessionVersion == 0)
        #expect(offer.fingerprints.count == 1 && offer.media.allSatisfy { $0.fingerprints.isEmpty })
        #expect(offer.fingerprints(of: offer.media[1]).first?.algorithm == "sha-256")
        #expect(offer.iceOptions == ["trickle"] && offer.iceOptions(of: offer.media[0]) == ["trickle"])
        #expect(offer.bundleGroup?.mids == ["0", "1", "2"])

        let audio = offer.media[0]
        #expect(audio.extensionMaps[1] == ExtensionMap(id: 2, direction: .recvonly, uri: "urn:ietf:params:rtp-hdrext:csrc-audio-level"))
        #expect(audio.msids == [MSID(streamID: "{0f8e5d2c-3b4a-4c1d-9e8f-7a6b5c4d3e2f}", trackID: "{9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d}")])
        #expect(audio.ssrcAttributes.isEmpty)
        #expect(audio.codecs.first(where: { $0.hasName("telephone-event") })?.parameters == "0-15")
        #expect(audio.candidates.map(\.transport) == [.udp, .tcp])
        #expect(audio.candidates[0].transport.rawValue == "UDP")
        #expect(audio.setup == .actpass && audio.direction == .sendrecv)

        let video = offer.media[1]
        #expect(video.rids.map(\.id) == ["h", "m", "l"])
        #expect(video.simulcast?.sendRIDs == ["h", "m", "l"])
        #expect(video.codec(payloadType: 120)?.retransmissionPayloadType == 124)
        #expect(video.codec(payloadType: 97)?.retransmissionPayloadType == 98)

        let data = offer.media[2]
        #expect(data.sctpPort == 5000 && data.maxMessageSize == 1073741823)
    }
}

@Suite struct SDPHelperTests {
    @Test func answerDirections() {
        #expect(Direction.sendonly.answering() == .recvonly)
        #expect(Direction.recvonly.answering() == .sendonly)
        #expect(Direction.sendrecv.answering() == .sendrecv)
        #expect(Direction.inactive.answering() == .inactive)
        #expect(Direction.sendrecv.answering(canSend: false) == .recvonly)
        #expect(Direction.sendrecv.answering(canReceive: false) == .sendonly)
        #expect(Direction.sendonly.answering(canReceive: false) == .inactive)
        #expect(Direction.recvonly.reversed == .sendonly)
    }

    @Test func answerSkeletonMirrorsTheOffer() throws {
        let offer = try SDPFixture.parsed("chromium-audio-video-datachannel")
        var answer = offer.answerSkeleton(origin: Origin(sessionID: "42", sessionVersion: 1))
        #expect(answer.bundleGroup?.mids == ["0", "1", "2"])
        #expect(answer.media.map(\.mid) == ["0", "1", "2"])
        #expect(answer.media.map(\.kind) == [.audio, .video, .application])
        #expect(answer.media.map(\.directionAttribute) == [.sendrecv, .sendrecv, nil])
        #expect(answer.media[2].formats == ["webrtc-datachannel"])
        #expect(answer.media.allSatisfy { $0.port == 9 && $0.candidates.isEmpty })

        // The plugin picks opus and VP8 with its RTX; the result parses back to the same answer.
        answer.media[0].append(try #require(offer.media[0].codec(payloadType: 111)))
        let vp8 = try #require(offer.media[1].codecs(named: "VP8").first)
        answer.media[1].append(vp8)
        answer.media[1].append(try #require(offer.media[1].codec(payloadType: 97)))
        #expect(answer.media[0].formats == ["111"])
        #expect(answer.media[1].codecs.map(\.payloadType) == [96, 97])
        #expect(answer.media[1].codecs[0].retransmissionPayloadType == 97)
        #expect(answer.media[1].codecs[0].feedback == vp8.feedback)
        #expect(try SessionDescription.parse(answer.serialized) == answer)
    }

    @Test func answerSkeletonKeepsRejectedSectionsRejected() throws {
        var offer = try SDPFixture.parsed("chromium-audio-video")
        offer.media[1].port = 0
        let answer = offer.answerSkeleton(origin: Origin(sessionID: "1", sessionVersion: 1))
        #expect(answer.media[1].port == 0 && answer.media[1].formats == offer.media[1].formats)
        #expect(answer.bundleGroup?.mids == ["0"])
    }

    /// Firefox (bundlePolicy "max-bundle") offers every section after the first with port 0 and
    /// `a=bundle-only`: on the BUNDLE transport, not rejected.
    @Test func bundleOnlySectionsAreAccepted() throws {
        var offer = try SDPFixture.parsed("chromium-audio-video")
        offer.media[1].port = 0
        offer.media[1].attributes.append(.other(name: "bundle-only", value: nil))
        let reparsed = try SessionDescription.parse(offer.serialized)
        #expect(reparsed.media[1].isBundleOnly && !reparsed.media[1].isRejected)
        let answer = reparsed.answerSkeleton(origin: Origin(sessionID: "1", sessionVersion: 1))
        #expect(answer.media[1].port == 9 && answer.media[1].direction != .inactive)
        #expect(answer.bundleGroup?.mids == ["0", "1"])
        #expect(!answer.media[1].isBundleOnly, "an answer never says bundle-only (RFC 8843)")
    }

    @Test func removingCodecsRemovesTheirLines() throws {
        var video = try #require(SDPFixture.parsed("chromium-video-only").media.first)
        video.removeCodecs { !($0.hasName("VP8") || $0.payloadType == 97) }
        #expect(video.formats == ["96", "97"])
        #expect(Set(video.rtpMaps.map(\.payloadType)) == [96, 97])
        #expect(video.rtcpFeedback.allSatisfy { $0.payloadType == 96 })
        #expect(video.formatParameters.map(\.payloadType) == [97])
        #expect(video.candidates.count == 2, "only codec lines go")
    }

    @Test func iceCredentialsAndFingerprintFallBackToSessionLevel() throws {
        let text = """
        v=0
        o=- 1 1 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=ice-ufrag:sess
        a=ice-pwd:sessionpasswordsessionpassword
        a=fingerprint:sha-256 AB:CD
        a=setup:passive
        a=ice-lite
        m=audio 9 UDP/TLS/RTP/SAVPF 0
        c=IN IP4 0.0.0.0
        a=mid:a
        m=audio 9 UDP/TLS/RTP/SAVPF 0
        c=IN IP4 0.0.0.0
        a=mid:b
        a=ice-ufrag:own
        a=ice-pwd:ownpasswordownpasswordown
        a=fingerprint:sha-1 01:02
        a=setup:active
        """
        let description = try SessionDescription.parse(text)
        #expect(description.iceLite)
        let a = try #require(description.media(mid: "a")), b = try #require(description.media(mid: "b"))
        #expect(description.iceCredentials(of: a) == IceCredentials(ufrag: "sess", password: "sessionpasswordsessionpassword"))
        #expect(description.iceCredentials(of: b) == IceCredentials(ufrag: "own", password: "ownpasswordownpasswordown"))
        #expect(description.fingerprints(of: a) == [Fingerprint(algorithm: "sha-256", bytes: [0xAB, 0xCD])])
        #expect(description.fingerprints(of: b).first?.bytes == [1, 2])
        #expect(description.setup(of: a) == .passive && description.setup(of: b) == .active)
        #expect(a.codecs.first?.name == "PCMU", "static payload type 0 needs no rtpmap")
        #expect(description.media(mid: "c") == nil)
    }

    @Test func settersReplaceInPlaceAndKeepOrder() throws {
        var audio = try #require(SDPFixture.parsed("chromium-audio-only").media.first)
        let names = audio.attributes.map(\.name)
        audio.mid = "audio"
        audio.direction = .recvonly
        audio.iceUfrag = "abcd"
        #expect(audio.attributes.map(\.name) == names.map { $0 == "sendrecv" ? "recvonly" : $0 })
        #expect(audio.mid == "audio" && audio.direction == .recvonly && audio.iceUfrag == "abcd")
        audio.candidates = []
        audio.rtcpMux = false
        audio.endOfCandidates = true
        #expect(!audio.attributes.contains { $0.name == "candidate" || $0.name == "rtcp-mux" })
        #expect(audio.attributes.last == .endOfCandidates)
    }

    @Test func trickledCandidates() throws {
        let forms = [
            "candidate:842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag EsAw network-cost 999",
            "a=candidate:842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag EsAw network-cost 999\r\n",
            "842163049 1 udp 1677729535 203.0.113.7 61665 typ srflx raddr 10.0.0.2 rport 61665 generation 0 ufrag EsAw network-cost 999",
        ]
        for form in forms {
            let candidate = try Candidate.parse(form)
            #expect(candidate.kind == .serverReflexive)
            #expect(candidate.relatedAddress == "10.0.0.2" && candidate.relatedPort == 61665)
            #expect(candidate.extensionValue("ufrag") == "EsAw")
            #expect(candidate.attributeText == forms[0])
        }
        let relay = try Candidate.parse("candidate:3 1 TCP 41885439 198.51.100.9 3478 typ relay raddr 0.0.0.0 rport 0 tcptype passive")
        #expect(relay.kind == .relay && relay.transport == .tcp && relay.tcpType == .passive)
        let mdns = try Candidate.parse("candidate:1 1 udp 2113937151 6b1f9a1e-2bd4-4d6e-9d0a-3a3c5c1a2b3c.local 54321 typ host")
        #expect(mdns.address.hasSuffix(".local"))
        #expect(throws: SDPParseError(line: 1, code: .invalidAttribute, reason: "a=candidate port \"99999\" is not a number from 0 to 65535")) {
            try Candidate.parse("candidate:1 1 udp 1 127.0.0.1 99999 typ host")
        }
    }

    @Test func fingerprintFromBytes() {
        let fingerprint = Fingerprint(algorithm: "sha-256", bytes: [0x06, 0x94, 0xAF])
        #expect(fingerprint.hex == "06:94:AF")
        #expect(fingerprint.bytes == [0x06, 0x94, 0xAF])
        #expect(Fingerprint(algorithm: "sha-256", hex: "0G:00").bytes == nil)
    }

    @Test func buildsADataChannelOfferFromScratch() throws {
        var data = MediaDescription(kind: .application, transportProtocol: "UDP/DTLS/SCTP", formats: ["webrtc-datachannel"])
        data.mid = "0"
        data.sctpPort = 5000
        var offer = SessionDescription(origin: Origin(sessionID: "7", sessionVersion: 1), media: [data])
        offer.groups = [.bundle(["0"])]
        offer.msidSemantic = MSIDSemantic()
        #expect(offer.serialized == """
        v=0\r
        o=- 7 1 IN IP4 127.0.0.1\r
        s=-\r
        t=0 0\r
        a=group:BUNDLE 0\r
        a=msid-semantic: WMS *\r
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r
        c=IN IP4 0.0.0.0\r
        a=mid:0\r
        a=sctp-port:5000\r

        """)
        #expect(try SessionDescription.parse(offer.serialized) == offer)
    }

    @Test func simulcastAlternativesAndPausedStreams() throws {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
            + "a=rid:1 send pt=96;max-width=1280;max-height=720\r\na=rid:2 send\r\na=rid:3 send\r\na=rid:4 recv\r\n"
            + "a=simulcast:send 1,~2;~3 recv 4\r\n"
        let description = try SessionDescription.parse(text)
        let video = description.media[0]
        let simulcast = try #require(video.simulcast)
        #expect(simulcast.send == [[.init(rid: "1"), .init(rid: "2", paused: true)], [.init(rid: "3", paused: true)]])
        #expect(simulcast.receiveRIDs == ["4"])
        #expect(video.rids[0].payloadTypes == [96])
        #expect(video.rids[0].restrictions.map(\.name) == ["pt", "max-width", "max-height"])
        #expect(video.rids[3].direction == .recv)
        #expect(description.serialized == text)
    }
}

/// Pieces of a minimal valid description that the error cases break.
enum MinimalSDP {
    /// Lines 1–4: v=, o=, s=, t=.
    static let header = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    /// Lines 5–6: an audio section.
    static let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
}

@Suite struct SDPErrorTests {

    /// Parses `text` and returns the error it must throw.
    private func failure(_ text: String) -> SDPParseError? {
        do {
            _ = try SessionDescription.parse(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func theBaseDescriptionIsValid() throws {
        _ = try SessionDescription.parse(MinimalSDP.header + MinimalSDP.audio)
    }

    @Test(arguments: [
        // (text, line, code, words the reason must contain)
        ("", 1, SDPParseError.Code.missingLine, "no v="),
        ("o=- 1 1 IN IP4 127.0.0.1\r\nv=0\r\n", 1, .missingLine, "first line must be v=0"),
        ("v=1\r\n", 1, .invalidField, "v=1"),
        ("v=0\r\nhello\r\n", 2, .syntax, "<type>=<value>"),
        ("v=0\r\n=x\r\n", 2, .syntax, "<type>=<value>"),
        (MinimalSDP.header + "x=unknown\r\n", 5, .unknownLineType, "\"x=\""),
        (MinimalSDP.header + MinimalSDP.audio + "y=1\r\n", 7, .unknownLineType, "\"y=\""),
        ("v=0\r\ns=-\r\nt=0 0\r\n", 4, .missingLine, "no o="),
        ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\nt=0 0\r\n", 4, .missingLine, "no s="),
        ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n", 4, .missingLine, "no t="),
        (MinimalSDP.header + "o=- 2 2 IN IP4 127.0.0.1\r\n", 5, .misplacedLine, "second o="),
        (MinimalSDP.header + MinimalSDP.audio + "t=0 0\r\n", 7, .misplacedLine, "session-level"),
        ("v=0\r\no=- 1 IN IP4 127.0.0.1\r\n", 2, .invalidField, "6 fields"),
        ("v=0\r\no=- 1 x IN IP4 127.0.0.1\r\n", 2, .invalidField, "session version"),
        ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=now 0\r\n", 4, .invalidField, "t="),
        (MinimalSDP.header + "c=IN IP4\r\n", 5, .invalidField, "c="),
        (MinimalSDP.header + "b=AS:lots\r\n", 5, .invalidField, "not a number"),
        (MinimalSDP.header + "m=audio 9 UDP/TLS/RTP/SAVPF\r\n", 5, .invalidMediaLine, "<media> <port> <proto> <fmt>"),
        (MinimalSDP.header + "m=audio nine UDP/TLS/RTP/SAVPF 111\r\n", 5, .invalidMediaLine, "port \"nine\""),
        (MinimalSDP.header + "m=audio 70000 UDP/TLS/RTP/SAVPF 111\r\n", 5, .invalidMediaLine, "port \"70000\""),
        (MinimalSDP.header + "m=audio 9/x UDP/TLS/RTP/SAVPF 111\r\n", 5, .invalidMediaLine, "port count"),
        (MinimalSDP.header + "m=audio 9 UDP/TLS/RTP/SAVPF opus\r\n", 5, .invalidMediaLine, "payload type \"opus\""),
        (MinimalSDP.header + "m=audio 9 UDP/TLS/RTP/SAVPF 111 200\r\n", 5, .invalidMediaLine, "payload type \"200\""),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtpmap:111 opus\r\n", 7, .invalidAttribute, "truncated"),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtpmap:111\r\n", 7, .invalidAttribute, "truncated"),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtpmap:opus 111/48000\r\n", 7, .invalidAttribute, "payload type \"opus\""),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtpmap:111 opus/fast/2\r\n", 7, .invalidAttribute, "clock rate"),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtpmap:111 opus/48000/two\r\n", 7, .invalidAttribute, "channel count"),
        (MinimalSDP.header + MinimalSDP.audio + "a=rtcp-fb:x nack\r\n", 7, .invalidAttribute, "rtcp-fb"),
        (MinimalSDP.header + MinimalSDP.audio + "a=extmap:one urn:x\r\n", 7, .invalidAttribute, "extmap id"),
        (MinimalSDP.header + MinimalSDP.audio + "a=extmap:1/sideways urn:x\r\n", 7, .invalidAttribute, "direction"),
        (MinimalSDP.header + MinimalSDP.audio + "a=ssrc:abc cname:x\r\n", 7, .invalidAttribute, "32-bit"),
        (MinimalSDP.header + MinimalSDP.audio + "a=ssrc:1\r\n", 7, .invalidAttribute, "no attribute"),
        (MinimalSDP.header + MinimalSDP.audio + "a=ssrc-group:FID 1 two\r\n", 7, .invalidAttribute, "\"two\""),
        (MinimalSDP.header + MinimalSDP.audio + "a=setup:sideways\r\n", 7, .invalidAttribute, "actpass"),
        (MinimalSDP.header + MinimalSDP.audio + "a=fingerprint:sha-256\r\n", 7, .invalidAttribute, "<hash-function> <hex>"),
        (MinimalSDP.header + MinimalSDP.audio + "a=fingerprint:sha-256 ZZ:01\r\n", 7, .invalidAttribute, "hex"),
        (MinimalSDP.header + MinimalSDP.audio + "a=mid:\r\n", 7, .invalidAttribute, "empty"),
        (MinimalSDP.header + MinimalSDP.audio + "a=rid:h sideways\r\n", 7, .invalidAttribute, "send|recv"),
        (MinimalSDP.header + MinimalSDP.audio + "a=simulcast:send\r\n", 7, .invalidAttribute, "simulcast"),
        (MinimalSDP.header + MinimalSDP.audio + "a=simulcast:send h;~\r\n", 7, .invalidAttribute, "empty or malformed rid"),
        (MinimalSDP.header + MinimalSDP.audio + "a=simulcast:up h\r\n", 7, .invalidAttribute, "send or recv"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 1 udp 2122260223 127.0.0.1 5000\r\n", 7, .invalidAttribute, "typ <type>"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 1 udp high 127.0.0.1 5000 typ host\r\n", 7, .invalidAttribute, "priority"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 one udp 1 127.0.0.1 5000 typ host\r\n", 7, .invalidAttribute, "component"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host generation\r\n", 7, .invalidAttribute, "no value"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype sideways\r\n", 7, .invalidAttribute, "tcptype"),
        (MinimalSDP.header + MinimalSDP.audio + "a=candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr 1.2.3.4 rport x\r\n", 7, .invalidAttribute, "rport"),
        (MinimalSDP.header + MinimalSDP.audio + "a=sctp-port:x\r\n", 7, .invalidAttribute, "sctp-port"),
        (MinimalSDP.header + MinimalSDP.audio + "a=max-message-size:-1\r\n", 7, .invalidAttribute, "max-message-size"),
        (MinimalSDP.header + MinimalSDP.audio + "a=:value\r\n", 7, .invalidAttribute, "no attribute name"),
    ])
    func reportsTheLineAndWhatIsWrong(_ text: String, _ line: Int, _ code: SDPParseError.Code, _ words: String) throws {
        let error = try #require(failure(text), "parsed without error: \(text.debugDescription)")
        #expect(error.line == line, "\(error)")
        #expect(error.code == code, "\(error)")
        #expect(error.reason.contains(words), "\(error)")
        #expect(error.description.hasPrefix("SDP line \(line): "))
    }

    @Test func lineNumbersCountBlankLinesAndBareLineFeeds() {
        let error = failure("v=0\n\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio x RTP/AVP 0\n")
        #expect(error?.line == 6)
    }

    @Test func unknownAttributesAndNonRTPFormatsAreNotErrors() throws {
        let text = MinimalSDP.header + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fmtp:webrtc-datachannel max-message-size=1000\r\n"
            + "a=x-custom:anything goes: here\r\na=rtcp-mux:unexpected\r\na=sendrecv\r\n"
        let data = try SessionDescription.parse(text).media[0]
        #expect(data.otherAttributes == [
            .other(name: "fmtp", value: "webrtc-datachannel max-message-size=1000"),
            .other(name: "x-custom", value: "anything goes: here"),
            .other(name: "rtcp-mux", value: "unexpected"),
        ])
        #expect(!data.rtcpMux)
        #expect(try SessionDescription.parse(text).serialized == text)
    }
}


@Suite struct SDPRobustnessTests {
    /// Characters that matter to the grammar, plus some that should never appear.
    private static let alphabet: [Character] = Array("avomstcbkriuepz=: /;,~*-0123456789\r\n\t{}.xé😀\u{301}") + ["\r\n", "\u{0}"]
    private static let fragments = [
        "a=rtpmap:", "a=candidate:", "a=fmtp:", "a=rtcp-fb:", "a=extmap:", "a=ssrc:", "a=ssrc-group:FID ", "a=rid:",
        "a=simulcast:", "a=fingerprint:sha-256 ", "a=group:BUNDLE ", "a=msid-semantic:", "a=setup:", "a=mid:", "m=video ",
        "m=application ", "typ ", "raddr ", "rport ", "tcptype ", "send ", "recv ", "~", "99999999999999999999", "-1", "65536", "128",
    ]

    /// The beginnings of lines the parser gives a meaning to.
    private static let lineStarts = [
        "m=audio 9 UDP/TLS/RTP/SAVPF ", "m=", "c=", "b=", "t=", "o=", "i=", "a=rtpmap:", "a=candidate:", "a=fmtp:",
        "a=rtcp-fb:", "a=extmap:", "a=ssrc:", "a=ssrc-group:", "a=rid:", "a=simulcast:", "a=fingerprint:", "a=group:",
        "a=msid:", "a=msid-semantic:", "a=setup:", "a=mid:", "a=ice-ufrag:", "a=ice-options:", "a=sctp-port:",
        "a=max-message-size:", "a=", "a=sendonly",
    ]

    /// Checks the parser's contract on `text`: it returns or throws, and what it returns survives a
    /// round trip. Returns whether `text` parsed.
    @discardableResult
    private func check(_ text: String, failures: inout [String]) -> Bool {
        guard let description = try? SessionDescription.parse(text) else { return false }
        let reparsed = try? SessionDescription.parse(description.serialized)
        if reparsed != description, failures.count < 5 { failures.append(text.debugDescription) }
        return true
    }

    private func randomText(_ random: inout SplitMix64, length: Int) -> String {
        var text = ""
        for _ in 0..<length {
            if Int.random(in: 0..<4, using: &random) == 0 {
                text += Self.fragments.randomElement(using: &random) ?? ""
            } else {
                text.append(Self.alphabet.randomElement(using: &random) ?? "x")
            }
        }
        return text
    }

    @Test func garbledLinesNeverCrashTheParser() {
        var random = SplitMix64(state: 0x5D9)
        var failures: [String] = []
        var parsed = 0
        for round in 0..<20_000 {
            var text = round.isMultiple(of: 2) ? "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" : ""
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                // Mostly a known line start followed by junk, so the junk reaches the value parsers.
                let start = Int.random(in: 0..<4, using: &random) == 0 ? "" : Self.lineStarts.randomElement(using: &random) ?? ""
                text += start + randomText(&random, length: Int.random(in: 0...30, using: &random)) + "\r\n"
            }
            if check(text, failures: &failures) { parsed += 1 }
        }
        #expect(failures.isEmpty, "did not round-trip: \(failures)")
        #expect(parsed > 200, "some garbled descriptions are still valid SDP")
    }

    @Test func mutatedFixturesNeverCrashTheParser() throws {
        var random = SplitMix64(state: 0xA7121)
        var failures: [String] = []
        var outcomes = (parsed: 0, rejected: 0)
        let fixtures = try (SDPFixture.captured + SDPFixture.handWritten).map(SDPFixture.text)
        for round in 0..<4000 {
            var lines = fixtures[round % fixtures.count].components(separatedBy: "\r\n")
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                mutate(&lines, &random)
            }
            let text = lines.joined(separator: "\r\n")
            if check(text, failures: &failures) { outcomes.parsed += 1 } else { outcomes.rejected += 1 }
        }
        #expect(failures.isEmpty, "did not round-trip: \(failures)")
        #expect(outcomes.parsed > 100 && outcomes.rejected > 100, "\(outcomes)")
    }

    private func mutate(_ lines: inout [String], _ random: inout SplitMix64) {
        guard !lines.isEmpty else { lines = [randomText(&random, length: 10)]; return }
        let index = Int.random(in: 0..<lines.count, using: &random)
        var characters = Array(lines[index])
        let position = characters.isEmpty ? 0 : Int.random(in: 0..<characters.count, using: &random)
        switch Int.random(in: 0..<9, using: &random) {
        case 0: lines.remove(at: index)
        case 1: lines.insert(lines[index], at: Int.random(in: 0...lines.count, using: &random))
        case 2: lines.swapAt(index, Int.random(in: 0..<lines.count, using: &random))
        case 3: lines[index] = String(characters.prefix(position))
        case 4:
            if !characters.isEmpty { characters.remove(at: position) }
            lines[index] = String(characters)
        case 5:
            characters.insert(Self.alphabet.randomElement(using: &random) ?? "x", at: position)
            lines[index] = String(characters)
        case 6:
            if !characters.isEmpty { characters[position] = Self.alphabet.randomElement(using: &random) ?? "x" }
            lines[index] = String(characters)
        case 7:
            // Replace one space-separated token with something numeric or grammatical.
            var tokens = lines[index].split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            tokens[Int.random(in: 0..<tokens.count, using: &random)] = Self.fragments.randomElement(using: &random) ?? ""
            lines[index] = tokens.joined(separator: " ")
        default:
            lines.insert(randomText(&random, length: Int.random(in: 0...30, using: &random)), at: index)
        }
    }
}
