public import AtriumJSON
public import PluginKit
import Foundation
import RTC

/// What the engine asks of the host: keyframes and retransmissions for streams it records.
public protocol RecordingRequests: AnyObject {
    func requestKeyframe(stream: UInt64)
    func requestRetransmission(stream: UInt64, _ sequenceNumbers: [UInt16])
}

/// The Recorder's state and work, driven from one thread: streams come and go, packets and chat
/// messages arrive, recordings start and stop, and `tick` moves frames to disk.
///
/// Every stream a tap offers is known here (so a recording started later picks up streams that
/// are already flowing); only streams of rooms being recorded get an input and cost work.
public final class RecordingEngine {
    public let config: RecorderConfig
    public weak var requests: (any RecordingRequests)?
    private var streams: [UInt64: TapStream] = [:]
    private var inputs: [UInt64: (input: TrackInput, recording: MeetingRecording)] = [:]
    private var participantFiles: [UInt64: ParticipantFile] = [:]
    private var trackFiles: [UInt64: TrackFile] = [:]
    private var senders: [String: SenderClockOffset] = [:]
    /// Per handle: the room it is in and whether its labels ask for recording (`record`).
    private var wishes: [UInt64: (room: String, plugin: String?, record: Bool)] = [:]
    public private(set) var recordings: [MeetingRecording] = []
    private var lastFlush: Int64 = 0
    private var lastSync: Int64 = 0
    private var manifestDirty: Set<ObjectIdentifier> = []
    public var log: (String) -> Void = { _ in }

    public init(config: RecorderConfig) {
        self.config = config
    }

    public var active: [MeetingRecording] { recordings.filter(\.isActive) }

    /// The streams whose packets are wanted now (the media thread drops the others).
    public var recordedStreams: Set<UInt64> { Set(inputs.keys) }

    // MARK: - Streams

    public func streamStarted(_ d: TapStream, now: Int64, date: Date) {
        streams[d.id] = d
        if let room = d.labels["room"], policyWants(d.labels) && recording(for: d.labels) == nil {
            let reason: MeetingRecording.Reason = config.rooms.contains(room) ? .config : .room
            _ = try? start(room: room, plugin: d.labels["plugin"], directory: d.labels["rec_dir"], reason: reason, now: now, date: date)
        }
        if let r = recording(for: d.labels) { attach(d, to: r, now: now) }
    }

    public func streamEnded(_ id: UInt64, now: Int64) {
        if let gone = streams.removeValue(forKey: id), !streams.values.contains(where: { $0.handleID == gone.handleID }) {
            // A handle without media no longer asks for its room to be recorded.
            wishes.removeValue(forKey: gone.handleID)
        }
        guard let (input, recording) = inputs[id] else { return }
        input.end()
        recording.lastMediaMicros = now
        pull(id, now: now)
        inputs.removeValue(forKey: id)
        participantFiles.removeValue(forKey: id)
        trackFiles.removeValue(forKey: id)
    }

    /// A handle's labels changed: its streams carry the new labels, and a room that now asks to be
    /// recorded (VideoRoom `enable_recording`) starts; a room-policy recording stops once no handle
    /// of the room asks for it any more.
    public func labelsChanged(handleID: UInt64, labels: [String: String], now: Int64, date: Date) {
        for (id, d) in streams where d.handleID == handleID {
            var updated = d
            updated.labels = labels
            streams[id] = updated
        }
        guard let room = labels["room"] else {
            wishes.removeValue(forKey: handleID)
            return
        }
        let previous = wishes[handleID]
        wishes[handleID] = (room, labels["plugin"], labels["record"] == "true")
        if policyWants(labels) {
            if recording(for: labels) == nil {
                _ = try? start(room: room, plugin: labels["plugin"], directory: labels["rec_dir"], reason: config.rooms.contains(room) ? .config : .room,
                               now: now, date: date)
            }
        } else if previous?.record == true, let r = recording(for: labels), r.reason == .room,
            !wishes.values.contains(where: { $0.room == room && $0.plugin == labels["plugin"] && $0.record })
        {
            finish(r, date: date)
        }
    }

