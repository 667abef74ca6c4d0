import Benchmark
import RTC
import SFUCore

/// The per-packet pieces of the media path: SRTP protect and unprotect of a 1200-byte video
/// packet, STUN parsing of an ICE binding request, the forwarder's RTP header rewrite, and the
/// host's relay step (outgoing header, retransmission copy, protect).
/// Each measures allocations too: the hot paths must allocate nothing.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    let keys = (key: [UInt8](repeating: 7, count: 16), salt12: [UInt8](repeating: 9, count: 12), salt14: [UInt8](repeating: 9, count: 14))
    func rtp(seq: UInt16) -> [UInt8] {
        [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, 0x10, 0x00, 0x11, 0x22, 0x33, 0x44] + [UInt8](repeating: 0x5A, count: 1188)
    }

    for profile in SRTPProfile.allCases {
        let salt = profile == .aeadAES128GCM ? keys.salt12 : keys.salt14
        Benchmark("SRTP protect 1200 B (\(profile.dtlsName))") { benchmark in
            let context = try SRTPContext(profile: profile, masterKey: keys.key, masterSalt: salt, direction: .outbound)
            var buffer = rtp(seq: 0) + [UInt8](repeating: 0, count: SRTPContext.maximumTrailer)
            var seq: UInt16 = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                seq &+= 1
                buffer[2] = UInt8(seq >> 8)
                buffer[3] = UInt8(seq & 0xFF)
                let n = try buffer.withUnsafeMutableBytes { try context.protect($0, length: 1200) }
                blackHole(n)
            }
        }

        Benchmark("SRTP unprotect 1200 B (\(profile.dtlsName))") { benchmark in
            let sender = try SRTPContext(profile: profile, masterKey: keys.key, masterSalt: salt, direction: .outbound)
            let receiver = try SRTPContext(profile: profile, masterKey: keys.key, masterSalt: salt, direction: .inbound)
            let count = benchmark.scaledIterations.count
            var packets: [[UInt8]] = []
            packets.reserveCapacity(count)
            for i in 0..<count { packets.append(try sender.protect(rtp(seq: UInt16(truncatingIfNeeded: i)))) }
            var work = [UInt8](repeating: 0, count: 1400)
            benchmark.startMeasurement()
            for i in 0..<count {
                let packet = packets[i]
                let n = try work.withUnsafeMutableBytes { dst in
                    packet.withUnsafeBytes { src in dst.copyMemory(from: src) }
                    return try receiver.unprotect(dst, length: packet.count)
                }
                blackHole(n)
            }
        }
    }

    Benchmark("STUN parse + verify ICE binding request") { benchmark in
        let id = STUNTransactionID.random()
        let request = STUNMessage(method: .binding, messageClass: .request, transactionID: id, attributes: [
            .string(.username, "remoteufrag:localufrag"),
            .uint32(.priority, 1_853_824_767),
            .uint64(.iceControlling, 0x1234_5678_9ABC_DEF0),
            STUNAttribute(type: .useCandidate, value: []),
        ]).encode(integrity: .shortTerm(password: "localpassword0123456789"), fingerprint: true)
        let key = Array("localpassword0123456789".utf8)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let parsed = try STUNMessage.parse(request)
            blackHole(parsed.fingerprintIsValid && parsed.verifyIntegrity(key: key))
        }
    }

    // The SFU's work per receiver for one VP8 simulcast packet: the layer decision, continuity,
    // and the header and descriptor rewrite (the host's relay step is measured on its own below).
    Benchmark("SFU per-receiver step (VP8 simulcast: decide, map, rewrite)") { benchmark in
        // X=1 S=1, I with a 15-bit picture id, L, T; then a VP8 keyframe header.
        var buffer = [UInt8](rtp(seq: 1).prefix(12)) + [0x90, 0xE0, 0x80, 0x01, 0x00, 0x20, 0x10] + [UInt8](repeating: 0x5A, count: 1181)
        var continuity = RTPContinuity(clockRate: 90_000)
        var vp8 = VP8Continuity()
        var selector = SimulcastSelector()
        var now: UInt64 = 1_000_000_000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            now &+= 3_000_000
            buffer.withUnsafeMutableBytes { b in
                guard let view = try? RTPPacketView(buffer: b, length: 1200) else { return }
                let payload = UnsafeRawBufferPointer(rebasing: b[view.payloadOffset..<(view.payloadOffset + view.payloadLength)])
                guard let descriptor = VP8Descriptor(payload) else { return }
                guard selector.decide(layer: 2, keyframe: descriptor.isKeyframe, active: 0b111, cap: 2) != .drop else { return }
                let mapped = continuity.map(ssrc: view.ssrc, sequence: view.sequenceNumber &+ 1, timestamp: view.timestamp &+ 3000, now: now)
                view.rewrite(ssrc: view.ssrc, sequenceNumber: mapped.sequence, timestamp: mapped.timestamp, payloadType: 96)
                let ids = vp8.map(ssrc: view.ssrc, pictureID: descriptor.pictureID, tl0PicIdx: descriptor.tl0PicIdx)
                descriptor.rewrite(UnsafeMutableRawBufferPointer(rebasing: b[view.payloadOffset...]), pictureID: ids.pictureID, tl0PicIdx: ids.tl0PicIdx)
                blackHole(mapped.sequence)
            }
        }
    }

    Benchmark("RTP header rewrite (forwarder)") { benchmark in
        var buffer = rtp(seq: 1)
        var seq: UInt16 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            seq &+= 1
            buffer.withUnsafeMutableBytes { b in
                guard let view = try? RTPPacketView(buffer: b, length: 1200) else { return }
                view.rewrite(ssrc: 0xCAFE_F00D, sequenceNumber: view.sequenceNumber &+ 1000, timestamp: view.timestamp &+ 90_000)
                blackHole(view.ssrc)
            }
        }
    }

    // What the host does per echoed or forwarded video packet once it is decrypted: write the
    // outgoing header (own SSRC, mid and abs-send-time extensions), keep a copy for NACKs, protect.
    Benchmark("Relay: header write + NACK store + protect 1200 B (GCM)") { benchmark in
        let context = try SRTPContext(profile: .aeadAES128GCM, masterKey: keys.key, masterSalt: keys.salt12, direction: .outbound)
        var input = rtp(seq: 1)
        var output = [UInt8](repeating: 0, count: 1500)
        let ring = RetransmissionBuffer(capacity: 512)
        var ids = OutgoingExtensionIDs()
        ids.mid = 1
        ids.absSendTime = 3
        let mid: [UInt8] = Array("1".utf8)
        var seq: UInt16 = 0
        var now: UInt64 = 1_000_000_000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            seq &+= 1
            now &+= 1_000_000
            input[2] = UInt8(seq >> 8)
            input[3] = UInt8(seq & 0xFF)
            let sent: Int? = input.withUnsafeMutableBytes { inBuffer in
                guard let view = try? RTPPacketView(buffer: inBuffer, length: 1200) else { return nil }
                return mid.withUnsafeBytes { midBytes in
                    output.withUnsafeMutableBytes { out in
                        var values = OutgoingExtensionValues()
                        values.mid = midBytes
                        values.absSendTime = OutgoingRTP.absSendTime(nanos: now)
                        let room = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
                        guard let n = OutgoingRTP.write(view, ssrc: 0xCAFE_F00D, ids: ids, values: values, into: room) else { return nil }
                        ring.store(UnsafeRawBufferPointer(rebasing: out[0..<n]), sequenceNumber: seq, now: now)
                        return try? context.protect(out, length: n)
                    }
                }
            }
            blackHole(sent)
        }
    }
}

