import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import SFUCore

/// Multi-party rooms compatible with Janus VideoRoom (multistream API of Janus 1.x): rooms from the
/// configuration or by request, publishers that send one PeerConnection each, subscribers that
/// receive any set of published streams on one PeerConnection. Requests and room state live on the
/// plugin's control context; packets go through `Forwarder` on the media thread.
final class SFUPlugin: AtriumPlugin {
    let host: PluginHost
    var config = SFUConfig()
    var rooms: [Room] = []
    var timer: UInt64 = 0
    /// Every live handle by id: events from the media thread go only to handles still here.
    var handles: [UInt64: PluginHandle] = [:]
    /// Rooms made by `create`: who made them and how long they have been empty.
    var requestedRooms = RequestedRooms(maxPerAddress: 10, emptyRoomSeconds: 300)
    /// Whether the configuration's rooms were announced on the event bus (not possible in
    /// `start`, before the host serves; done on the first tick).
    var announcedConfiguredRooms = false

    init(host: PluginHost) { self.host = host }

    func start(config object: JSONObject) throws(PluginFailure) {
        do throws(SFUError) {
            config = try SFUConfig(object)
        } catch {
            throw PluginFailure(error.message)
        }
        rooms = config.rooms.map { room in
            var settings = room.settings
            if settings.description.isEmpty { settings.description = "Room \(room.id)" }
            return wired(Room(id: room.id, settings: settings, fromConfig: true))
        }
        requestedRooms = RequestedRooms(maxPerAddress: config.maxRoomsPerAddress, emptyRoomSeconds: config.emptyRoomSeconds)
        for room in rooms where room.settings.streamID == nil { room.settings.streamID = freshStreamID() }
        timer = host.schedule(everyMilliseconds: 1_000) { [weak self] in self?.tick() }
    }

    /// A new room, its forwarding table able to ask for event delivery. Events from the media
    /// thread go out as soon as the control context is free, posted once per batch: nothing wakes
    /// while nothing happens (a periodic timer cost two dispatch threads a context switch per
    /// wake-up, a tenth of a small room's CPU at 50 a second).
    func wired(_ room: Room) -> Room {
        room.forwarding.withLock { [host] table in
            table.requestDelivery = { [weak self] in host.postControl { self?.deliverEvents() } }
        }
        return room
    }

    func stop() {
        if timer != 0 { host.cancelTimer(timer) }
        for room in rooms { room.forwarding.withLock { $0 = ForwardingTable() } }
    }

    // MARK: - Handles

    func handleCreated(_ handle: PluginHandle) throws(PluginFailure) {
        handle.raw.pointee.plugin_data = Unmanaged.passRetained(HandleState()).toOpaque()
        handles[handle.id] = handle
    }

    func handleDestroyed(_ handle: PluginHandle) {
        guard let data = handle.raw.pointee.plugin_data else { return }
        let state = Unmanaged<HandleState>.fromOpaque(data).takeUnretainedValue()
        switch state.role {
        case .publisher(let participant): remove(participant, reason: .left, notifySelf: false)
        case .subscriber(let subscription): remove(subscription)
        case .viewer(let viewer): remove(viewer)
        case .none: break
        }
        handle.raw.pointee.plugin_data = nil
        handles[handle.id] = nil
        Unmanaged<HandleState>.fromOpaque(data).release()
    }

    func state(_ handle: PluginHandle) -> HandleState? {
        handle.raw.pointee.plugin_data.map { Unmanaged<HandleState>.fromOpaque($0).takeUnretainedValue() }
    }

    func room(_ id: SFUID) -> Room? { rooms.first { $0.id == id } }

    /// The room whose stream id this is, or 426 (which says nothing about the room).
    func room(stream: String) throws(SFUError) -> Room {
        guard !stream.isEmpty, let room = rooms.first(where: { $0.settings.streamID == stream }) else {
            throw SFUError(.noSuchRoom, "No such stream")
        }
        return room
    }

    /// The room a request names (`room`), or 426.
    func room(in f: Fields) throws(SFUError) -> Room {
        let id = try f.required("room") { (k: String) throws(SFUError) in try SFUID.read(f, k, stringIDs: config.stringIDs) }
        guard let room = room(id) else { throw SFUError(.noSuchRoom, "No such room (\(id))") }
        return room
    }

