import AtriumJSON
import Foundation
import PluginAPI
import PluginKit
import RecorderCore
import Synchronization

/// Records meetings through the host's taps: every stream of a labelled handle is offered to it,
/// and the rooms it records (by request, by its config, or because the media plugin labels them
/// `record`) are written to disk by one writer thread. Media threads only copy packets into a ring;
/// the control context and the writer thread share the engine behind one lock. (Sendable by that
/// discipline: what is not behind a lock is set once, in `start`, before the writer thread exists.)
final class RecorderPlugin: AtriumPlugin, @unchecked Sendable {
    let host: PluginHost
    private var config = RecorderConfig()
    private var engine: Guarded<RecordingEngine>!
    /// The streams whose packets are wanted, read by media threads.
    private let wanted = Guarded(Set<UInt64>())
    private let ring = PacketRing(capacity: 8_192)
    private var writer: Thread?
    private let running = Atomic<Bool>(false)
    private let writerStopped = DispatchSemaphore(value: 0)
    private let counters = Guarded(Counters())
    /// Who may act on which room's recordings, and how fast clients may start them. Touched only
    /// on the control context (requests and bus events), which the host runs one call at a time.
    private var access = RecordingAccess(recorderSecret: nil)
    private var startLimits = StartLimits(perAddressPerMinute: 6, perRoomPerMinute: 4)

    struct Counters {
        var packets = 0
    }

    init(host: PluginHost) { self.host = host }

    // MARK: - Lifecycle

    func start(config object: JSONObject) throws(PluginFailure) {
        do throws(RecorderError) {
            config = try RecorderConfig(object)
        } catch {
            throw PluginFailure(error.message)
        }
        do {
            try FileManager.default.createDirectory(atPath: config.directory, withIntermediateDirectories: true)
        } catch {
            throw PluginFailure("cannot create the recordings directory \(config.directory): \(error.localizedDescription)")
        }
        access = RecordingAccess(recorderSecret: config.secret)
        startLimits = StartLimits(perAddressPerMinute: config.startsPerAddressPerMinute, perRoomPerMinute: config.startsPerRoomPerMinute)
        let engine = RecordingEngine(config: config)
        engine.requests = self
        let host = self.host
        engine.log = { host.log(.info, $0) }
        self.engine = Guarded(engine)
        running.store(true, ordering: .sequentiallyConsistent)
        let t = Thread { [self] in
            writeLoop()
            writerStopped.signal()
        }
        t.name = "atrium-recorder"
        writer = t
        t.start()
    }

    func stop() {
        guard running.exchange(false, ordering: .sequentiallyConsistent) else { return }
        writerStopped.wait()
        engine.withLock { $0.stopAll(date: Date()) }
    }

    /// The writer thread: packets from the ring into the engine, then the engine's work, every 10 ms.
    private func writeLoop() {
        while running.load(ordering: .relaxed) {
            usleep(10_000)
            engine.withLock { engine in
                var n = 0
                ring.drain { stream, kind, arrival, bytes in
                    n += 1
                    switch kind {
                    case .rtp: engine.rtp(stream: stream, bytes, arrivalMicros: Int64(arrival))
                    case .rtcp: engine.rtcp(stream: stream, bytes)
                    }
                }
                engine.tick(now: Self.now, date: Date())
                publishWanted(engine)
                if n > 0 { counters.withLock { $0.packets += n } }
            }
        }
    }

    private static var now: Int64 { Int64(DispatchTimeMicros.now()) }

    private func publishWanted(_ engine: RecordingEngine) {
        let set = engine.recordedStreams
        wanted.withLock { if $0 != set { $0 = set } }
    }

    // MARK: - Taps

    var isTap: Bool { true }

    func tapStreamStarted(_ stream: TapStream) -> Bool {
        // Any stream of a room may be recorded later (a start request, enable_recording): take them all.
        guard stream.labels["room"] != nil else { return false }
        engine.withLock { engine in
            engine.streamStarted(stream, now: Self.now, date: Date())
            publishWanted(engine)
        }
        return true
    }

    func tapRTP(stream: UInt64, _ packet: UnsafePointer<atrium_rtp_packet_t>, arrivalMicros: UInt64) {
        guard wanted.withLock({ $0.contains(stream) }) else { return }
        ring.push(stream: stream, kind: .rtp, arrivalMicros: arrivalMicros,
                  bytes: UnsafeRawBufferPointer(start: packet.pointee.buffer, count: Int(packet.pointee.length)))
    }

    func tapRTCP(stream: UInt64, _ packet: UnsafePointer<atrium_rtcp_packet_t>, arrivalMicros: UInt64) {
        guard wanted.withLock({ $0.contains(stream) }) else { return }
        ring.push(stream: stream, kind: .rtcp, arrivalMicros: arrivalMicros,
                  bytes: UnsafeRawBufferPointer(start: packet.pointee.buffer, count: Int(packet.pointee.length)))
    }

    func tapStreamEnded(stream: UInt64) {
        engine.withLock { engine in
            // Packets still in the ring belong before the end.
            ring.drain { id, kind, arrival, bytes in
                switch kind {
                case .rtp: engine.rtp(stream: id, bytes, arrivalMicros: Int64(arrival))
                case .rtcp: engine.rtcp(stream: id, bytes)
                }
            }
            engine.streamEnded(stream, now: Self.now)
            publishWanted(engine)
        }
    }

    func tapLabelsChanged(handleID: UInt64, labels: JSONObject) {
        let strings = Dictionary(labels.compactMap { k, v in v.stringValue.map { (k, $0) } }, uniquingKeysWith: { a, _ in a })
        engine.withLock { engine in
            engine.labelsChanged(handleID: handleID, labels: strings, now: Self.now, date: Date())
            publishWanted(engine)
        }
    }

