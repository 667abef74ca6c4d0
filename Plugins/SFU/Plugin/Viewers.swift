import AtriumJSON
import PluginKit
import SFUCore

/// Watch-only viewers: handles that join with a room's stream id (`ptype: "viewer"`), are told
/// about its publishers as participants are but under the stream id (never the room id, pin or
/// secret), cannot publish, are not participants, and are counted (`viewers` events).
extension SFUPlugin {
    func joinViewer(_ f: Fields, handle: PluginHandle, state: HandleState, transaction: String) throws(SFUError) {
        let stream = try f.required("stream") { (k: String) throws(SFUError) in try f.string(k) }
        let room = try self.room(stream: stream)
        guard room.viewers.count < room.settings.maxViewers else {
            throw SFUError(.viewersFull, "This stream is full: it has the most viewers it allows (\(room.settings.maxViewers))")
        }
        var id = SFUID.random(stringIDs: config.stringIDs)
        while room.participant(id) != nil || room.viewers.contains(where: { $0.id == id }) { id = SFUID.random(stringIDs: config.stringIDs) }
        let display = try f.string("display")
        try config.textBounds.display(display)
        let viewer = Viewer(id: id, handle: handle, room: room, stream: stream, display: display)
        room.viewers.append(viewer)
        state.role = .viewer(viewer)
        state.joined(room, host: host, handle: handle)
        publishPresence(handle, room: room, role: "viewer", present: true)
        syncMedia(room)
        host.pushEvent(to: handle, transaction: transaction, event: [
            "videoroom": "watching", "room": .string(stream), "id": id.json,
            "publishers": .array(room.publishers.map(\.publisherEntry)), "viewers": .int(Int64(room.viewers.count)),
        ])
        announceViewerCount(room, except: handle)
    }

    func viewerRequest(_ request: String, viewer v: Viewer, transaction: String) throws(SFUError) {
        switch request {
        case "leave":
            remove(v)
            host.pushEvent(to: v.handle, transaction: transaction, event: ["videoroom": "event", "room": .string(v.stream), "leaving": "ok"])
        case "join":
            throw SFUError(.alreadyJoined, "Already in as a viewer on this handle")
        case "publish", "joinandconfigure", "configure", "unpublish":
            throw SFUError(.viewerCannotPublish, "Viewers cannot publish: this handle watches the stream")
        default:
            throw SFUError(.invalidRequest, "Invalid request '\(request)' on a viewer handle")
        }
    }

    /// A viewer leaves (leave, handle gone, room destroyed).
    func remove(_ v: Viewer, announce: Bool = true) {
        let room = v.room
        room.viewers.removeAll { $0 === v }
        if let state = state(v.handle) { state.role = .none }
        publishPresence(v.handle, room: room, role: "viewer", present: false)
        guard announce else { return }
        syncMedia(room)
        announceViewerCount(room, except: nil)
        destroyIfEmpty(room)
    }

    /// `{"videoroom":"event","room":..,"viewers":N}` to every participant and (under the stream
    /// id) every viewer.
    func announceViewerCount(_ room: Room, except: PluginHandle?) {
        let event: JSONObject = ["videoroom": "event", "room": room.id.json, "viewers": .int(Int64(room.viewers.count))]
        for p in room.participants where p.streamInfo { host.pushEvent(to: p.handle, event: .object(event)) }
        tellViewers(room, event, except: except)
    }

    /// Sends a room event to the viewers, with the stream id in place of the room id.
    func tellViewers(_ room: Room, _ event: JSONObject, except: PluginHandle? = nil) {
        for v in room.viewers where v.handle.id != except?.id {
            host.pushEvent(to: v.handle, event: v.rewrite(.object(event)))
        }
    }

    /// A fresh stream id: 128 random bits as 26 characters of Crockford base32, unrelated to the
    /// room id and unique among the rooms.
    func freshStreamID() -> String {
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        while true {
            var g = SystemRandomNumberGenerator()
            let id = String((0..<26).map { _ in alphabet[Int(g.next() % 32)] })
            if !rooms.contains(where: { $0.settings.streamID == id }) { return id }
        }
    }
}

extension Viewer {
    /// The event as this viewer gets it: `room` names the stream.
    func rewrite(_ event: JSON) -> JSON {
        guard case .object(var o) = event else { return event }
        if o["room"] != nil { o["room"] = .string(stream) }
        return .object(o)
    }
}
