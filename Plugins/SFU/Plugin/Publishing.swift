import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import SFUCore

/// Why a participant leaves a room: what the others are told.
enum LeaveReason {
    case left, kicked, destroyed
}

/// The publisher side: join, publish (an offer answered receive-only), configure, unpublish, leave.
extension SFUPlugin {
    func joinPublisher(_ f: Fields, jsep: JSONObject?, handle: PluginHandle, state: HandleState, transaction: String, configure: Bool) throws(SFUError) {
        let room = try room(in: f)
        try checkAccess(room, f)
        let display = try f.string("display")
        let metadata = f.object["metadata"].flatMap { $0.isNull ? nil : $0 }
        try config.textBounds.display(display)
        try config.textBounds.metadata(metadata)
        let id: SFUID
        if let given = try SFUID.read(f, "id", stringIDs: config.stringIDs) {
            guard room.participant(given) == nil else { throw SFUError(.idExists, "User ID \(given) already exists") }
            id = given
        } else {
            var fresh = SFUID.random(stringIDs: config.stringIDs)
            while room.participant(fresh) != nil { fresh = SFUID.random(stringIDs: config.stringIDs) }
            id = fresh
        }
        // A joinandconfigure that cannot publish must not leave a participant behind.
        if configure, jsep != nil { try checkCanPublish(room) }
        let participant = Participant(id: id, handle: handle, room: room, privateID: UInt32.random(in: 1...UInt32.max),
                                      display: display, metadata: metadata)
        participant.streamInfo = try f.bool("stream_info") ?? false
        room.participants.append(participant)
        state.role = .publisher(participant)
        state.joined(room, host: host, handle: handle)
        label(participant)
        // Announced before the room's access, so that a plugin hearing of the participant knows
        // already whether the room has a secret.
        publishRoomAccess(room)
        publishPresence(handle, room: room, role: "publisher", present: true)

        var joined: JSONObject = [
            "videoroom": "joined", "room": room.id.json, "description": .string(room.settings.description), "id": id.json,
            "private_id": .int(Int64(participant.privateID)),
            "publishers": .array(room.publishers.filter { $0 !== participant }.map(\.publisherEntry)),
        ]
        // Atrium's own: participants who ask learn the stream id (for the watch link) and the count.
        if participant.streamInfo {
            if let stream = room.settings.streamID { joined["stream_id"] = .string(stream) }
            joined["viewers"] = .int(Int64(room.viewers.count))
            for (key, value) in room.settings.streamChatSettings { joined[key] = value }
        }
        if room.settings.notifyJoining {
            joined["attendees"] = .array(room.participants.filter { $0 !== participant && !$0.isPublishing }.map { .object($0.attendeeEntry) })
            let joining: JSON = ["videoroom": "event", "room": room.id.json, "joining": .object(participant.attendeeEntry)]
            for other in room.participants where other !== participant { host.pushEvent(to: other.handle, event: joining) }
        }
        // Idempotent: also covers rooms from the configuration, made before the Chat plugin listened.
        publishStreamLink(room)
        if configure, let jsep {
            try publish(participant, f, jsep: jsep, transaction: transaction, reply: joined)
        } else {
            host.pushEvent(to: handle, transaction: transaction, event: .object(joined))
        }
    }

    /// Pin and ACL token checks shared by publishers and subscribers.
    func checkAccess(_ room: Room, _ f: Fields) throws(SFUError) {
        if let pin = room.settings.pin {
            guard let given = try f.string("pin") else { throw SFUError.missing("pin") }
            guard given == pin else { throw SFUError(.unauthorized, "Unauthorized (wrong pin)") }
        }
        if room.checksTokens {
            guard let token = try f.string("token"), room.allowedTokens.contains(token) else {
                throw SFUError(.unauthorized, "Unauthorized (not in the allowed list)")
            }
        }
    }

