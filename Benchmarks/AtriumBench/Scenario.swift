import AtriumJSON
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// One run against one server: R rooms, P publishers per room, and subscribers per room raised
/// step by step (a ramp); each subscriber receives every publisher of its room on one
/// PeerConnection. Meshed, the room is an N×N meeting: subscriber i stands for publisher i and
/// receives every feed but that one. At each step, after a warm-up, the server's CPU time and what
/// the subscribers received are measured over a window.
struct Scenario {
    var label: String
    var url: String
    var serverPID: Int32
    var plugin: String
    var bind: String
    var rooms: Int
    var firstRoom: Int
    var publishers: Int
    var subscriberSteps: [Int]
    var meshed = false
    var shape: Pacer.Shape
    var warmupSeconds: Double
    var windowSeconds: Double
    /// Windows measured at each step; the one with the median CPU per packet is reported.
    var rounds: Int
    /// The ramp ends after a step that lost more than this many percent, or whose packets waited
    /// longer than this (p99, ms): a server past its limit only does worse at the next step, and
    /// joins under overload take seconds each.
    var stopAboveLossPercent = Double.infinity
    var stopAboveLatencyMilliseconds = Double.infinity

    struct Room {
        let id: Int
        var feeds: [Int64] = []
        var publishers: [BenchPeer] = []
        var subscribers: [(handle: Int64, peer: BenchPeer)] = []
    }

