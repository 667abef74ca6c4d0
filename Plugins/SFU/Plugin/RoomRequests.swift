import AtriumJSON
import PluginKit
import RTC
import SFUCore

/// The synchronous VideoRoom requests: rooms and their participants, answered in the `success`.
extension SFUPlugin {
    func synchronousRequest(_ request: String, _ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        switch request {
        case "create": return try create(f, from: requester)
        case "edit": return try edit(f, from: requester)
        case "destroy": return try destroy(f, from: requester)
        case "exists":
            let id = try f.required("room") { (k: String) throws(SFUError) in try SFUID.read(f, k, stringIDs: config.stringIDs) }
            return ["videoroom": "success", "room": id.json, "exists": .bool(room(id) != nil)]
        case "list":
            let key = try f.string("admin_key")
            if let key, let expected = config.adminKey, key != expected { throw SFUError(.unauthorized, "Unauthorized (wrong admin_key)") }
            let admin = config.adminKey != nil && key == config.adminKey
            let list = rooms.filter { !$0.settings.isPrivate || admin }.map { r in
                JSON.object(r.settings.listing(room: r.id, participants: r.participants.count))
            }
            return ["videoroom": "success", "list": .array(list)]
        case "listparticipants":
            let room = try room(in: f)
            let talking = talkingParticipants(room)
            let list: [JSON] = room.participants.map { p in
                var o = p.attendeeEntry
                o["publisher"] = .bool(p.isPublishing)
                if p.isPublishing, p.streams.contains(where: { $0.audioLevelID != 0 }) { o["talking"] = .bool(talking.contains(p.handle.id)) }
                return .object(o)
            }
            return ["videoroom": "participants", "room": room.id.json, "participants": .array(list)]
        case "allowed": return try allowed(f, from: requester)
        case "kick": return try kick(f, from: requester)
        case "moderate": return try moderate(f, from: requester)
        case "enable_recording":
            let room = try room(in: f)
            try checkSecret(room, f, from: requester)
            room.settings.record = try f.required("record") { (k: String) throws(SFUError) in try f.bool(k) }
            for p in room.participants { label(p) }
            return ["videoroom": "success", "room": room.id.json, "record": .bool(room.settings.record)]
        default:
            // rtp_forward, stop_rtp_forward, listforwarders: plain RTP out of the server is not offered.
            throw SFUError(.invalidRequest, "Unsupported request '\(request)' (Atrium does not forward plain RTP)")
        }
    }

    func checkAdminKey(_ f: Fields) throws(SFUError) {
        guard let key = config.adminKey else { return }
        guard let given = try f.string("admin_key") else { throw SFUError.missing("admin_key") }
        guard given == key else { throw SFUError(.unauthorized, "Unauthorized (wrong admin_key)") }
    }

    func create(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        try checkAdminKey(f)
        // A permanent room never expires and counts toward no address's share, so a client asking
        // for one must be trusted: with an admin_key configured, checkAdminKey just checked it.
        // Without one there is nobody to trust, so clients cannot make permanent rooms (the
        // admin API can).
        let permanent = try f.bool("permanent") ?? false
        if permanent, case .client = requester, config.adminKey == nil {
            throw SFUError(.unauthorized, "Unauthorized (permanent rooms need the admin_key, and this server has none configured: rooms made by clients expire when empty)")
        }
        var settings = try RoomSettings(f)
        if case .client = requester { try config.textBounds.description(settings.description) }
        let id: SFUID
        if let given = try SFUID.read(f, "room", stringIDs: config.stringIDs) {
            guard room(given) == nil else { throw SFUError(.roomExists, "Room \(given) already exists") }
            id = given
        } else {
            var fresh = SFUID.random(stringIDs: config.stringIDs)
            while room(fresh) != nil { fresh = SFUID.random(stringIDs: config.stringIDs) }
            id = fresh
        }
        dropAbandonedRooms()
        guard rooms.count < config.maxRooms else { throw SFUError(.unknown, "Too many rooms (max_rooms is \(config.maxRooms))") }
        // With an admin_key configured, only its holders create rooms (checked above): they are
        // trusted, so the share per address bounds anonymous creation only.
        if !permanent, config.adminKey == nil, case .client = requester { try requestedRooms.checkCanCreate(address: requester.address) }
        if !f.has("description") { settings.description = "Room \(id)" }
        if let stream = settings.streamID {
            guard !rooms.contains(where: { $0.settings.streamID == stream }) else { throw SFUError(.idExists, "Stream id already in use") }
        } else {
            settings.streamID = freshStreamID()
        }
        let room = wired(Room(id: id, settings: settings))
        rooms.append(room)
        if !permanent { requestedRooms.created(id, address: requester.address, now: monotonicNanoseconds()) }
        publishStreamLink(room)
        host.log(.info, "room \(id) created\(permanent ? " (permanent)" : "") by \(requester.address.isEmpty ? "the admin API or an unknown address" : requester.address)")
        // The configuration file is never rewritten, so no room is "permanent" in Janus's sense
        // (saved); a permanent room here is one that does not expire when empty.
        return ["videoroom": "created", "room": id.json, "permanent": false]
    }