    func checkCanPublish(_ room: Room) throws(SFUError) {
        guard room.publishers.count < room.settings.publishers else {
            throw SFUError(.publishersFull, "Maximum number of publishers (\(room.settings.publishers)) already reached")
        }
    }

    func publisherRequest(_ request: String, _ f: Fields, jsep: JSONObject?, participant p: Participant, transaction: String) throws(SFUError) {
        let room = p.room
        switch request {
        case "publish", "configure":
            if request == "publish" && p.isPublishing { throw SFUError(.alreadyPublished, "Can't publish, already published") }
            if let jsep {
                if !p.isPublishing { try checkCanPublish(room) }
                try publish(p, f, jsep: jsep, transaction: transaction, reply: nil)
                return
            }
            if request == "publish" { throw SFUError(.missingElement, "Missing SDP offer (publish needs a jsep)") }
            if try applyConfigure(p, f), p.isPublishing { announce(p) }
            host.pushEvent(to: p.handle, transaction: transaction, event: ["videoroom": "event", "room": room.id.json, "configured": "ok"])
        case "unpublish":
            guard p.isPublishing else { throw SFUError(.notPublished, "Can't unpublish, not published") }
            stopPublishing(p)
            host.closePC(p.handle)
            host.pushEvent(to: p.handle, transaction: transaction, event: ["videoroom": "event", "room": room.id.json, "unpublished": "ok"])
        case "leave":
            let wasPublishing = p.isPublishing
            remove(p, reason: .left, notifySelf: false)
            if wasPublishing { host.closePC(p.handle) }
            host.pushEvent(to: p.handle, transaction: transaction, event: ["videoroom": "event", "room": room.id.json, "leaving": "ok"])
        case "start", "pause", "switch", "subscribe", "unsubscribe", "update":
            throw SFUError(.invalidRequest, "Invalid request '\(request)' on a publisher handle")
        default:
            throw SFUError(.invalidRequest, "Unknown request '\(request)'")
        }
    }

    /// `configure` without an offer: bitrate, keyframe, display, metadata, recording, per-stream
    /// keyframes. Returns whether what the others see of `p` (display, metadata) changed.
    func applyConfigure(_ p: Participant, _ f: Fields) throws(SFUError) -> Bool {
        if let bitrate = try f.integer("bitrate", max: 1 << 40) {
            p.bitrate = p.room.settings.bitrateCap && p.room.settings.bitrate > 0 ? min(bitrate, p.room.settings.bitrate) : bitrate
            if p.isPublishing, p.bitrate > 0 { host.sendREMB(p.handle, bitrate: p.bitrate) }
        }
        var keyframe = try f.bool("keyframe") ?? false
        for item in try f.array("streams") ?? [] {
            guard let o = item.objectValue else { throw .invalid("streams", "an array of objects") }
            if try Fields(o).bool("keyframe") == true { keyframe = true }
        }
        if keyframe, p.isPublishing { host.requestKeyframe(p.handle) }
        if let record = try f.bool("record") {
            if p.room.settings.lockRecord, try f.string("secret") != p.room.settings.secret {
                throw SFUError(.unauthorized, "Unauthorized (the room's recording is locked)")
            }
            p.record = record
        }
        let newDisplay = try f.string("display")
        try config.textBounds.display(newDisplay)
        try config.textBounds.metadata(f.object["metadata"])
        var changed = false
        if let display = newDisplay, display != p.display {
            p.display = display
            changed = true
        }
        if let metadata = f.object["metadata"], !metadata.isNull {
            p.metadata = metadata
            changed = true
        }
        _ = try f.bool("audio")
        _ = try f.bool("video")
        _ = try f.bool("data")
        label(p)
        return changed
    }