    public func rtp(stream id: UInt64, _ bytes: UnsafeRawBufferPointer, arrivalMicros: Int64) {
        guard let (input, _) = inputs[id] else { return }
        let key = senderKey(input.description)
        var offset = senders[key] ?? SenderClockOffset()
        input.rtp(bytes, arrivalMicros: arrivalMicros, participant: &offset)
        senders[key] = offset
    }

    public func rtcp(stream id: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard let (input, _) = inputs[id], let packets = try? RTCPPacket.parseCompound(bytes) else { return }
        for case .senderReport(let sr) in packets where sr.ssrc == input.description.ssrc {
            input.senderReport(ntp: sr.ntpTimestamp, rtpTimestamp: sr.rtpTimestamp)
        }
    }

    /// A public message of the Chat plugin goes into the transcript of its room's recordings.
    public func chatMessage(_ event: JSONObject, now: Int64) {
        guard event["private"]?.boolValue != true, let room = event["room"]?.stringValue else { return }
        for r in active where r.room == room {
            r.record { try r.transcript.add(event, meetingMillis: (now - r.startMicros) / 1_000) }
        }
    }

    // MARK: - Recordings

    @discardableResult
    public func start(room: String, plugin: String?, directory: String?, reason: MeetingRecording.Reason, now: Int64, date: Date) throws(RecorderError) -> MeetingRecording {
        if let existing = active.first(where: { $0.room == room && ($0.plugin == nil || plugin == nil || $0.plugin == plugin) }) {
            throw RecorderError(.alreadyRecording, "room \(room) is already being recorded (\(existing.id))")
        }
        guard active.count < config.maxRecordings else { throw RecorderError(.tooManyRecordings, "too many recordings at once (max_recordings \(config.maxRecordings))") }
        let base = config.resolve(recordingDirectory: directory) ?? config.directory
        if let directory, config.resolve(recordingDirectory: directory) == nil {
            log("rec_dir \(directory) of room \(room) is outside the allowed directories: recording into \(config.directory)")
        }
        let r: MeetingRecording
        do {
            r = try MeetingRecording(room: room, plugin: plugin, base: base, reason: reason, now: now, date: date)
        } catch let e as RecorderError {
            throw e
        } catch {
            throw RecorderError(.io, "\(error)")
        }
        recordings.append(r)
        // Finished recordings are kept for `list` only so long.
        if recordings.count > 256, let old = recordings.firstIndex(where: { !$0.isActive }) { recordings.remove(at: old) }
        for d in streams.values.sorted(by: { $0.id < $1.id }) where r.matches(d.labels) {
            attach(d, to: r, now: now)
        }
        r.writeManifest()
        log("recording \(r.id) started (\(reason.rawValue)) in \(r.directory)")
        return r
    }

    public func stop(id: String?, room: String?, date: Date) throws(RecorderError) -> MeetingRecording {
        guard let r = active.first(where: { (id != nil && $0.id == id) || (id == nil && $0.room == room) }) else {
            throw RecorderError(.notFound, id.map { "no recording \($0) is running" } ?? "room \(room ?? "?") is not being recorded")
        }
        finish(r, date: date)
        return r
    }

    /// Finishes every recording (the plugin is stopping).
    public func stopAll(date: Date) {
        for r in active { finish(r, date: date) }
    }

    private func finish(_ r: MeetingRecording, date: Date) {
        let now = Int64(DispatchTimeMicros.now())
        for (id, entry) in inputs where entry.recording === r {
            entry.input.end()
            pull(id, now: now)
            inputs.removeValue(forKey: id)
            participantFiles.removeValue(forKey: id)
            trackFiles.removeValue(forKey: id)
        }
        r.finish(date: date)
        log("recording \(r.id) finished")
    }

    private func recording(for labels: [String: String]) -> MeetingRecording? {
        active.first { $0.matches(labels) }
    }

    private func policyWants(_ labels: [String: String]) -> Bool {
        guard let room = labels["room"] else { return false }
        return config.rooms.contains(room) || (config.followRoomRecord && labels["record"] == "true")
    }

    private func senderKey(_ d: TapStream) -> String { "\(d.handleID)" }

