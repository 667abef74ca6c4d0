import PluginAPI
import RTC

/// Why a description was refused, with the text the client (or the plugin's log) gets.
struct NegotiationError: Error, CustomStringConvertible {
    enum Kind { case invalidSDP, unexpectedAnswer, state }
    var kind: Kind
    var description: String

    static func invalid(_ text: String) -> NegotiationError { NegotiationError(kind: .invalidSDP, description: text) }
}

/// The checks every remote description passes before the host builds on it: BUNDLE over one
/// DTLS-SRTP transport with rtcp-mux, ICE credentials and a sha-256 fingerprint.
struct RemoteTransport {
    let ice: IceCredentials
    let fingerprint: String
    let setup: SetupRole

    init(_ sdp: SessionDescription) throws(NegotiationError) {
        let active = sdp.media.filter { !$0.isRejected }
        guard let first = active.first else { throw .invalid("no media section is accepted") }
        if active.count > 1 {
            guard let bundle = sdp.bundleGroup, active.allSatisfy({ $0.mid.map(bundle.mids.contains) ?? false }) else {
                throw .invalid("every media section must be in one BUNDLE group (Atrium carries all media on one transport)")
            }
        }
        for m in active where m.isRTP {
            guard m.transportProtocol.uppercased().contains("SAVPF") || m.transportProtocol.uppercased().contains("SAVP") else {
                throw .invalid("m=\(m.kind) uses \(m.transportProtocol); WebRTC media needs UDP/TLS/RTP/SAVPF")
            }
            guard m.rtcpMux else { throw .invalid("m=\(m.kind) (mid \(m.mid ?? "?")) lacks a=rtcp-mux") }
        }
        guard let credentials = sdp.iceCredentials(of: first) else { throw .invalid("no a=ice-ufrag/a=ice-pwd") }
        guard let fingerprint = sdp.fingerprints(of: first).first(where: { $0.algorithm.lowercased() == "sha-256" }) else {
            throw .invalid("no a=fingerprint:sha-256 (DTLS-SRTP needs the peer's certificate fingerprint)")
        }
        ice = credentials
        self.fingerprint = fingerprint.hex.uppercased()
        setup = sdp.setup(of: first) ?? .actpass
    }
}

extension MediaEngine {
    /// A client's offer: creates the handle's PeerConnection, or updates it (an ICE restart when the
    /// credentials changed). Runs on the media thread.
    func acceptRemoteOffer(_ sdp: SessionDescription, handle: Handle) throws(NegotiationError) {
        let transport = try RemoteTransport(sdp)
        guard transport.setup != .holdconn else { throw .invalid("a=setup:holdconn is not supported") }
        let now = monotonicNanoseconds()
        let peer: PeerConnection
        if let existing = self.peer(for: handle) {
            peer = existing
            if let remote = peer.ice.remote, remote != transport.ice {
                guard peer.restartBudget.take(now: now, perMinute: config.iceRestartsPerMinute) else {
                    throw .invalid("too many ICE restarts (at most \(config.iceRestartsPerMinute) a minute)")
                }
                let old = peer.ice.local.ufrag
                let selected = peer.ice.selected
                peer.ice = peer.ice.restart(local: .random(), remote: transport.ice, now: now)
                replaceUfrag(peer, old: old)
                forgetPaths(of: peer, except: selected)
                logger.debug("ICE restart", metadata: ["handle": "\(handle.id)"])
            }
        } else {
            peer = PeerConnection(handle: handle, now: now, consentTimeout: config.consentTimeoutSeconds)
            peer.ice.setRemote(transport.ice)
            register(peer)
        }
        try startDTLS(peer, role: transport.setup == .passive ? .client : .server, fingerprint: transport.fingerprint)
        forget(peer.updateStreams(remote: sdp))
        peer.remoteDescription = sdp
        peer.awaitingLocalAnswer = true
        peer.awaitingAnswer = false
    }

    /// A client's answer to an offer a plugin made.
    func acceptRemoteAnswer(_ sdp: SessionDescription, handle: Handle) throws(NegotiationError) {
        guard let peer = self.peer(for: handle), peer.awaitingAnswer else {
            throw NegotiationError(kind: .unexpectedAnswer, description: "Unexpected ANSWER (did we offer?)")
        }
        let transport = try RemoteTransport(sdp)
        guard transport.setup == .active || transport.setup == .passive else {
            throw .invalid("an answer must say a=setup:active or a=setup:passive")
        }
        peer.ice.setRemote(transport.ice)
        try startDTLS(peer, role: transport.setup == .passive ? .client : .server, fingerprint: transport.fingerprint)
        forget(peer.updateStreams(remote: sdp))
        for (i, m) in sdp.media.enumerated() where i < peer.streams.count && peer.streams[i].sends {
            peer.streams[i].outgoingIDs = peer.streams[i].outgoingIDs.kept(by: m)
        }
        peer.updateBandwidth()
        peer.remoteDescription = sdp
        peer.awaitingAnswer = false
        if peer.dtlsRole == .client, peer.ice.state == .connected, let dtls = peer.dtls, dtls.state == .new, let to = peer.ice.selected {
            sendAll(dtls.start(), on: to, of: peer)
        }
    }

