import AtriumJSON
import Foundation
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// What a media loop does with a packet it read: demultiplex it (known path, else a binding request
/// naming a ufrag the host handed out), answer STUN, drive DTLS, decrypt RTP and RTCP and hand them
/// to the handle's plugin (and taps), answering NACKs from the retransmission store.
extension MediaEngine {
    /// One packet from a UDP datagram or an ICE-TCP frame, in the receive buffer. `peer` is the
    /// PeerConnection its path already belongs to, if any.
    func packet(length: Int, path: IcePath, peer known: PeerConnection?, connection: TCPConnection?, now: UInt64) {
        let bytes = UnsafeMutableRawBufferPointer(rebasing: receiveBuffer[0..<length])
        let kind = PacketKind.classify(UnsafeRawBufferPointer(bytes))
        packetArrival = now
        packetsHandled &+= 1
        defer { packetArrival = nil }
        guard let peer = known else {
            // A stranger may only start with a binding request naming a ufrag we handed out.
            if kind == .stun, let parsed = try? STUNMessage.parse(Array(bytes)), let ufrag = IceLiteAgent.localUfrag(of: parsed),
                let peer = peersByUfrag[ufrag]
            {
                stun(parsed, peer: peer, path: path, connection: connection, now: now)
            } else {
                metrics.dropped.add(1, ordering: .relaxed)
            }
            // A connection is for ICE: one whose first frame is not a valid check is closed.
            if let connection, connection.peer == nil { drop(connection) }
            return
        }
        switch kind {
        case .stun:
            if let parsed = try? STUNMessage.parse(Array(bytes)) {
                stun(parsed, peer: peer, path: path, connection: connection, now: now)
            } else {
                metrics.dropped.add(1, ordering: .relaxed)
            }
        case .dtls: dtls(Array(bytes), peer: peer, path: path)
        case .rtp: rtp(bytes, peer: peer, now: now)
        case .rtcp: rtcp(bytes, peer: peer, now: now)
        case .unknown: metrics.dropped.add(1, ordering: .relaxed)
        }
    }

    /// Paths (remote address and transport) one peer may use; a peer that knows its credentials
    /// could otherwise answer checks from ever new ports and grow the address tables. Browsers use
    /// a handful, a few more after network changes.
    static let maximumPathsPerPeer = 32

    private func stun(_ message: ParsedSTUNMessage, peer: PeerConnection, path: IcePath, connection: TCPConnection?, now: UInt64) {
        guard peer.paths.count < Self.maximumPathsPerPeer || peer.paths.contains(path) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let wasConnected = peer.ice.state == .connected
        switch peer.ice.handle(message, from: path, now: now) {
        case .respond(let response):
            if !peer.paths.contains(path) {
                peer.paths.insert(path)
                if let connection {
                    connection.peer = peer
                    peer.connections[connection.remote] = connection
                } else {
                    peersByAddress[path.address] = peer
                }
            }
            response.withUnsafeBytes { _ = send($0, on: path, of: peer) }
            if !wasConnected, peer.ice.state == .connected, peer.dtlsRole == .client, let dtls = peer.dtls {
                sendAll(dtls.start(), on: path, of: peer)
            }
        case .ignore:
            metrics.dropped.add(1, ordering: .relaxed)
        }
    }

    private func dtls(_ bytes: [UInt8], peer: PeerConnection, path: IcePath) {
        handshakesMayRun = true
        guard let dtls = peer.dtls else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        sendAll(dtls.receive(bytes), on: peer.ice.selected ?? path, of: peer)
        dtlsStateChanged(peer)
    }

    func dtlsStateChanged(_ peer: PeerConnection) {
        guard let dtls = peer.dtls else { return }
        switch dtls.state {
        case .connected where !peer.webrtcUp:
            guard let keys = dtls.keys, let inbound = try? keys.inbound(), let outbound = try? keys.outbound() else {
                close(peer, reason: .dtlsError, notifyClient: true, notifyPlugin: true)
                return
            }
            peer.inbound = inbound
            peer.outbound = outbound
            peer.webrtcUp = true
            logger.debug("webrtcup", metadata: ["handle": "\(peer.handle.id)", "srtp": "\(keys.profile)"])
            emit("webrtcup", for: peer)
            let handle = peer.handle
            handle.plugin.onControl(handle) { $0.setupMedia(handle) }
        case .closed:
            close(peer, reason: .dtlsAlert, notifyClient: true, notifyPlugin: true)
        case .failed(let why):
            logger.info("DTLS failed", metadata: ["handle": "\(peer.handle.id)", "reason": "\(why)"])
            close(peer, reason: .dtlsError, notifyClient: true, notifyPlugin: true)
        default:
            break
        }
    }