    /// A `destroy_when_empty` room goes as soon as nobody is left in it (participants and
    /// subscribers alike).
    func destroyIfEmpty(_ room: Room) {
        guard room.settings.destroyWhenEmpty, room.participants.isEmpty, room.subscriptions.isEmpty, room.viewers.isEmpty,
              rooms.contains(where: { $0 === room }) else { return }
        rooms.removeAll { $0 === room }
        requestedRooms.removed(room.id)
        publishStreamLink(room, destroyed: true)
        host.log(.info, "room \(room.id) destroyed: the last one in it left (destroy_when_empty)")
    }

    /// Tells the Chat plugin (event bus, `sfu.stream`) how this room's chat and its stream chat
    /// are linked, or that the link is gone with the room.
    func publishStreamLink(_ room: Room, destroyed: Bool = false) {
        publishRoomAccess(room, destroyed: destroyed)
        guard let link = room.settings.streamLink(room: room.id, destroyed: destroyed) else { return }
        host.publish(topic: "sfu.stream", event: .object(link))
    }

    /// `destroy_when_empty` rooms that nobody joined within a minute of their creation: a leave
    /// removes a room that empties, so an empty one this old was made and never used.
    func dropAbandonedRooms() {
        let cutoff = ContinuousClock.now - .seconds(60)
        let abandoned = rooms.filter { r in
            r.settings.destroyWhenEmpty && r.participants.isEmpty && r.subscriptions.isEmpty && r.viewers.isEmpty && r.createdAt < cutoff
        }
        rooms.removeAll { r in abandoned.contains { $0 === r } }
        for r in abandoned { requestedRooms.removed(r.id) }
        for r in abandoned { publishStreamLink(r, destroyed: true) }
    }

    func edit(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        let room = try room(in: f)
        try checkSecret(room, f, from: requester)
        var s = room.settings
        if let v = try f.string("new_description") {
            if case .client = requester { try config.textBounds.description(v, key: "new_description") }
            s.description = v
        }
        if let v = try f.string("new_secret") { s.secret = v }
        if let v = try f.string("new_pin") { s.pin = v.isEmpty ? nil : v }
        if let v = try f.bool("new_is_private") { s.isPrivate = v }
        if let v = try f.bool("new_require_pvtid") { s.requirePrivateID = v }
        if let v = try f.integer("new_bitrate", max: 1 << 40) { s.bitrate = v }
        if let v = try f.integer("new_fir_freq", max: 86_400) { s.firFrequency = Int(v) }
        if let v = try f.integer("new_publishers", max: 1_000) { s.publishers = max(1, Int(v)) }
        if let v = try f.bool("new_lock_record") { s.lockRecord = v }
        if let v = try f.string("new_rec_dir") { s.recordingDirectory = v }
        if let v = try f.bool("new_audiolevel_event") { s.audioLevelEvent = v }
        if let v = try f.bool("new_stream_chat_write") { s.streamChatWrite = v }
        if let v = try f.bool("new_viewers_read_chat") { s.viewersReadChat = v }
        _ = try f.bool("permanent")
        let streamChatChanged = s.streamChatSettings != room.settings.streamChatSettings
        let secretChanged = s.secret != room.settings.secret
        room.settings = s
        syncMedia(room)
        if secretChanged { publishRoomAccess(room) }
        if streamChatChanged {
            publishStreamLink(room)
            var event: JSONObject = ["videoroom": "event", "room": room.id.json]
            for (key, value) in s.streamChatSettings { event[key] = value }
            for p in room.participants where p.streamInfo { host.pushEvent(to: p.handle, event: .object(event)) }
        }
        return ["videoroom": "edited", "room": room.id.json, "permanent": false]
    }

