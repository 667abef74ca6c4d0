import AtriumJSON
import Foundation
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// A media loop's timers: DTLS retransmissions, ICE consent, the no-media check, ICE-TCP
/// connections that never proved themselves, and the RTCP reports once a second.
extension MediaEngine {
    /// Milliseconds until the next timer is due (a DTLS retransmission, the slow tick, the
    /// reports), at least 1: an idle media thread wakes only when there is work, not every 20 ms.
    func pollTimeout(now: UInt64) -> Int32 {
        var due = min(lastSlowTick + Self.slowTickNanos, lastReportTick + Self.reportNanos)
        if !probing.isEmpty, let filler = nextFillerAt() { due = min(due, filler) }
        if !feedbackDue.isEmpty { due = min(due, lastFeedbackTick + Self.feedbackNanos) }
        if !lossesDue.isEmpty { due = min(due, lastLossTick + Self.lossTickNanos) }
        var ms = due > now ? Int((due - now) / 1_000_000) + 1 : 1
        if handshakesMayRun {
            for peer in peersByHandle.values {
                // Only a timer `tick` can act on: one without a selected path waits (no 1 ms spin).
                if let dtls = peer.dtls, dtls.state == .connecting, peer.ice.selected != nil, let t = dtls.timeoutMilliseconds { ms = min(ms, t) }
            }
        }
        return Int32(max(1, ms))
    }

    static let slowTickNanos: UInt64 = 250_000_000
    static let reportNanos: UInt64 = 1_000_000_000

    func tick(now: UInt64) {
        if !probing.isEmpty { probeTick(now: now) }
        if !feedbackDue.isEmpty { sendTransportFeedback(now: now) }
        if !lossesDue.isEmpty { requestMissing(now: now) }
        if handshakesMayRun {
            var connecting = false
            for peer in peersByHandle.values {
                guard let dtls = peer.dtls, dtls.state == .connecting else { continue }
                connecting = true
                guard let ms = dtls.timeoutMilliseconds, ms == 0, let to = peer.ice.selected else { continue }
                sendAll(dtls.handleTimeout(), on: to, of: peer)
                dtlsStateChanged(peer)
            }
            handshakesMayRun = connecting
        }
        if nanoseconds(from: lastSlowTick, to: now) >= Self.slowTickNanos {
            lastSlowTick = now
            let noMedia = UInt64(config.noMediaSeconds * 1e9)
            for connection in Array(connections.values) where connection.peer == nil && nanoseconds(from: connection.acceptedAt, to: now) > Self.unboundTCPTimeout {
                drop(connection)
            }
            for peer in Array(peersByHandle.values) {
                if peer.ice.checkConsent(now: now) {
                    logger.info("consent expired", metadata: ["handle": "\(peer.handle.id)"])
                    close(peer, reason: .iceFailed, notifyClient: true, notifyPlugin: true)
                    continue
                }
                for stream in peer.streams where stream.receiving && nanoseconds(from: stream.lastPacketAt, to: now) > noMedia {
                    stream.receiving = false
                    mediaStateChanged(peer, stream)
                }
            }
        }
        if nanoseconds(from: lastReportTick, to: now) >= Self.reportNanos {
            lastReportTick = now
            for peer in peersByHandle.values where peer.isConnected { report(peer, now: now) }
        }
    }

    /// How often missing packets are looked at: a fraction of the reorder wait and retry interval.
    static let lossTickNanos: UInt64 = 10_000_000

    /// NACKs to peers for the video packets they failed to deliver (upstream loss recovery).
    private func requestMissing(now: UInt64) {
        guard nanoseconds(from: lastLossTick, to: now) >= Self.lossTickNanos else { return }
        lastLossTick = now
        for (address, peer) in lossesDue {
            var packets: [RTCPPacket] = []
            var pending = false
            for stream in peer.streams where stream.isVideo && !stream.missing.isEmpty {
                for ssrc in Array(stream.missing.keys) {
                    guard let lost = stream.missing[ssrc]?.due(now: now) else { continue }
                    if !lost.isEmpty {
                        packets.append(.genericNACK(GenericNACK(senderSSRC: peer.hostSSRC, mediaSSRC: ssrc, lostSequenceNumbers: lost)))
                    }
                    if stream.missing[ssrc]?.isEmpty == false { pending = true }
                }
            }
            if !packets.isEmpty, peer.isConnected { sendRTCP(peer, packets: packets) }
            if !pending { lossesDue.removeValue(forKey: address) }
        }
    }

    /// Receiver and sender reports (with the REMB cap, if any) once a second, and slowlink checks.
    private func report(_ peer: PeerConnection, now: UInt64) {
        var blocks: [ReportBlock] = []
        let threshold = UInt32(config.slowlinkThreshold)
        for stream in peer.streams {
            var lost: UInt32 = 0
            for ssrc in Array(stream.statistics.keys) {
                guard let (block, lostInInterval) = stream.statistics[ssrc]?.reportBlock(now: now) else { continue }
                blocks.append(block)
                lost &+= lostInInterval
            }
            if threshold > 0 {
                if lost >= threshold { slowLink(peer, stream, uplink: false, lost: lost) }
                if stream.nackedThisInterval >= threshold { slowLink(peer, stream, uplink: true, lost: stream.nackedThisInterval) }
            }
            stream.nackedThisInterval = 0
        }
        var packets: [RTCPPacket] = []
        let wallClock = SenderReport.ntpNow()
        for stream in peer.streams where stream.sends && stream.packetsSent > 0 {
            let elapsed = nanoseconds(from: stream.lastSentAt, to: now)
            let rtp = stream.lastRTPTimestamp &+ RTPClock.ticks(nanoseconds: elapsed, clockRate: stream.sendClockRate)
            let reports = packets.isEmpty ? Array(blocks.prefix(31)) : []
            packets.append(.senderReport(SenderReport(ssrc: stream.localSSRC, ntpTimestamp: wallClock, rtpTimestamp: rtp,
                                                      packetCount: stream.packetsSent, octetCount: stream.octetsSent, reports: reports)))
        }
        if packets.isEmpty {
            packets.append(.receiverReport(ReceiverReport(ssrc: peer.hostSSRC, reports: Array(blocks.prefix(31)))))
        }
        let firstSSRC: UInt32 = switch packets[0] {
        case .senderReport(let sr): sr.ssrc
        default: peer.hostSSRC
        }
        packets.append(.sourceDescription(SourceDescription(ssrc: firstSSRC, cname: peer.cname)))
        if let remb = remb(peer) { packets.append(remb) }
        sendRTCP(peer, packets: packets)
    }
}
