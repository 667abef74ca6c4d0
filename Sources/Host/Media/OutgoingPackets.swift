import AtriumJSON
import Foundation
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// The plugin media bridge, outward: what plugins relay (RTP, RTCP, keyframe requests, REMB) and
/// what the host sends on its own, protected and sent on the peer's selected path, batched over UDP.
extension MediaEngine {
    /// Sends one packet on a path of `peer`: a datagram, or a frame on its ICE-TCP connection.
    @discardableResult
    func send(_ bytes: UnsafeRawBufferPointer, on path: IcePath, of peer: PeerConnection) -> Bool {
        switch path.transport {
        case .udp:
            return socket.send(bytes, to: path.address)
        case .tcp:
            guard let connection = peer.connections[path.address] else { return false }
            let sent = connection.send(bytes)
            if connection.wantsWrite { pollSetStale = true }
            return sent
        }
    }

    /// Sends DTLS's datagrams (a flight it starts, answers or repeats, or its close).
    func sendAll(_ packets: [[UInt8]], on path: IcePath, of peer: PeerConnection) {
        handshakesMayRun = true
        for p in packets { p.withUnsafeBytes { _ = send($0, on: path, of: peer) } }
    }

    /// Where a packet for the peer is built: over UDP straight in the next datagram of the send
    /// batch (protected in place, no copy), else in the send buffer. `protectAndSend` sends it.
    func outgoingBuffer(for peer: PeerConnection) -> UnsafeMutableRawBufferPointer {
        peer.ice.selected?.transport == .udp ? socket.reserve() : sendBuffer
    }