    func run() throws(BenchError) -> JSON {
        let progress = Progress(label: label)
        let http = try HTTPClient(url: url)
        let certificate: DTLSCertificate
        do { certificate = try DTLSCertificate.generate(commonName: "atrium-bench") } catch { throw BenchError("\(error)") }
        let loop: MediaLoop
        do { loop = try MediaLoop() } catch { throw BenchError("\(error)") }
        let pacer = Pacer(shape: shape)
        loop.start()
        pacer.start()
        defer {
            pacer.stop()
            loop.stop()
        }
        let control = try JanusSession(http: http)
        let subscriberSession = try JanusSession(http: http)
        defer {
            subscriberSession.destroy()
            control.destroy()
        }
        let rssStart = ProcessStats.residentKilobytes(serverPID)

        // Rooms and publishers.
        var rooms = (0..<rooms).map { Room(id: firstRoom + $0) }
        let admin = try control.attach(plugin)
        for room in rooms {
            let body: JSON = ["request": "create", "room": .int(Int64(room.id)), "publishers": .int(Int64(publishers + 2)),
                              "description": "atrium-bench", "bitrate": 0]
            do { _ = try control.message(admin, body) } catch where !"\(error)".contains("already exists") { throw error }
        }
        for r in rooms.indices {
            for p in 0..<publishers {
                progress.update("room \(rooms[r].id): publisher \(p + 1)/\(publishers) joining")
                let peer = try BenchPeer(role: .publisher, name: "r\(r)p\(p)", bind: bind, certificate: certificate)
                let publisher = pacer.publisher(for: peer)
                let handle = try control.attach(plugin)
                let offer = peer.publisherOffer(audioSSRC: publisher.audio.ssrc, videoSSRC: publisher.video.ssrc)
                let body: JSON = ["request": "joinandconfigure", "room": .int(Int64(rooms[r].id)), "ptype": "publisher",
                                  "display": .string("bench \(r)-\(p)"), "audio": true, "video": true]
                let reply = try control.message(handle, body, jsep: ["type": "offer", "sdp": .string(offer)])
                guard let answer = reply["jsep"]?["sdp"]?.stringValue, let id = reply["plugindata"]?["data"]?["id"]?.intValue else {
                    throw BenchError("joinandconfigure: no answer in \(reply.serialized.prefix(300))")
                }
                try peer.applyRemote(parse(answer), weOffered: true)
                try? control.trickleCompleted(handle)
                peer.joinStarted.store(monotonicNanoseconds(), ordering: .relaxed)
                try loop.add(peer)
                rooms[r].feeds.append(id)
                rooms[r].publishers.append(peer)
            }
        }
        try waitUntil("publishers connected", seconds: 15, peers: rooms.flatMap(\.publishers)) { $0.connected }
        progress.done("\(rooms.count) room(s), \(publishers) publisher(s) each: sending, SRTP \(profileName(rooms))")
        sleep(1)
        let rssPublishers = ProcessStats.residentKilobytes(serverPID)

        var steps: [JSON] = []
        for target in subscriberSteps {
            var joined: [BenchPeer] = []
            for r in rooms.indices {
                while rooms[r].subscribers.count < target {
                    progress.update("1→\(target): room \(rooms[r].id) subscriber \(rooms[r].subscribers.count + 1)/\(target) joining")
                    let peer = try BenchPeer(role: .subscriber, name: "r\(r)s\(rooms[r].subscribers.count)", bind: bind, certificate: certificate)
                    peer.latencyProbe = rooms[r].subscribers.count % MediaLoop.probeEvery == 0
                    peer.joinStarted.store(monotonicNanoseconds(), ordering: .relaxed)
                    let handle = try subscriberSession.attach(plugin)
                    let own = rooms[r].subscribers.count
                    let feeds = meshed ? rooms[r].feeds.enumerated().filter { $0.offset != own }.map(\.element) : rooms[r].feeds
                    let streams = JSON.array(feeds.map { ["feed": .int($0)] })
                    let body: JSON = ["request": "join", "room": .int(Int64(rooms[r].id)), "ptype": "subscriber", "streams": streams]
                    let reply = try subscriberSession.message(handle, body)
                    guard let offer = reply["jsep"]?["sdp"]?.stringValue else { throw BenchError("join: no offer in \(reply.serialized.prefix(300))") }
                    let description = try parse(offer)
                    let answer = try peer.subscriberAnswer(to: description)
                    try peer.applyRemote(description, weOffered: false)
                    _ = try subscriberSession.message(handle, ["request": "start"], jsep: ["type": "answer", "sdp": .string(answer)])
                    try? subscriberSession.trickleCompleted(handle)
                    try loop.add(peer)
                    rooms[r].subscribers.append((handle, peer))
                    joined.append(peer)
                }
            }
            do {
                try waitUntil("subscribers receiving", seconds: 20, peers: joined) { $0.firstMedia.load(ordering: .relaxed) != 0 }
            } catch where stopAboveLossPercent.isFinite && !steps.isEmpty {
                // A server past its capacity may not start new subscribers at all: in a ramp
                // that ends at a loss bound, that is a step past it, not a failed run.
                progress.done("1→\(target): \(error); the ramp ends here")
                steps.append(["subscribers_per_room": .int(Int64(target)), "loss_percent": 100.0, "not_receiving": .string("\(error)")])
                break
            }
            let joins = joined.map { Double($0.firstMedia.load(ordering: .relaxed) - $0.joinStarted.load(ordering: .relaxed)) / 1e6 }.sorted()
            progress.update("1→\(target): warming up")
            usleep(UInt32(warmupSeconds * 1e6))

            var windows: [JSONObject] = []
            for round in 0..<rounds {
                windows.append(try measureWindow(target: target, round: round, rooms: rooms, loop: loop, pacer: pacer, joins: joins,
                                                 baseRSS: rssPublishers ?? rssStart, progress: progress))
            }
            let perPacket = windows.map { $0["cpu_us_per_forwarded_packet"]?.doubleValue ?? .infinity }
            let median = perPacket.indices.sorted { perPacket[$0] < perPacket[$1] }[windows.count / 2]
            var step = windows[median]
            step = JSONObject(step.entries + [(key: "cpu_us_per_forwarded_packet_rounds", value: .array(perPacket.map { $0.isFinite ? .double($0) : .null }))])
            let loss = step["loss_percent"]?.doubleValue ?? 100
            let forwarded = step["forwarded_packets_per_s"]?.doubleValue ?? 0
            let line = "1→\(target): \(Int(forwarded)) pkt/s forwarded, "
                + "\(step["cpu_us_per_forwarded_packet"]?.doubleValue.map { "\($0)" } ?? "-") µs CPU/pkt (median of \(rounds)), loss \(round3(loss)) %, "
                + "p99 \(step["latency_p99_ms"]?.doubleValue.map { "\($0)" } ?? "-") ms, join p50 \(step["join_ms_p50"]?.doubleValue.map { "\($0)" } ?? "-") ms"
            progress.done(line)
            steps.append(.object(step))
            if loss > stopAboveLossPercent || (step["latency_p99_ms"]?.doubleValue ?? .infinity) > stopAboveLatencyMilliseconds { break }
        }

        // Leave: subscribers first, then publishers; the rooms go with the admin handle's destroy.
        for room in rooms {
            for s in room.subscribers { loop.remove(s.peer); subscriberSession.detach(s.handle) }
            for p in room.publishers { pacer.remove(p); loop.remove(p) }
            _ = try? control.message(admin, ["request": "destroy", "room": .int(Int64(room.id))])
        }
        return [
            "server": .string(label),
            "meshed": .bool(meshed),
            "srtp_profile": .string(profileName(rooms)),
            "shape": [
                "video_kbit_per_s": .int(Int64(shape.videoBitrate / 1000)), "video_packets_per_s": .int(Int64(shape.videoPacketsPerSecond)),
                "fps": .int(Int64(shape.framesPerSecond)), "video_payload_bytes": .int(Int64(shape.videoPayload)),
                "audio_packets_per_s": .int(shape.audio ? 50 : 0),
            ],
            "server_rss_kb_idle": rssStart.map { .int(Int64($0)) } ?? .null,
            "steps": .array(steps),
        ]
    }

