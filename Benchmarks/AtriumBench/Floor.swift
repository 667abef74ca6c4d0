import AtriumJSON
import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The floor: what forwarding costs with no server at all. One thread makes the same packets as
/// a publisher, at the same pace, and for each one does only what any SFU must per receiver: a
/// copy and an SRTP protect with that receiver's own key, made in place in its slot of one
/// `sendmmsg` batch to that receiver's address. Receivers are sockets on this machine drained
/// by another thread (SCHED_BATCH, as the load generator's are: see `yieldToServers`). The
/// figure is the sending thread's own CPU time (CLOCK_THREAD_CPUTIME_ID) per packet sent, which
/// includes the kernel's work for the send and the local delivery it triggers.
struct Floor {
    var bind: String
    var fanouts: [Int]
    var profile: SRTPProfile
    var shape: Pacer.Shape
    var warmupSeconds: Double
    var windowSeconds: Double
    /// Measurements per fan-out; the median one (CPU per packet) is reported.
    var rounds: Int

    func run() throws(BenchError) -> JSON {
        let progress = Progress(label: "floor")
        var steps: [JSON] = []
        for n in fanouts {
            progress.update("1→\(n): running")
            var rows: [JSON] = []
            for _ in 0..<rounds { rows.append(try measure(fanout: n)) }
            let perPacket = rows.map { $0["cpu_us_per_forwarded_packet"]?.doubleValue ?? .infinity }
            var step = rows[perPacket.indices.sorted { perPacket[$0] < perPacket[$1] }[rows.count / 2]]
            if case .object(let o) = step {
                step = .object(JSONObject(o.entries + [(key: "cpu_us_per_forwarded_packet_rounds", value: .array(perPacket.map { $0.isFinite ? .double($0) : .null }))]))
            }
            progress.done("1→\(n): \(step["cpu_us_per_forwarded_packet"]?.doubleValue ?? 0) µs CPU/pkt (median of \(rounds); \(profile.dtlsName), sendmmsg per burst)")
            steps.append(step)
        }
        return ["server": "floor", "srtp_profile": .string(profile.dtlsName), "steps": .array(steps)]
    }

    private func measure(fanout: Int) throws(BenchError) -> JSON {
        guard let address = TransportAddress(bind, 0) else { throw BenchError("bad bind address \(bind)") }
        var sinks: [Int32] = []
        let sender: Int32
        do {
            sender = try udpSocket(address, bufferBytes: 4 << 20)
            for _ in 0..<fanout { sinks.append(try udpSocket(address, bufferBytes: 4 << 20)) }
        } catch {
            throw BenchError("\(error)")
        }
        defer { ([sender] + sinks).forEach { close($0) } }
        let destinations = sinks.compactMap(localAddress)
        var keyed: [SRTPContext] = []
        for _ in 0..<fanout {
            let key = (0..<profile.keyLength).map { _ in UInt8.random(in: 0...255) }
            let salt = (0..<profile.saltLength).map { _ in UInt8.random(in: 0...255) }
            do { keyed.append(try SRTPContext(profile: profile, masterKey: key, masterSalt: salt, direction: .outbound)) } catch { throw BenchError("\(error)") }
        }
        let contexts = keyed
        let running = Atomic<Bool>(true)
        let received = Atomic<Int>(0)
        let drainer = startThread(name: "floor-sink") { [sinks] in
            yieldToServers()  // receivers never preempt the sender, as for the servers
            var fds = sinks.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            var buffer = [UInt8](repeating: 0, count: 2_048)
            while running.load(ordering: .relaxed) {
                guard poll(&fds, nfds_t(fds.count), 5) > 0 else { continue }
                for f in fds where f.revents != 0 {
                    while buffer.withUnsafeMutableBytes({ recv(f.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {
                        received.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        // The sending thread: paced like a publisher, fanned out per packet.
        let result = Mutex<(cpu: UInt64, sent: Int, wall: Double)>((0, 0, 0))
        let shape = shape
        let (warmup, window) = (warmupSeconds, windowSeconds)
        let sending = startThread(name: "floor-send") {
            let plain = UnsafeMutableRawBufferPointer.allocate(byteCount: 2_048, alignment: 16)
            defer { plain.deallocate() }
            plain.initializeMemory(as: UInt8.self, repeating: 0xA5)
            let batch = DatagramBatch(capacity: 1_024, slotSize: 2_048)
            let (video, audio) = (Pacer.Source(), Pacer.Source())
            let frameInterval = 1_000_000_000 / UInt64(shape.framesPerSecond)
            let start = monotonicNanoseconds()
            let windowStart = start + UInt64(warmup * 1e9)
            let end = windowStart + UInt64(window * 1e9)
            var (nextVideo, nextAudio, lastKey) = (start, start, UInt64(0))
            var (cpuStart, sentAtStart, sent) = (UInt64(0), 0, 0)
            var measuring = false
            func fanOut(_ length: Int) {
                // Each receiver's copy is made and protected in place in its datagram slot.
                for i in 0..<fanout {
                    let slot = batch.reserve(on: sender)
                    slot.baseAddress!.copyMemory(from: plain.baseAddress!, byteCount: length)
                    guard let n = try? contexts[i].protect(slot, length: length) else { continue }
                    batch.commit(n, to: destinations[i])
                    sent += 1
                }
            }
            while true {
                let now = monotonicNanoseconds()
                if !measuring && now >= windowStart { measuring = true; cpuStart = threadCPUNanoseconds(); sentAtStart = sent }
                if now >= end { break }
                while now >= nextVideo {
                    let key = now >= lastKey + 3_000_000_000
                    if key { lastKey = now }
                    for i in 0..<shape.packetsPerFrame {
                        Pacer.writeVP8Descriptor(plain, first: i == 0, key: key)
                        fanOut(Pacer.writeRTP(plain, video, payloadType: 96, payload: shape.videoPayload, marker: i == shape.packetsPerFrame - 1))
                    }
                    video.timestamp &+= UInt32(90_000 / shape.framesPerSecond)
                    nextVideo += frameInterval
                }
                while shape.audio && now >= nextAudio {
                    plain[12] = 0xFC
                    fanOut(Pacer.writeRTP(plain, audio, payloadType: 111, payload: Pacer.Shape.audioPayload, marker: false))
                    audio.timestamp &+= 960
                    nextAudio += 20_000_000
                }
                batch.flush(sender)  // one burst (a frame, an audio packet), one call
                let wake = min(nextVideo, shape.audio ? nextAudio : nextVideo, end)
                sleep(untilMonotonic: wake)
            }
            let cpu = threadCPUNanoseconds() - cpuStart
            result.withLock { $0 = (cpu, sent - sentAtStart, Double(monotonicNanoseconds() - windowStart) / 1e9) }
        }
        pthread_join(sending, nil)
        usleep(100_000)
        running.store(false, ordering: .relaxed)
        pthread_join(drainer, nil)
        let r = result.withLock { $0 }
        let delivered = received.load(ordering: .relaxed)
        return [
            "subscribers_per_room": .int(Int64(fanout)),
            "window_s": .double(round3(r.wall)),
            "packets_forwarded": .int(Int64(r.sent)),
            "forwarded_packets_per_s": .double(round3(Double(r.sent) / r.wall)),
            "cpu_us_per_forwarded_packet": r.sent > 0 ? .double(round3(Double(r.cpu) / 1e3 / Double(r.sent))) : .null,
            "sender_cpu_percent": .double(round3(Double(r.cpu) / 1e9 / r.wall * 100)),
            "packets_delivered_total": .int(Int64(delivered)),
        ]
    }
}