    private func rtp(_ bytes: UnsafeMutableRawBufferPointer, peer: PeerConnection, now: UInt64) {
        guard let inbound = peer.inbound, let length = try? inbound.unprotect(bytes, length: bytes.count),
            let packet = try? RTPPacketView(buffer: bytes, length: length),
            let stream = peer.resolveStream(packet, maxSSRCsPerStream: config.maxSSRCsPerStream)
        else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let ssrc = packet.ssrc
        // SSRCs the description announced skip resolveStream's bound; this one holds for all (the
        // second lookup only happens once a stream tracks its maximum).
        guard stream.statistics.count < config.maxSSRCsPerStream || stream.statistics[ssrc] != nil else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        stream.statistics[ssrc, default: RTPReceiveStatistics(ssrc: ssrc, clockRate: stream.clockRates[packet.payloadType] ?? (stream.isVideo ? 90_000 : 48_000))]
            .update(sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, arrivalNanos: now)
        stream.lastPacketAt = now
        if stream.isVideo {
            if stream.missing[ssrc, default: MissingPackets()].received(packet.sequenceNumber, now: now) {
                lossesDue[peer.handle.address] = peer
            }
        }
        if stream.incomingTransportWideID != 0, let sequence = packet.transportSequenceNumber(id: stream.incomingTransportWideID) {
            arrived(sequence, peer: peer, now: now)
        }
        if !stream.receiving {
            stream.receiving = true
            mediaStateChanged(peer, stream)
        }
        metrics.rtpIn.add(1, ordering: .relaxed)
        if let incoming = peer.plugin.table.incoming_rtp { deliver(bytes, length: length, packet: packet, stream: stream, peer: peer, to: incoming) }
        if peer.tapLabels != nil && !tapPlugins.isEmpty {
            tap(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), packet: packet, peer: peer, stream: stream, now: now)
        }
    }

    private func deliver(_ bytes: UnsafeMutableRawBufferPointer, length: Int, packet: RTPPacketView, stream: MediaStream, peer: PeerConnection,
                         to incoming: @convention(c) (UnsafePointer<atrium_plugin_t>, UnsafeMutablePointer<atrium_handle_t>, UnsafePointer<atrium_rtp_packet_t>) -> Void) {
        var p = atrium_rtp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtp_packet_t>.size), mindex: Int32(stream.index), is_video: stream.isVideo ? 1 : 0,
            buffer: UnsafePointer(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)), length: UInt32(length),
            audio_level: -1, audio_voice: -1, video_rotation: -1, mid: UnsafePointer(stream.midCString), rid: nil)
        if stream.incomingAudioLevelID != 0, let level = packet.audioLevel(id: stream.incomingAudioLevelID) {
            p.audio_level = Int32(level.level)
            p.audio_voice = level.voice ? 1 : 0
        }
        if stream.incomingOrientationID != 0, let (o, n) = packet.headerExtension(id: stream.incomingOrientationID), n >= 1 {
            p.video_rotation = Int32(bytes[o] & 0x03) * 90
        }
        if stream.incomingRidID != 0, let rid = packet.headerExtensionString(id: stream.incomingRidID) {
            p.rid = stream.ridCString(rid, limit: config.sdpLimits.ridsPerSection)
        }
        calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
    }

    private func rtcp(_ bytes: UnsafeMutableRawBufferPointer, peer: PeerConnection, now: UInt64) {
        guard let inbound = peer.inbound, let length = try? inbound.unprotectRTCP(bytes, length: bytes.count) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let plain = UnsafeRawBufferPointer(rebasing: bytes[0..<length])
        guard let packets = try? RTCPPacket.parseCompound(plain) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        var answeredNACK = false
        var about: MediaStream?
        var reported: [UInt32] = []
        for packet in packets {
            switch packet {
            case .senderReport(let sr):
                reported.append(sr.ssrc)
                if let i = peer.streamBySSRC[sr.ssrc], i < peer.streams.count {
                    peer.streams[i].statistics[sr.ssrc]?.senderReportReceived(compactNTP: sr.compactNTPTimestamp, at: now)
                    about = about ?? peer.streams[i]
                }
            case .genericNACK(let nack):
                if let stream = peer.streams.first(where: { $0.sends && $0.localSSRC == nack.mediaSSRC }) {
                    let lost = nack.lostSequenceNumbers
                    stream.nackedThisInterval &+= UInt32(lost.count)
                    for seq in lost { retransmit(peer, stream, sequenceNumber: seq, now: now) }
                    answeredNACK = true
                }
            case .transportFeedback(let feedback):
                transportFeedback(feedback, peer: peer, now: now)
            case .pictureLossIndication(let pli):
                about = about ?? peer.streams.first { $0.localSSRC == pli.mediaSSRC }
            case .fullIntraRequest(let fir):
                about = about ?? peer.streams.first { s in fir.entries.contains { $0.ssrc == s.localSSRC } }
            default:
                break
            }
        }
        if !reported.isEmpty { tapRTCP(plain, reportedSSRCs: reported, peer: peer, now: now) }
        guard let incoming = peer.plugin.table.incoming_rtcp else { return }
        var p = atrium_rtcp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtcp_packet_t>.size), mindex: Int32(about?.index ?? -1),
            is_video: about?.isVideo == true ? 1 : 0, buffer: plain.baseAddress!.assumingMemoryBound(to: UInt8.self), length: UInt32(length))
        if answeredNACK {
            // NACKs the host answered are its business; the plugin sees the rest.
            let rest = packets.filter { if case .genericNACK = $0 { false } else { true } }
            guard !rest.isEmpty, let encoded = try? RTCPPacket.encodeCompound(rest) else { return }
            encoded.withUnsafeBufferPointer { b in
                p.buffer = b.baseAddress!
                p.length = UInt32(b.count)
                calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
            }
        } else {
            calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
        }
    }
}