    private func attach(_ d: TapStream, to r: MeetingRecording, now: Int64) {
        guard inputs[d.id] == nil else { return }
        // One layer of a simulcast stream: the first one offered for its m-line.
        if d.rid != nil, inputs.values.contains(where: { $0.input.description.handleID == d.handleID && $0.input.description.mid == d.mid && !$0.input.ended }) { return }
        // A frame placed up to this far before its arrival that comes out of the reorder buffer
        // within 200 ms is still ahead of what the interleaving (holdback) has written. One that waited
        // longer (a stream's first frames wait the reorder horizon) and that a sender report dates
        // further back can be behind it only in a file that already holds other frames of that time,
        // which then writes it just after them.
        guard let input = TrackInput(d, reorderMillis: config.reorderMillis, latestLagMillis: max(config.holdbackMillis - 200, 100)) else {
            r.note("stream \(d.mid) of \(d.participant): codec \(d.codec) is not recorded")
            return
        }
        inputs[d.id] = (input, r)
        participantFiles[d.id] = r.file(for: input, clusterMillis: config.clusterMillis, now: now)
        if config.perTrack { trackFiles[d.id] = r.addTrackFile(for: input) }
        r.lastMediaMicros = now
        if d.isVideo { requests?.requestKeyframe(stream: d.id) }
    }

    // MARK: - Work

    /// Moves frames to files, asks for retransmissions and keyframes, flushes and syncs on
    /// schedule, closes files whose participant is gone and stops idle policy recordings.
    public func tick(now: Int64, date: Date) {
        for id in Array(inputs.keys) { pull(id, now: now) }
        for (id, entry) in inputs {
            let missing = entry.input.nacks(now: now)
            if !missing.isEmpty { requests?.requestRetransmission(stream: id, missing) }
            if entry.input.wantsKeyframe(now: now) { requests?.requestKeyframe(stream: id) }
            entry.recording.lastMediaMicros = now
        }
        for r in active {
            for file in r.files where !file.finished {
                let wasOpen = file.isOpen
                var leftOut: [TrackInput] = []
                r.record { leftOut = try file.tick(now: now, holdbackMicros: Int64(config.holdbackMillis) * 1_000, openAfterMicros: 3_000_000) }
                if file.isOpen != wasOpen { manifestDirty.insert(ObjectIdentifier(r)) }
                for input in leftOut {
                    // Without a first frame when the file opened: a file of its own.
                    if let id = inputs.first(where: { $0.value.input === input })?.key {
                        let own = ParticipantFile(participant: input.description.participant, display: input.description.labels["display"], directory: r.directory,
                                                  baseName: "participant-\(RecordingFiles.safe(input.description.participant))-\(RecordingFiles.safe(input.description.mid))",
                                                  clusterMillis: config.clusterMillis, now: now)
                        own.attach(input, display: nil)
                        r.adopt(own)
                        participantFiles[id] = own
                    }
                }
                if let since = file.orphanedSince, now - since >= Int64(config.reconnectSeconds) * 1_000_000 {
                    r.record { try file.finish() }
                    manifestDirty.insert(ObjectIdentifier(r))
                }
            }
            if r.reason != .request, !inputs.values.contains(where: { $0.recording === r }),
                now - r.lastMediaMicros >= Int64(config.idleStopSeconds) * 1_000_000
            {
                finish(r, date: date)
            }
        }
        if now - lastFlush >= Int64(config.flushMillis) * 1_000 {
            lastFlush = now
            let durable = now - lastSync >= Int64(config.syncMillis) * 1_000
            if durable { lastSync = now }
            for r in active {
                for f in r.files where !f.finished { r.record { durable ? try f.sync() : try f.flush() } }
                for f in r.trackFiles where !f.finished { r.record { durable ? try f.sync() : try f.flush() } }
                r.record { durable ? try r.transcript.sync() : try r.transcript.flush() }
                if durable || manifestDirty.contains(ObjectIdentifier(r)) { r.writeManifest() }
            }
            manifestDirty.removeAll()
        }
    }

    /// Frames of one input into its participant file (and its own file).
    private func pull(_ id: UInt64, now: Int64) {
        guard let (input, recording) = inputs[id] else { return }
        let frames = input.frames(now: now, participant: senders[senderKey(input.description)] ?? SenderClockOffset())
        guard !frames.isEmpty else { return }
        participantFiles[id]?.add(frames, from: input)
        if let own = trackFiles[id] { recording.record { try own.add(frames) } }
    }
}

/// The host's monotonic clock in microseconds (the clock tap packets arrive on).
public enum DispatchTimeMicros {
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds / 1_000 }
}