    private func startDTLS(_ peer: PeerConnection, role: DTLSTransport.Role, fingerprint: String) throws(NegotiationError) {
        // Renegotiation keeps the association the peer already has.
        if peer.dtls != nil, peer.remoteFingerprint == fingerprint { return }
        do {
            peer.dtls = try DTLSTransport(role: role, certificate: certificate, remoteFingerprint: fingerprint)
        } catch {
            throw NegotiationError(kind: .state, description: "DTLS: \(error)")
        }
        peer.dtlsRole = role
        peer.remoteFingerprint = fingerprint
    }

    /// Completes a plugin's media-only description (offer or answer) with this side's transport,
    /// SSRCs and msid lines, and records what the handle will send. Returns the description the
    /// client gets.
    func completeLocal(type: String, _ sdp: SessionDescription, handle: Handle) throws(NegotiationError) -> SessionDescription {
        var local = sdp
        let peer: PeerConnection
        let setup: SetupRole
        if type == "answer" {
            guard let p = self.peer(for: handle), p.awaitingLocalAnswer, let remote = p.remoteDescription else {
                throw NegotiationError(kind: .state, description: "an answer needs the client's offer first")
            }
            guard local.media.count == remote.media.count else {
                throw .invalid("the answer has \(local.media.count) media sections, the offer \(remote.media.count)")
            }
            for i in local.media.indices {
                if let mid = remote.media[i].mid { local.media[i].mid = mid }
                if remote.media[i].isRejected { local.media[i].port = 0 }
            }
            peer = p
            setup = p.dtlsRole == .client ? .active : .passive
            p.awaitingLocalAnswer = false
        } else {
            if let p = self.peer(for: handle) {
                peer = p
            } else {
                peer = PeerConnection(handle: handle, now: monotonicNanoseconds(), consentTimeout: config.consentTimeoutSeconds)
                register(peer)
            }
            setup = .actpass
            peer.awaitingAnswer = true
            for i in local.media.indices where local.media[i].mid == nil { local.media[i].mid = "\(i)" }
        }
        local.complete(with: LocalTransport(ice: peer.ice.local, fingerprint: fingerprint, setup: setup, candidates: candidates))
        for i in local.media.indices {
            var m = local.media[i]
            guard m.isRTP, m.kind == .audio || m.kind == .video else { continue }
            let stream = peer.stream(at: i, mid: m.mid ?? "\(i)", isVideo: m.kind == .video)
            var ssrc = m.ssrcs.first ?? (stream.localSSRC != 0 ? stream.localSSRC : UInt32.random(in: 1...UInt32.max))
            var repairSSRC: UInt32?
            if !m.isRejected, m.direction.sends, m.ssrcs.isEmpty {
                if m.msids.isEmpty { m.msids = [MSID(streamID: "atrium-\(handle.id)", trackID: "\(m.kind)\(stream.mid)")] }
                m.ssrcAttributes = [SSRCAttribute(ssrc: ssrc, attribute: "cname", value: peer.cname)]
                if m.kind == .video, MediaStream.repairPayloadType(m) != nil {
                    let repair = stream.repair?.ssrc ?? UInt32.random(in: 1...UInt32.max)
                    m.ssrcAttributes.append(SSRCAttribute(ssrc: repair, attribute: "cname", value: peer.cname))
                    m.ssrcGroups = [SSRCGroup(semantics: "FID", ssrcs: [ssrc, repair])]
                    repairSSRC = repair
                }
            } else if let fid = m.ssrcGroups.first(where: { $0.semantics == "FID" && $0.ssrcs.count == 2 && $0.ssrcs[0] == ssrc }) {
                repairSSRC = fid.ssrcs[1]
            }
            if m.isRejected { ssrc = 0 }
            stream.applyLocal(m, ssrc: ssrc, repairSSRC: repairSSRC, retransmissionPackets: config.retransmissionPackets, sharedPayloads: sharedPayloads)
            if type == "offer" { stream.applyRemote(m) }
            local.media[i] = m
        }
        // An answer is the negotiation's end; an offer's extensions wait for the peer's answer.
        if type == "answer" { peer.updateBandwidth() }
        return local
    }

    /// Closes the handle's PeerConnection, if it has one. `notifyClient`/`notifyPlugin` as in `close`.
    /// Returns whether there was one. Runs on the media thread.
    func hangup(_ handle: Handle, reason: HangupReason, notifyClient: Bool, notifyPlugin: Bool) -> Bool {
        guard let peer = self.peer(for: handle) else { return false }
        close(peer, reason: reason, notifyClient: notifyClient, notifyPlugin: notifyPlugin)
        return true
    }
}