    /// One measuring window at the current step: the server's CPU time and memory, what the
    /// publishers sent and what the subscribers received.
    private func measureWindow(target: Int, round: Int, rooms: [Room], loop: MediaLoop, pacer: Pacer, joins: [Double],
                               baseRSS: Int?, progress: Progress) throws(BenchError) -> JSONObject {
        let rss = ProcessStats.residentKilobytes(serverPID)
        let sentBefore = pacer.sent.load(ordering: .relaxed)
        let ownBefore = ProcessStats.ownCPUSeconds()
        loop.openWindow()
        guard let cpuBefore = ProcessStats.threadCPUNanoseconds(serverPID) else { throw BenchError("no process \(serverPID), or no schedstat") }
        let t0 = monotonicSeconds()
        while monotonicSeconds() - t0 < windowSeconds {
            usleep(250_000)
            progress.update("1→\(target): measuring, round \(round + 1)/\(rounds): \(Int(monotonicSeconds() - t0))/\(Int(windowSeconds)) s")
        }
        guard let cpuAfter = ProcessStats.threadCPUNanoseconds(serverPID) else { throw BenchError("the server (pid \(serverPID)) is gone") }
        let counts = loop.closeWindow()
        let wall = monotonicSeconds() - t0
        let ownCPU = ProcessStats.ownCPUSeconds() - ownBefore
        let sent = pacer.sent.load(ordering: .relaxed) - sentBefore
        let subscribers = rooms.reduce(0) { $0 + $1.subscribers.count }
        let cpu = ProcessStats.cpuSeconds(from: cpuBefore, to: cpuAfter)
        let loss = counts.expected > 0 ? max(0, Double(counts.expected - counts.packets)) / Double(counts.expected) * 100 : 100
        var step: JSONObject = [
            "publishers_per_room": .int(Int64(publishers)), "subscribers_per_room": .int(Int64(target)),
            "rooms": .int(Int64(rooms.count)), "subscribers": .int(Int64(subscribers)),
            "window_s": .double(round3(wall)),
            "packets_sent_by_publishers": .int(Int64(sent)),
            "packets_forwarded": .int(Int64(counts.packets)),
            "forwarded_packets_per_s": .double(round3(Double(counts.packets) / wall)),
            "forwarded_mbit_per_s": .double(round3(Double(counts.bytes) * 8 / wall / 1e6)),
            "server_cpu_percent": .double(round3(cpu / wall * 100)),
            "cpu_us_per_forwarded_packet": counts.packets > 0 ? .double(round3(cpu * 1e6 / Double(counts.packets))) : .null,
            "loss_percent": .double(round3(loss)),
            "latency_p50_ms": counts.latency.quantile(0.5).map { .double(round3($0)) } ?? .null,
            "latency_p99_ms": counts.latency.quantile(0.99).map { .double(round3($0)) } ?? .null,
            "join_ms_p50": quantile(joins, 0.5).map { .double(round3($0)) } ?? .null,
            "join_ms_p99": quantile(joins, 0.99).map { .double(round3($0)) } ?? .null,
            "client_cpu_percent": .double(round3(ownCPU / wall * 100)),
        ]
        if let rss, let base = baseRSS, subscribers > 0 {
            step = JSONObject(step.entries + [(key: "server_rss_kb", value: .int(Int64(rss))),
                                              (key: "memory_kb_per_subscriber", value: .double(round3(Double(rss - base) / Double(subscribers))))])
        }
        return step
    }

    private func parse(_ sdp: String) throws(BenchError) -> SessionDescription {
        do { return try SessionDescription.parse(sdp) } catch { throw BenchError("the server's SDP: \(error)") }
    }

    private func profileName(_ rooms: [Room]) -> String {
        rooms.first?.publishers.first?.profile.withLock { $0?.dtlsName } ?? "none"
    }

    private func waitUntil(_ what: String, seconds: Double, peers: [BenchPeer], _ ok: (BenchPeer) -> Bool) throws(BenchError) {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if let failed = peers.lazy.compactMap({ p in p.failure.withLock { $0 }.map { "\(p.name): \($0)" } }).first { throw BenchError(failed) }
            if peers.allSatisfy(ok) { return }
            usleep(10_000)
        }
        let missing = peers.filter { !ok($0) }.map(\.name)
        throw BenchError("\(what): \(missing.count) of \(peers.count) not after \(seconds) s (\(missing.prefix(5).joined(separator: ", ")))")
    }
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }

func quantile(_ sorted: [Double], _ q: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    return sorted[min(sorted.count - 1, max(0, Int((Double(sorted.count) * q).rounded(.up)) - 1))]
}
