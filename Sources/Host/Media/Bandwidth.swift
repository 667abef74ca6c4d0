import PluginAPI
import RTC

/// Congestion control on the media loop. Sending: transport-wide sequence numbers on what leaves,
/// the peer's transport feedback read into the PeerConnection's `BandwidthEstimator`, the estimate
/// handed to the plugin ("atrium.bandwidth/1"), NACKs answered on the repair stream, and probe
/// clusters paced out as repair-stream filler. Receiving: transport feedback on what the peer
/// sends, every 100 ms, for its own estimator.
extension MediaEngine {
    /// The transport-wide sequence number for the next packet on `stream`, if it carries them.
    func nextTransportSequence(_ peer: PeerConnection, _ stream: MediaStream) -> UInt16? {
        guard stream.outgoingIDs.transportWideCC != 0 else { return nil }
        peer.transportSequence &+= 1
        return peer.transportSequence
    }

    /// Resends a stored packet of `stream` on its repair stream (RFC 4588), with a new transport
    /// sequence number. Returns the bytes sent, 0 when the packet is gone or there is no repair stream.
    @discardableResult
    func sendRepair(_ peer: PeerConnection, _ stream: MediaStream, sequenceNumber: UInt16, now: UInt64) -> Int {
        guard let repair = stream.repair, let stored = stream.retransmissions?.copy(sequenceNumber: sequenceNumber, now: now, into: repairScratch),
            let original = try? RTPPacketView(buffer: repairScratch, length: stored)
        else { return 0 }
        var values = OutgoingExtensionValues()
        let ids = stream.outgoingIDs
        if ids.mid != 0 { values.mid = stream.midBytes }
        if ids.absSendTime != 0 { values.absSendTime = OutgoingRTP.absSendTime(nanos: now) }
        let transport = nextTransportSequence(peer, stream)
        values.transportSequence = transport
        let sequence = stream.repairSequence
        let out = outgoingBuffer(for: peer)
        let capacity = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
        guard let length = OutgoingRTP.write(original, ssrc: repair.ssrc, ids: ids, values: values, into: capacity,
                                             repair: (repair.payloadType, sequence)) else { return 0 }
        stream.repairSequence &+= 1
        if let transport { peer.bandwidth?.sent(sequence: transport, size: length, now: now) }
        protectAndSend(peer, out, length: length, rtcp: false)
        return length
    }

    /// The peer's transport feedback: into the estimator, and the plugin told when it moved.
    func transportFeedback(_ feedback: TransportFeedback, peer: PeerConnection, now: UInt64) {
        guard let bandwidth = peer.bandwidth, bandwidth.admitsFeedback(statuses: Int(feedback.packetStatusCount), now: now) else { return }
        if let estimate = bandwidth.feedback(feedback.packetResults, now: now) {
            peer.handle.bandwidthEstimate.store(estimate, ordering: .relaxed)
            if let changed = peer.plugin.bandwidth?.estimate_changed {
                calling(peer.plugin) { changed(peer.plugin.pluginPointer, peer.handle.raw, estimate) }
            }
        }
        if peer.streams.contains(where: { $0.repair != nil }), bandwidth.startProbeIfDue(now: now) {
            probing[peer.handle.address] = peer
            sendFiller(peer, now: now)
        }
    }

    /// When the next probe filler is due, for the poll's timeout; nil when nothing is probing.
    func nextFillerAt() -> UInt64? {
        var next: UInt64?
        for peer in probing.values {
            guard let at = peer.bandwidth?.prober.nextFillerAt(packetSize: Self.fillerSize) else { continue }
            next = min(next ?? at, at)
        }
        return next
    }

    /// Sends the filler each running probe cluster needs by now; forgets finished ones.
    func probeTick(now: UInt64) {
        for (address, peer) in probing {
            sendFiller(peer, now: now)
            if peer.bandwidth?.prober.active == nil { probing.removeValue(forKey: address) }
        }
    }

    /// About a full-size packet: a filler resends a recent one of about this size.
    static let fillerSize = 1_200

    /// Filler for the peer's running cluster, up to what its rate asks by now: recent video packets
    /// resent on the repair stream (a receiver discards them as duplicates), else padding-only
    /// packets there. Without a repair stream there is nothing to probe with, and the cluster ends.
    private func sendFiller(_ peer: PeerConnection, now: UInt64) {
        guard let bandwidth = peer.bandwidth else { return }
        guard peer.isConnected, let stream = peer.streams.first(where: { $0.sends && $0.repair != nil && $0.outgoingIDs.transportWideCC != 0 }),
            let repair = stream.repair
        else {
            bandwidth.abandonProbe(now: now)
            return
        }
        var budget = 64  // one loop turn never sends more than this
        while bandwidth.prober.fillerDue(now: now) > 0, budget > 0 {
            budget -= 1
            peer.fillerCount &+= 1
            if let last = stream.lastSequenceSent, sendRepair(peer, stream, sequenceNumber: last &- UInt16(truncatingIfNeeded: peer.fillerCount % 8), now: now) > 0 {
                continue
            }
            guard let transport = nextTransportSequence(peer, stream) else { return }
            var values = OutgoingExtensionValues()
            if stream.outgoingIDs.mid != 0 { values.mid = stream.midBytes }
            values.transportSequence = transport
            let out = outgoingBuffer(for: peer)
            let capacity = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
            guard let length = OutgoingRTP.writePadding(
                ssrc: repair.ssrc, payloadType: repair.payloadType, sequenceNumber: stream.repairSequence, timestamp: stream.lastRTPTimestamp,
                padding: 255, ids: stream.outgoingIDs, values: values, into: capacity)
            else { return }
            stream.repairSequence &+= 1
            bandwidth.sent(sequence: transport, size: length, now: now)
            protectAndSend(peer, out, length: length, rtcp: false)
        }
    }

    /// How often a peer sending transport-wide sequence numbers hears what arrived (libwebrtc's
    /// receivers send feedback every 50–250 ms).
    static let feedbackNanos: UInt64 = 100_000_000

    /// A packet from the peer carried transport-wide `sequence`: kept for the next feedback.
    func arrived(_ sequence: UInt16, peer: PeerConnection, now: UInt64) {
        if peer.arrivals == nil { peer.arrivals = FeedbackRecorder() }
        peer.arrivals?.record(sequence: sequence, micros: Int64(now / 1_000))
        feedbackDue[peer.handle.address] = peer
    }

    /// Sends each peer with arrivals its transport feedback, once per `feedbackNanos`.
    func sendTransportFeedback(now: UInt64) {
        guard nanoseconds(from: lastFeedbackTick, to: now) >= Self.feedbackNanos else { return }
        lastFeedbackTick = now
        for peer in feedbackDue.values where peer.isConnected {
            let media = peer.streams.lazy.compactMap { $0.statistics.keys.first }.first ?? 0
            guard let feedback = peer.arrivals?.feedback(senderSSRC: peer.hostSSRC, mediaSSRC: media) else { continue }
            sendRTCP(peer, packets: [.transportFeedback(feedback)])
        }
        feedbackDue.removeAll(keepingCapacity: true)
    }
}