    /// Answers a publisher's offer: receive-only, the room's codecs, simulcast accepted.
    func publish(_ p: Participant, _ f: Fields, jsep: JSONObject, transaction: String, reply joined: JSONObject?) throws(SFUError) {
        guard jsep["type"]?.stringValue == "offer", let text = jsep["sdp"]?.stringValue else {
            throw SFUError(.invalidSDPType, "Unsupported SDP type (a publisher sends an offer)")
        }
        let offer: SessionDescription
        do {
            offer = try SessionDescription.parse(text)
        } catch {
            throw SFUError(.invalidSDP, "Error parsing offer: \(error)")
        }
        let audioCodec = try f.string("audiocodec")
        let videoCodec = try f.string("videocodec")
        var descriptions: [String: String] = [:]
        for item in try f.array("descriptions") ?? [] {
            if let o = item.objectValue, let mid = o["mid"]?.stringValue, let d = o["description"]?.stringValue {
                try config.textBounds.description(d, key: "descriptions[].description")
                descriptions[mid] = d
            }
        }
        let (answer, streams) = SessionDescriptions.publisherAnswer(offer: offer, settings: p.room.settings, audioCodec: audioCodec,
                                                                   videoCodec: videoCodec, descriptions: descriptions)
        guard streams.contains(where: { !$0.disabled }) else {
            throw SFUError(.invalidSDP, "No audio or video stream in the offer that this room accepts (\(p.room.settings.audioCodecs + p.room.settings.videoCodecs))")
        }
        // A renegotiation keeps what moderators set on mids that stay.
        var next = streams
        for i in next.indices {
            next[i].moderated = p.streams.first { $0.mid == next[i].mid }?.moderated ?? false
            next[i].reportsTalking = p.room.settings.audioLevelEvent
        }
        // The new streams are announced below, with any new display name.
        _ = try applyConfigure(p, f)
        let wasPublishing = p.isPublishing
        p.streams = next
        p.isPublishing = true
        registerFeed(p)
        syncMedia(p.room)

        var event: JSONObject = joined ?? ["videoroom": "event", "room": p.room.id.json, "configured": "ok"]
        if let audio = next.first(where: { !$0.isVideo && !$0.disabled }) { event["audio_codec"] = .string(audio.codecName) }
        if let video = next.first(where: { $0.isVideo && !$0.disabled }) { event["video_codec"] = .string(video.codecName) }
        event["streams"] = .array(next.map(\.descriptor))
        let sdp: JSON = ["type": "answer", "sdp": .string(answer.serialized)]
        if host.pushEvent(to: p.handle, transaction: transaction, event: .object(event), jsep: sdp) != ATRIUM_OK {
            stopPublishing(p, announce: wasPublishing)
            host.pushEvent(to: p.handle, transaction: transaction, event: SFUError(.invalidSDP, "The answer could not be completed").payload)
            return
        }
        announce(p)
        if wasPublishing { refreshSubscribers(of: p) }
    }

    /// Tells every other participant of the room about `p`'s streams (`publishers` with one entry).
    func announce(_ p: Participant) {
        let event: JSON = ["videoroom": "event", "room": p.room.id.json, "publishers": [p.publisherEntry]]
        for other in p.room.participants where other !== p { host.pushEvent(to: other.handle, event: event) }
        if case .object(let o) = event { tellViewers(p.room, o) }
    }

    /// The publisher stopped (unpublish, PeerConnection gone, leave): subscribers lose its streams.
    func stopPublishing(_ p: Participant, announce: Bool = true) {
        guard p.isPublishing else { return }
        p.isPublishing = false
        let handleID = p.handle.id
        p.room.forwarding.withLock { $0.removeFeed(handleID) }
        // Subscribers hear first, as from Janus: a page that detaches its subscriber handle on
        // `unpublished` then never answers an offer on a handle it is closing.
        for s in p.room.subscriptions where s.streams.contains(where: { $0.active && $0.feed == p.id }) {
            for i in s.streams.indices where s.streams[i].feed == p.id {
                s.streams[i].active = false
                s.streams[i].feed = nil
            }
            syncMedia(s)
            if s.autoupdate { renegotiate(s, transaction: nil) }
        }
        if announce {
            var event: JSONObject = ["videoroom": "event", "room": p.room.id.json, "unpublished": p.id.json]
            if let display = p.display { event["display"] = .string(display) }
            for other in p.room.participants where other !== p { host.pushEvent(to: other.handle, event: .object(event)) }
            tellViewers(p.room, event)
        }
    }