    /// Protects `length` plain RTP (or RTCP) bytes that `outgoingBuffer` gave and sends them to the peer.
    func protectAndSend(_ peer: PeerConnection, _ buffer: UnsafeMutableRawBufferPointer, length: Int, rtcp: Bool) {
        guard let outbound = peer.outbound, let to = peer.ice.selected else { return }
        let n: Int
        do {
            n = rtcp ? try outbound.protectRTCP(buffer, length: length) : try outbound.protect(buffer, length: length)
        } catch {
            metrics.sendErrors.add(1, ordering: .relaxed)
            return
        }
        if to.transport == .udp {  // built in the batch's slot (outgoingBuffer)
            socket.commit(n, to: to.address)
            metrics.sent.add(1, ordering: .relaxed)
        } else if send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), on: to, of: peer) {
            metrics.sent.add(1, ordering: .relaxed)
        } else {
            metrics.sendErrors.add(1, ordering: .relaxed)
        }
    }

    /// A plugin's RTP for the peer (on the media thread).
    func sendRTP(_ peer: PeerConnection, _ packet: UnsafePointer<atrium_rtp_packet_t>, now: UInt64) -> Int32 {
        guard peer.isConnected else { return ATRIUM_ERR_STATE }
        // A plugin built against an older minor may pass a shorter struct: read what it wrote.
        let declared = packet.pointee.struct_size
        let p = declared >= MemoryLayout<atrium_rtp_packet_t>.size ? packet.pointee : copyTable(packet, declaredSize: declared, as: atrium_rtp_packet_t.self)
        let buffer = p.buffer
        guard p.length >= 12, p.length <= 1500 else { return ATRIUM_ERR_INVALID_ARGUMENT }
        guard let stream = peer.outgoingStream(mindex: p.mindex, isVideo: p.is_video != 0) else { return ATRIUM_ERR_NOT_FOUND }
        let source = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: buffer), count: Int(p.length))
        guard let view = try? RTPPacketView(buffer: source, length: Int(p.length)) else { return ATRIUM_ERR_INVALID_ARGUMENT }
        var values = OutgoingExtensionValues()
        let ids = stream.outgoingIDs
        if ids.mid != 0 { values.mid = stream.midBytes }
        if p.audio_level >= 0 { values.audioLevel = (p.audio_voice == 1, UInt8(clamping: p.audio_level)) }
        if p.video_rotation >= 0 { values.videoOrientation = UInt8((p.video_rotation / 90) & 3) }
        if ids.absSendTime != 0 { values.absSendTime = OutgoingRTP.absSendTime(nanos: now) }
        values.transportSequence = nextTransportSequence(peer, stream)
        let out = outgoingBuffer(for: peer)
        let capacity = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
        guard let length = OutgoingRTP.write(view, ssrc: stream.localSSRC, ids: ids, values: values, into: capacity) else {
            return ATRIUM_OK  // padding-only: nothing to forward
        }
        stream.packetsSent &+= 1
        stream.octetsSent &+= UInt32(view.payloadLength)
        stream.lastRTPTimestamp = view.timestamp
        stream.lastSentAt = now
        stream.lastSequenceSent = view.sequenceNumber
        if let transport = values.transportSequence { peer.bandwidth?.sent(sequence: transport, size: length, now: now) }
        if let retransmissions = stream.retransmissions {
            let plain = UnsafeRawBufferPointer(rebasing: out[0..<length])
            // Outside a received packet's handling there is nothing to share with (key 0).
            let key = packetArrival == nil ? 0 : packetsHandled
            let share = sharedPayloads.share(plain, payloadLength: view.payloadLength, key: key, now: now)
            retransmissions.store(plain, sequenceNumber: view.sequenceNumber, now: now, sharing: share)
        }
        metrics.rtpOut.add(1, ordering: .relaxed)
        protectAndSend(peer, out, length: length, rtcp: false)
        return ATRIUM_OK
    }

    /// Answers a NACK: on the repair stream when there is one, else the stored packet as it went.
    func retransmit(_ peer: PeerConnection, _ stream: MediaStream, sequenceNumber: UInt16, now: UInt64) {
        if stream.repair != nil {
            if sendRepair(peer, stream, sequenceNumber: sequenceNumber, now: now) > 0 { metrics.retransmitted.add(1, ordering: .relaxed) }
            return
        }
        let out = outgoingBuffer(for: peer)
        let room = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
        guard let length = stream.retransmissions?.copy(sequenceNumber: sequenceNumber, now: now, into: room) else { return }
        metrics.retransmitted.add(1, ordering: .relaxed)
        protectAndSend(peer, out, length: length, rtcp: false)
    }

    /// A plugin's plain RTCP for the peer: checked to be well-formed compound RTCP, then sent.
    func sendRTCP(_ peer: PeerConnection, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard peer.isConnected else { return ATRIUM_ERR_STATE }
        guard bytes.count >= 8, (try? RTCPPacket.parseCompound(bytes)) != nil else { return ATRIUM_ERR_INVALID_ARGUMENT }
        return sendPlainRTCP(peer, bytes) ? ATRIUM_OK : ATRIUM_ERR_INVALID_ARGUMENT
    }

    /// The host's own RTCP (reports, PLI, REMB): encoded here, so not parsed again.
    func sendRTCP(_ peer: PeerConnection, packets: [RTCPPacket]) {
        guard peer.isConnected, let encoded = try? RTCPPacket.encodeCompound(packets) else { return }
        _ = encoded.withUnsafeBytes { sendPlainRTCP(peer, $0) }
    }

    private func sendPlainRTCP(_ peer: PeerConnection, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let out = outgoingBuffer(for: peer)
        guard bytes.count <= out.count - SRTPContext.maximumTrailer else { return false }
        UnsafeMutableRawBufferPointer(rebasing: out[0..<bytes.count]).copyMemory(from: bytes)
        protectAndSend(peer, out, length: bytes.count, rtcp: true)
        return true
    }

    func requestKeyframe(_ peer: PeerConnection, mindex: Int32, now: UInt64) {
        guard peer.isConnected else { return }
        var packets: [RTCPPacket] = []
        for stream in peer.streams where stream.isVideo && (mindex < 0 || stream.index == Int(mindex)) {
            // Throttled: a burst of requests from a plugin becomes one PLI per 300 ms.
            guard nanoseconds(from: stream.lastKeyframeRequestAt, to: now) > 300_000_000 else { continue }
            stream.lastKeyframeRequestAt = now
            for ssrc in stream.statistics.keys {
                packets.append(.pictureLossIndication(PictureLossIndication(senderSSRC: peer.hostSSRC, mediaSSRC: ssrc)))
            }
        }
        if !packets.isEmpty { sendRTCP(peer, packets: packets) }
    }

    func sendREMB(_ peer: PeerConnection, bitrate: UInt64) {
        peer.rembBitrate = bitrate
        guard peer.isConnected, let remb = remb(peer) else { return }
        sendRTCP(peer, packets: [remb])
    }

    func remb(_ peer: PeerConnection) -> RTCPPacket? {
        guard peer.rembBitrate > 0 else { return nil }
        let ssrcs = peer.streams.flatMap { $0.statistics.keys }
        guard !ssrcs.isEmpty else { return nil }
        return .remb(REMB(senderSSRC: peer.hostSSRC, bitrate: min(peer.rembBitrate, REMB.maximumBitrate), ssrcs: Array(ssrcs.prefix(255))))
    }
}