    func destroy(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        let room = try room(in: f)
        try checkSecret(room, f, from: requester)
        let event: JSON = ["videoroom": "destroyed", "room": room.id.json]
        for v in room.viewers {
            host.pushEvent(to: v.handle, event: v.rewrite(event))
            remove(v, announce: false)
        }
        for s in room.subscriptions {
            host.pushEvent(to: s.handle, event: ["videoroom": "destroyed", "room": s.roomRef])
            remove(s)
            host.closePC(s.handle)
        }
        for p in room.participants {
            host.pushEvent(to: p.handle, event: event)
            let wasPublishing = p.isPublishing
            remove(p, reason: .destroyed, notifySelf: false)
            if wasPublishing { host.closePC(p.handle) }
        }
        rooms.removeAll { $0 === room }
        requestedRooms.removed(room.id)
        publishStreamLink(room, destroyed: true)
        host.log(.info, "room \(room.id) destroyed")
        return ["videoroom": "destroyed", "room": room.id.json, "permanent": false]
    }

    func allowed(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        let room = try room(in: f)
        try checkSecret(room, f, from: requester)
        let action = try f.required("action") { (k: String) throws(SFUError) in try f.string(k) }
        let tokens = try f.strings("allowed")
        switch action {
        case "enable": room.checksTokens = true
        case "disable": room.checksTokens = false
        case "add", "remove":
            guard let tokens else { throw SFUError.missing("allowed") }
            if action == "add" {
                var known = Set(room.allowedTokens)
                let new = tokens.filter { known.insert($0).inserted }
                try RoomSettings.checkAllowed(new, adding: room.allowedTokens.count)
                room.allowedTokens += new
            } else {
                let gone = Set(tokens)
                room.allowedTokens.removeAll { gone.contains($0) }
            }
        default:
            throw SFUError(.invalidElement, "Unsupported action '\(action)' (allowed)")
        }
        // As Janus: "disable" answers without the list.
        guard action != "disable" else { return ["videoroom": "success", "room": room.id.json] }
        return ["videoroom": "success", "room": room.id.json, "allowed": .array(room.allowedTokens.map { .string($0) })]
    }

    func kick(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        let room = try room(in: f)
        try checkSecret(room, f, from: requester)
        let id = try f.required("id") { (k: String) throws(SFUError) in try SFUID.read(f, k, stringIDs: config.stringIDs) }
        guard let p = room.participant(id) else { throw SFUError(.noSuchFeed, "No such user \(id) in room \(room.id)") }
        host.pushEvent(to: p.handle, event: ["videoroom": "event", "room": room.id.json, "leaving": "ok", "reason": "kicked"])
        let wasPublishing = p.isPublishing
        remove(p, reason: .kicked, notifySelf: false)
        if wasPublishing { host.closePC(p.handle) }
        return ["videoroom": "success"]
    }

    func moderate(_ f: Fields, from requester: Requester) throws(SFUError) -> JSONObject {
        let room = try room(in: f)
        try checkSecret(room, f, from: requester)
        let id = try f.required("id") { (k: String) throws(SFUError) in try SFUID.read(f, k, stringIDs: config.stringIDs) }
        guard let p = room.participant(id) else { throw SFUError(.noSuchFeed, "No such user \(id) in room \(room.id)") }
        let mid = try f.required("mid") { (k: String) throws(SFUError) in try f.string(k) }
        let mute = try f.required("mute") { (k: String) throws(SFUError) in try f.bool(k) }
        guard let i = p.streams.firstIndex(where: { $0.mid == mid }) else { throw SFUError(.noSuchFeed, "No such stream \(mid)") }
        p.streams[i].moderated = mute
        syncMedia(room)
        let event: JSON = ["videoroom": "event", "room": room.id.json, "id": p.id.json, "mid": .string(mid),
                           "moderation": .string(mute ? "muted" : "unmuted")]
        for other in room.participants { host.pushEvent(to: other.handle, event: event) }
        return ["videoroom": "success"]
    }
}