    // MARK: - Chat transcript

    var subscribesToEvents: Bool { true }

    func receiveEvent(source: String, topic: String, event: JSONObject) {
        access.apply(source: source, topic: topic, event: event)
        guard topic == "chat.message" else { return }
        engine.withLock { $0.chatMessage(event, now: Self.now) }
    }

    // MARK: - Requests (client handles and the admin API)

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        .reply(request(body, from: handle))
    }

    func adminMessage(_ body: JSONObject) -> JSON? { request(body, from: nil) }

    /// start, stop, list, info: the answer, or an error object. `client` is the handle the request
    /// came on, nil for the admin API (which the host admits with its own secret).
    func request(_ body: JSONObject, from client: PluginHandle?) -> JSON {
        do throws(RecorderError) {
            guard let name = body["request"]?.stringValue else { throw RecorderError(.missingElement, "Missing mandatory element (request)") }
            let secret = try optionalString(body, "secret")
            // 415/419 unless the client may act on `room`'s recordings (RecordingAccess).
            func authorize(_ room: String) throws(RecorderError) {
                guard let client else { return }
                try access.authorize(room: room, secret: secret, session: client.sessionID)
            }
            switch name {
            case "start":
                let room = try roomID(body)
                let plugin = try optionalString(body, "plugin")
                try authorize(room)
                let now = UInt64(Self.now) &* 1_000
                if let client { try startLimits.check(address: client.clientAddress, room: room, now: now) }
                let r = try engine.withLock { engine throws(RecorderError) in
                    let r = try engine.start(room: room, plugin: plugin, directory: nil, reason: .request, now: Self.now, date: Date())
                    publishWanted(engine)
                    return r
                }
                if let client { startLimits.started(address: client.clientAddress, room: room, now: now) }
                return ["recorder": "started", "recording": r.summary]
            case "stop":
                let id = try optionalString(body, "id")
                let room = id == nil ? try roomID(body) : nil
                if let id {
                    guard let target = engine.withLock({ $0.recordings.first { $0.id == id }?.room }) else {
                        throw RecorderError(.notFound, "No such recording (\(id))")
                    }
                    try authorize(target)
                } else if let room {
                    try authorize(room)
                }
                let r = try engine.withLock { engine throws(RecorderError) in
                    let r = try engine.stop(id: id, room: room, date: Date())
                    publishWanted(engine)
                    return r
                }
                return ["recorder": "stopped", "recording": r.summary]
            case "list":
                // Clients list one room's recordings; only the Recorder's own secret (or the admin
                // API) lists every room's.
                let room = body["room"] == nil ? nil : try roomID(body)
                if let room {
                    try authorize(room)
                } else if client != nil, config.secret == nil || secret != config.secret {
                    throw RecorderError(.missingElement, "Missing mandatory element (room)")
                }
                let all = engine.withLock { $0.recordings.filter { room == nil || $0.room == room }.map(\.summary) }
                return ["recorder": "list", "recordings": .array(all)]
            case "info":
                guard let id = try optionalString(body, "id") else { throw RecorderError(.missingElement, "Missing mandatory element (id)") }
                guard let (room, manifest) = engine.withLock({ e in e.recordings.first { $0.id == id }.map { ($0.room, $0.manifest) } }) else {
                    throw RecorderError(.notFound, "No such recording (\(id))")
                }
                try authorize(room)
                return ["recorder": "info", "recording": manifest]
            default:
                throw RecorderError(.invalidRequest, "Unknown request '\(name)'")
            }
        } catch {
            return error.reply
        }
    }

    /// A room id as the media plugins label it: a string, or a number written as one.
    private func roomID(_ body: JSONObject) throws(RecorderError) -> String {
        switch body["room"] {
        case .string(let s)? where !s.isEmpty: return s
        case .int(let i)?: return String(i)
        case nil: throw RecorderError(.missingElement, "Missing mandatory element (room)")
        default: throw RecorderError(.invalidElement, "Invalid element type (room should be a string or an integer)")
        }
    }

    private func optionalString(_ body: JSONObject, _ key: String) throws(RecorderError) -> String? {
        guard let v = body[key] else { return nil }
        guard let s = v.stringValue, !s.isEmpty else { throw RecorderError(.invalidElement, "Invalid element type (\(key) should be a string)") }
        return s
    }

    // MARK: - Metrics

    func metricsText() -> String {
        let (active, files) = engine?.withLock { e in (e.active.count, e.active.reduce(0) { $0 + $1.files.count }) } ?? (0, 0)
        let c = counters.withLock { $0 }
        return """
            # HELP atrium_recorder_recordings Recordings in progress
            # TYPE atrium_recorder_recordings gauge
            atrium_recorder_recordings \(active)
            # HELP atrium_recorder_participant_files Participant files of recordings in progress
            # TYPE atrium_recorder_participant_files gauge
            atrium_recorder_participant_files \(files)
            # HELP atrium_recorder_packets_total Packets the writer thread took from the ring
            # TYPE atrium_recorder_packets_total counter
            atrium_recorder_packets_total \(c.packets)
            # HELP atrium_recorder_packets_dropped_total Packets dropped because the writer fell behind
            # TYPE atrium_recorder_packets_dropped_total counter
            atrium_recorder_packets_dropped_total \(ring.dropped.load(ordering: .relaxed))

            """
    }
}

extension RecorderPlugin: RecordingRequests {
    func requestKeyframe(stream: UInt64) { host.requestKeyframe(stream: stream) }
    func requestRetransmission(stream: UInt64, _ sequenceNumbers: [UInt16]) { host.requestRetransmission(stream: stream, sequenceNumbers) }
}