    /// Removes a participant from its room (leave, kick, destroy, handle gone).
    func remove(_ p: Participant, reason: LeaveReason, notifySelf: Bool) {
        let room = p.room
        stopPublishing(p)
        room.participants.removeAll { $0 === p }
        if let state = state(p.handle) { state.role = .none }
        publishPresence(p.handle, room: room, role: "publisher", present: false)
        guard reason != .destroyed else { return }
        var event: JSONObject = ["videoroom": "event", "room": room.id.json]
        event[reason == .kicked ? "kicked" : "leaving"] = p.id.json
        if let display = p.display { event["display"] = .string(display) }
        for other in room.participants { host.pushEvent(to: other.handle, event: .object(event)) }
        tellViewers(room, event)
        destroyIfEmpty(room)
    }

    /// Labels a participant's handle for taps (the Recorder finds its streams by these).
    func label(_ p: Participant) {
        var labels = ["room": p.room.id.description, "participant": p.id.description, "plugin": "atrium.plugin.sfu",
                      "record": (p.room.settings.record || p.record) ? "true" : "false"]
        if let display = p.display { labels["display"] = display }
        if let dir = p.room.settings.recordingDirectory { labels["rec_dir"] = dir }
        host.setLabels(p.handle, labels)
    }

    /// Puts a publisher's streams on the media thread (replacing what a previous negotiation put).
    func registerFeed(_ p: Participant) {
        let handle = p.handle
        let room = p.room.id
        let participant = p.id
        let streams = p.streams
        p.room.forwarding.withLock { t in
            let feed = FeedMedia(handle: handle, room: room, participant: participant)
            let count = (streams.map(\.mindex).max() ?? -1) + 1
            feed.streams = Array(repeating: nil, count: count)
            for s in streams where !s.disabled {
                let media = FeedStreamMedia(mindex: Int32(s.mindex), mid: s.mid, isVideo: s.isVideo, codec: VideoCodec(encodingName: s.codec.name),
                                            clockRate: s.codec.clockRate, rids: s.rids, simulcastSSRCs: s.simulcastSSRCs)
                media.muted = s.moderated
                feed.streams[s.mindex] = media
            }
            t.removeFeed(handle.id)
            t.feeds[handle.id] = feed
        }
    }

    /// After a publisher renegotiated: its subscribers' m-lines follow its new streams.
    func refreshSubscribers(of p: Participant) {
        for s in p.room.subscriptions where s.streams.contains(where: { $0.feed == p.id }) {
            var changed = false
            for i in s.streams.indices where s.streams[i].feed == p.id {
                if let published = p.streams.first(where: { $0.mid == s.streams[i].feedMid && !$0.disabled && $0.isVideo == s.streams[i].isVideo }) {
                    if published.codec != s.streams[i].codec {
                        s.streams[i].codec = published.codec
                        changed = true
                    }
                    s.streams[i].simulcast = published.isSimulcast
                } else {
                    s.streams[i].active = false
                    s.streams[i].feed = nil
                    changed = true
                }
            }
            syncMedia(s)
            if changed { renegotiate(s, transaction: nil) }
        }
    }

    /// Handle ids of publishers whose audio is "talking" now.
    func talkingParticipants(_ room: Room) -> Set<UInt64> {
        let ids = room.participants.filter(\.isPublishing).map(\.handle.id)
        return room.forwarding.withLock { t in
            Set(ids.filter { id in t.feeds[id]?.streams.contains { $0?.audioLevels.talking == true } == true })
        }
    }
}