    /// The room's `secret`, for the requests that change a room or its participants.
    /// A room of the configuration without a secret is changed through the admin API only.
    /// Rationale: Janus lets anyone change a room that has no secret. For a room made by request
    /// that is its maker's choice; a configured room would otherwise be open to every client
    /// (`new_rec_dir`, `enable_recording`, `destroy`), and a secret written in a shipped
    /// configuration is published, so it protects nothing either.
    func checkSecret(_ room: Room, _ f: Fields, from requester: Requester) throws(SFUError) {
        guard let secret = room.settings.secret else {
            guard room.fromConfig, case .client = requester else { return }
            throw SFUError(.unauthorized, "Unauthorized (room \(room.id) is from the configuration and has no secret: it is changed through the admin API only)")
        }
        guard let given = try f.string("secret") else { throw SFUError.missing("secret") }
        guard given == secret else { throw SFUError(.unauthorized, "Unauthorized (wrong secret)") }
    }

    // MARK: - Messages

    static let synchronous: Set<String> = [
        "create", "edit", "destroy", "exists", "list", "allowed", "kick", "moderate", "listparticipants", "enable_recording",
        "rtp_forward", "stop_rtp_forward", "listforwarders",
    ]

    static let asynchronous: Set<String> = [
        "join", "joinandconfigure", "configure", "publish", "unpublish", "start", "pause", "switch", "subscribe", "unsubscribe",
        "update", "leave",
    ]

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        guard let state = state(handle) else { return .failure("no state for this handle") }
        let f = Fields(body)
        let request: String
        do throws(SFUError) {
            request = try f.required("request") { (k: String) throws(SFUError) in try f.string(k) }.lowercased()
        } catch {
            return .reply(error.payload)
        }
        guard Self.synchronous.contains(request) || Self.asynchronous.contains(request) else {
            return .reply(SFUError(.invalidRequest, "Unknown request '\(request)'").payload)
        }
        if Self.synchronous.contains(request) {
            do throws(SFUError) {
                return .reply(.object(try synchronousRequest(request, f, from: .client(handle))))
            } catch {
                return .reply(error.payload)
            }
        }
        do throws(SFUError) {
            try asynchronousRequest(request, f, jsep: jsep, handle: handle, state: state, transaction: transaction)
        } catch {
            host.pushEvent(to: handle, transaction: transaction, event: error.payload)
        }
        return .ack()
    }

    func adminMessage(_ body: JSONObject) -> JSON? {
        let f = Fields(body)
        do throws(SFUError) {
            let request = try f.required("request") { (k: String) throws(SFUError) in try f.string(k) }.lowercased()
            guard Self.synchronous.contains(request) else { throw SFUError(.invalidRequest, "Unknown request '\(request)'") }
            return .object(try synchronousRequest(request, f, from: .admin))
        } catch {
            return error.payload
        }
    }

    func asynchronousRequest(_ request: String, _ f: Fields, jsep: JSONObject?, handle: PluginHandle, state: HandleState,
                             transaction: String) throws(SFUError) {
        switch (request, state.role) {
        case ("join", .none), ("joinandconfigure", .none):
            let ptype = try f.required("ptype") { (k: String) throws(SFUError) in try f.string(k) }
            switch ptype {
            case "publisher": try joinPublisher(f, jsep: jsep, handle: handle, state: state, transaction: transaction, configure: request == "joinandconfigure")
            case "subscriber", "listener": try joinSubscriber(f, handle: handle, state: state, transaction: transaction)
            case "viewer":
                guard request == "join" else { throw SFUError(.viewerCannotPublish, "Viewers cannot publish: join as a viewer with join") }
                try joinViewer(f, handle: handle, state: state, transaction: transaction)
            default: throw SFUError(.invalidElement, "Invalid element (ptype)")
            }
        case (_, .viewer(let viewer)):
            try viewerRequest(request, viewer: viewer, transaction: transaction)
        case ("join", _), ("joinandconfigure", _):
            throw SFUError(.alreadyJoined, "Already in as a \(state.roleName) on this handle")
        case (_, .publisher(let participant)):
            try publisherRequest(request, f, jsep: jsep, participant: participant, transaction: transaction)
        case (_, .subscriber(let subscription)):
            try subscriberRequest(request, f, jsep: jsep, subscription: subscription, transaction: transaction)
        case (_, .none):
            throw SFUError(.joinFirst, "Invalid request on unconfigured participant")
        }
    }

    // MARK: - Timers and media callbacks

    /// Every second: periodic keyframe requests (`fir_freq`), and rooms made by request that have
    /// been empty for `empty_room_seconds` go.
    func tick() {
        let now = monotonicNanoseconds()
        if !announcedConfiguredRooms {
            announcedConfiguredRooms = true
            for room in rooms where room.fromConfig { publishRoomAccess(room) }
        }
        for id in requestedRooms.expired(now: now, isEmpty: { id in room(id)?.isEmpty ?? true }) {
            guard let room = room(id) else { continue }
            rooms.removeAll { $0 === room }
            publishStreamLink(room, destroyed: true)
            host.log(.info, "room \(id) destroyed: empty for \(config.emptyRoomSeconds) s (empty_room_seconds)")
        }
        for room in rooms where room.settings.firFrequency > 0 {
            let interval = UInt64(room.settings.firFrequency) * 1_000_000_000
            for p in room.participants where p.isPublishing && now - min(now, p.lastKeyframeAt) >= interval {
                p.lastKeyframeAt = now
                host.requestKeyframe(p.handle)
            }
        }
    }

    /// Sends what the media thread queued (talking, substream changes) to handles still alive.
    func deliverEvents() {
        let events = rooms.flatMap { room in room.forwarding.withLock { $0.takeEvents() } }
        for e in events {
            guard let handle = handles[e.handleID] else { continue }
            // Talking events reach viewers too, under the stream id.
            if case .viewer(let v)? = state(handle)?.role {
                host.pushEvent(to: handle, event: v.rewrite(e.event))
            } else {
                host.pushEvent(to: handle, event: e.event)
            }
        }
    }

    func setupMedia(_ handle: PluginHandle) {
        guard let state = state(handle) else { return }
        switch state.role {
        case .publisher(let p):
            if p.bitrate > 0 { host.sendREMB(p.handle, bitrate: p.bitrate) }
        case .subscriber(let s):
            requestKeyframes(for: s)
        case .none, .viewer:
            break
        }
    }

    func hangupMedia(_ handle: PluginHandle, reason: Int32) {
        guard let state = state(handle) else { return }
        switch state.role {
        case .publisher(let p) where p.isPublishing:
            stopPublishing(p)
        case .subscriber(let s):
            s.awaitingAnswer = false
        default:
            break
        }
    }

    func incomingRTP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtp_packet_t>) {
        guard let table = state(handle)?.forwarding.withLock({ $0 }) else { return }
        Forwarder.forward(packet, from: handle, in: table, host: host)
    }

    func incomingRTCP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtcp_packet_t>) {
        let bytes = UnsafeRawBufferPointer(start: packet.pointee.buffer, count: Int(packet.pointee.length))
        guard let packets = try? RTCPPacket.parseCompound(bytes) else { return }
        let relevant = packets.contains {
            switch $0 {
            case .pictureLossIndication, .fullIntraRequest, .remb: true
            default: false
            }
        }
        guard relevant, let table = state(handle)?.forwarding.withLock({ $0 }) else { return }
        Forwarder.subscriberFeedback(packets, mindex: packet.pointee.mindex, from: handle, in: table, host: host)
    }

    var followsBandwidth: Bool { true }

    func bandwidthEstimateChanged(_ handle: PluginHandle, bitrate: UInt64) {
        guard let table = state(handle)?.forwarding.withLock({ $0 }) else { return }
        Forwarder.estimateChanged(bitrate, for: handle, in: table)
    }

    func describe(_ handle: PluginHandle) -> JSONObject {
        guard let state = state(handle) else { return [:] }
        switch state.role {
        case .none:
            return ["type": "none"]
        case .publisher(let p):
            return ["type": "publisher", "room": p.room.id.json, "id": p.id.json, "display": JSON(p.display),
                    "publishing": .bool(p.isPublishing), "streams": .array(p.streams.map(\.descriptor))]
        case .subscriber(let s):
            return ["type": "subscriber", "room": s.room.id.json, "paused": .bool(s.paused), "streams": .array(s.streams.map(\.descriptor))]
        case .viewer(let v):
            return ["type": "viewer", "room": v.room.id.json, "id": v.id.json, "display": JSON(v.display)]
        }
    }

    func metricsText() -> String {
        let (feeds, subscribers) = rooms.reduce((0, 0)) { sum, room in
            room.forwarding.withLock { (sum.0 + $0.feeds.count, sum.1 + $0.subscribers.count) }
        }
        return """
            # HELP atrium_sfu_publishers PeerConnections publishing into SFU rooms.
            # TYPE atrium_sfu_publishers gauge
            atrium_sfu_publishers \(feeds)
            # HELP atrium_sfu_subscribers Subscriber handles of SFU rooms.
            # TYPE atrium_sfu_subscribers gauge
            atrium_sfu_subscribers \(subscribers)

            """
    }
}

/// Who sent a synchronous request: a client through its handle, or the operator through the
/// admin API (which the host admits with its admin secret).
enum Requester {
    case client(PluginHandle)
    case admin

    /// The client's address key ("" for the admin API or when the host does not know it).
    var address: String {
        if case .client(let handle) = self { return handle.clientAddress }
        return ""
    }
}

extension HandleState {
    var isSubscriber: Bool {
        if case .subscriber = role { return true }
        return false
    }

    var roleName: String {
        switch role {
        case .none: "none"
        case .publisher: "publisher"
        case .subscriber: "subscriber"
        case .viewer: "viewer"
        }
    }
}
