import AtriumJSON
import ChatCore
import Foundation
import PluginKit
import Synchronization

/// Error codes of the Chat plugin, in replies `{"chat":"error","error_code":N,"error":"..."}`.
/// The numbers follow Janus's TextRoom where a counterpart exists.
enum ChatError: Int {
    case missingElement = 413
    case invalidElement = 414
    case invalidRequest = 415
    case noSuchRoom = 417
    case roomExists = 418
    case unauthorized = 419
    case displayTaken = 420
    case alreadyInRoom = 421
    case notInRoom = 422
    case noSuchParticipant = 423
    case messageTooLarge = 424
    case rateLimited = 425
    case roomFull = 426
    case tooManyRooms = 427
    case notLinked = 428
    case readOnly = 429

    func reply(_ message: String) -> JSON {
        ["chat": "error", "error_code": .int(Int64(rawValue)), "error": .string(message)]
    }
}

/// One person in a room, bound to the handle that joined.
final class Participant {
    let id: UInt64
    let display: String
    let handle: PluginHandle
    let room: Room
    var tokens: Double
    var lastRefill: Date

    init(id: UInt64, display: String, handle: PluginHandle, room: Room, burst: Double) {
        self.id = id
        self.display = display
        self.handle = handle
        self.room = room
        tokens = burst
        lastRefill = Date()
    }

    var summary: JSON { ["id": JSON(id), "display": .string(display)] }
}

final class Room {
    let id: String
    var description: String
    let pin: String?
    let historyLimit: Int
    let fromConfig: Bool
    var participants: [UInt64: Participant] = [:]
    var history: [JSON] = []

    init(id: String, description: String, pin: String?, historyLimit: Int, fromConfig: Bool) {
        self.id = id
        self.description = description
        self.pin = pin
        self.historyLimit = historyLimit
        self.fromConfig = fromConfig
    }

    func participant(named display: String) -> Participant? {
        participants.values.first { $0.display == display }
    }

    var roster: JSON { .array(participants.values.sorted { $0.display < $1.display }.map(\.summary)) }
}

/// Chat rooms over the Janus API. All state is touched only on the plugin's control context
/// (the host serializes every call), so it needs no lock; the counters read by metrics scrapes do.
final class ChatPlugin: AtriumPlugin {
    let host: PluginHost
    var config = try! ChatConfig([:])
    var rooms: [String: Room] = [:]
    /// Which participant each handle is (a handle is in at most one room).
    var members: [UInt64: Participant] = [:]
    /// Each SFU room's chat and its stream chat, as the SFU announces them (`sfu.stream`).
    var links = StreamLinks()
    /// The rooms clients made, by address, and since when each has been empty.
    var requestedRooms = RoomShares<String>(maxPerAddress: 10, emptyRoomSeconds: 300)
    /// A one-shot timer armed while there are rooms made by request (an idle host does not wake).
    var expiryTimer: UInt64 = 0
    let counters = Mutex((messages: 0, privateMessages: 0, rejected: 0, rooms: 0, participants: 0))

    init(host: PluginHost) { self.host = host }

    func start(config object: JSONObject) throws(PluginFailure) {
        config = try ChatConfig(object)
        requestedRooms = RoomShares(maxPerAddress: config.maxRoomsPerAddress, emptyRoomSeconds: config.emptyRoomSeconds)
        for r in config.rooms {
            rooms[r.id] = Room(id: r.id, description: r.description, pin: r.pin, historyLimit: r.history ?? config.history, fromConfig: true)
        }
        updateGauges()
        host.log(.info, "chat ready with \(rooms.count) configured rooms")
    }

    func stop() {
        if expiryTimer != 0 { host.cancelTimer(expiryTimer) }
        rooms.removeAll()
        members.removeAll()
    }

    var subscribesToEvents: Bool { true }

    func receiveEvent(source: String, topic: String, event: JSONObject) {
        guard topic == "sfu.stream", let change = links.apply(event) else { return }
        if let old = change.old, old.streamChat != change.new?.streamChat {
            tellLinkSettings(room: old.streamChat, nil)
            if let r = rooms[old.streamChat], r.participants.isEmpty, !r.fromConfig { rooms.removeValue(forKey: r.id) }
        }
        if let new = change.new {
            tellLinkSettings(room: new.roomChat, new)
            tellLinkSettings(room: new.streamChat, new)
        } else if let old = change.old {
            tellLinkSettings(room: old.roomChat, nil)
        }
        updateGauges()
    }

    /// `{"chat":"stream_link","room",...}` to everyone in one chat of a link, with that chat's own
    /// id: the stream chat's members never see the room's.
    func tellLinkSettings(room id: String, _ link: StreamLink?) {
        guard let r = rooms[id] else { return }
        var event: JSONObject = ["chat": "stream_link", "room": .string(id), "linked": .bool(link != nil)]
        for (key, value) in (link ?? StreamLink(roomChat: "", streamID: "")).settings { event[key] = value }
        for p in r.participants.values { host.pushEvent(to: p.handle, event: .object(event)) }
    }

    func handleDestroyed(_ handle: PluginHandle) {
        if let p = members[handle.id] { leave(p) }
    }

    func describe(_ handle: PluginHandle) -> JSONObject {
        guard let p = members[handle.id] else { return ["joined": false] }
        return ["joined": true, "room": .string(p.room.id), "id": JSON(p.id), "display": .string(p.display)]
    }

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        guard let request = body["request"] else {
            return .reply(ChatError.missingElement.reply("Missing element (request)"))
        }
        guard let verb = request.stringValue else {
            return .reply(ChatError.invalidElement.reply("Invalid element (request should be a string)"))
        }
        switch verb {
        case "join": return .reply(join(handle, body))
        case "leave": return .reply(leaveRequest(handle))
        case "message": return .reply(message(handle, body))
        case "participants": return .reply(participants(handle, body))
        case "list": return .reply(list())
        case "exists": return .reply(exists(body))
        case "create": return .reply(create(body, address: handle.clientAddress))
        default: return .reply(ChatError.invalidRequest.reply("Unknown request '\(verb)'"))
        }
    }

    // MARK: - Requests

    /// A room made by request; `address` is the client's ("" from the admin API, not bounded).
    func create(_ body: JSONObject, address: String = "") -> JSON {
        guard let value = body["room"] else { return ChatError.missingElement.reply("Missing element (room)") }
        guard let id = roomID(value), !id.isEmpty else { return ChatError.invalidElement.reply("Invalid element (room should be a non-empty string of at most 256 bytes)") }
        var pin: String?
        if let p = body["pin"], !p.isNull {
            guard let s = p.stringValue, !s.isEmpty, s.utf8.count <= Self.maximumTextBytes else {
                return ChatError.invalidElement.reply("Invalid element (pin should be a non-empty string of at most \(Self.maximumTextBytes) bytes)")
            }
            pin = s
        }
        var description = id
        if let d = body["description"] {
            // Kept for the room's life and sent to everyone who joins.
            guard let s = d.stringValue, s.utf8.count <= Self.maximumTextBytes else {
                return ChatError.invalidElement.reply("Invalid element (description should be a string of at most \(Self.maximumTextBytes) bytes)")
            }
            description = s
        }
        expireEmptyRooms()
        guard rooms[id] == nil else { return ChatError.roomExists.reply("Room '\(id)' already exists") }
        guard rooms.count < config.maxRooms else { return tooManyRooms() }
        guard requestedRooms.mayCreate(address: address) else { return tooManyRoomsFromAddress() }
        rooms[id] = Room(id: id, description: description, pin: pin, historyLimit: config.history, fromConfig: false)
        requestedRooms.created(id, address: address, now: DispatchTime.now().uptimeNanoseconds)
        armExpiry()
        updateGauges()
        return ["chat": "created", "room": .string(id)]
    }

    /// Bound on a room's pin and description, which rooms keep and send to every joiner.
    static let maximumTextBytes = 256

    /// Rooms made by request that have been empty for `empty_room_seconds` go: once a second while
    /// there are any, and before a room is made (so the count it is checked against is current).
    func expireEmptyRooms() {
        for id in requestedRooms.expired(now: DispatchTime.now().uptimeNanoseconds, isEmpty: { rooms[$0]?.participants.isEmpty ?? true }) {
            if let r = rooms[id], r.participants.isEmpty { rooms.removeValue(forKey: id) }
        }
        armExpiry()
    }

    func armExpiry() {
        guard expiryTimer == 0, requestedRooms.count > 0 else { return }
        expiryTimer = host.schedule(afterMilliseconds: 1_000) { [weak self] in
            self?.expiryTimer = 0
            self?.expireEmptyRooms()
        }
    }

    func tooManyRoomsFromAddress() -> JSON {
        ChatError.tooManyRooms.reply("Too many rooms from your address (max_rooms_per_address is \(config.maxRoomsPerAddress)): leave one or wait for an empty one to expire")
    }

    func join(_ handle: PluginHandle, _ body: JSONObject) -> JSON {
        if let existing = members[handle.id] {
            return ChatError.alreadyInRoom.reply("Already in room '\(existing.room.id)'")
        }
        guard let value = body["room"] else { return ChatError.missingElement.reply("Missing element (room)") }
        guard let id = roomID(value), !id.isEmpty else { return ChatError.invalidElement.reply("Invalid element (room should be a non-empty string)") }
        guard let displayValue = body["display"] else { return ChatError.missingElement.reply("Missing element (display)") }
        guard let display = displayValue.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !display.isEmpty, display.count <= 64 else {
            return ChatError.invalidElement.reply("Invalid element (display should be a non-empty string of at most 64 characters)")
        }
        var room = rooms[id]
        if room == nil {
            guard config.createOnJoin else { return ChatError.noSuchRoom.reply("No such room '\(id)'") }
            expireEmptyRooms()
            guard requestedRooms.mayCreate(address: handle.clientAddress) else { return tooManyRoomsFromAddress() }
            let pin = body["pin"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            guard (pin?.utf8.count ?? 0) <= Self.maximumTextBytes else {
                return ChatError.invalidElement.reply("Invalid element (pin should be a string of at most \(Self.maximumTextBytes) bytes)")
            }
            room = makeRoom(id, pin: pin)
            guard room != nil else { return tooManyRooms() }
            // It counts against the address until its last participant leaves, when it goes.
            requestedRooms.created(id, address: handle.clientAddress, now: DispatchTime.now().uptimeNanoseconds)
            armExpiry()
        }
        let r = room!
        if let pin = r.pin, body["pin"]?.stringValue != pin {
            return ChatError.unauthorized.reply("Wrong pin for room '\(id)'")
        }
        if r.participant(named: display) != nil {
            return ChatError.displayTaken.reply("Display name '\(display)' is taken in room '\(id)'")
        }
        guard r.participants.count < config.maxParticipants else {
            return ChatError.roomFull.reply("Room '\(id)' is full (limit \(config.maxParticipants))")
        }
        var pid = UInt64.random(in: 1...0x1F_FFFF_FFFF_FFFF)
        while r.participants[pid] != nil { pid = UInt64.random(in: 1...0x1F_FFFF_FFFF_FFFF) }
        let p = Participant(id: pid, display: display, handle: handle, room: r, burst: config.burst)
        let others = r.participants.values
        let notice: JSON = ["chat": "join", "room": .string(r.id), "participant": p.summary]
        for other in others { host.pushEvent(to: other.handle, event: notice) }
        r.participants[pid] = p
        members[handle.id] = p
        host.publish(topic: "chat.join", event: ["room": .string(r.id), "participant": p.summary, "date": .string(timestamp())])
        // Who is in a meeting, for the plugins that serve only them (TURN credentials).
        host.publish(topic: PresenceEvent.topic, event: PresenceEvent(handle, room: r.id, role: "chat", present: true).json)
        updateGauges()
        var joined: JSONObject = [
            "chat": "joined", "room": .string(r.id), "description": .string(r.description),
            "id": JSON(pid), "display": .string(display),
            "participants": .array(others.sorted { $0.display < $1.display }.map(\.summary)),
            "history": .array(r.history),
        ]
        if let link = links.link(either: r.id) { joined["stream_link"] = .object(link.settings) }
        return .object(joined)
    }

    func leaveRequest(_ handle: PluginHandle) -> JSON {
        guard let p = members[handle.id] else { return ChatError.notInRoom.reply("Not in a room") }
        let room = p.room.id
        leave(p)
        return ["chat": "left", "room": .string(room)]
    }

    func leave(_ p: Participant) {
        let r = p.room
        r.participants.removeValue(forKey: p.id)
        members.removeValue(forKey: p.handle.id)
        let notice: JSON = ["chat": "leave", "room": .string(r.id), "participant": p.summary]
        for other in r.participants.values { host.pushEvent(to: other.handle, event: notice) }
        host.publish(topic: "chat.leave", event: ["room": .string(r.id), "participant": p.summary, "date": .string(timestamp())])
        host.publish(topic: PresenceEvent.topic, event: PresenceEvent(p.handle, room: r.id, role: "chat", present: false).json)
        if r.participants.isEmpty && !r.fromConfig {
            rooms.removeValue(forKey: r.id)
            requestedRooms.removed(r.id)
        }
        updateGauges()
    }

    func message(_ handle: PluginHandle, _ body: JSONObject) -> JSON {
        guard let p = members[handle.id] else { return ChatError.notInRoom.reply("Join a room before sending messages") }
        let text = body["text"]
        let payload = body["payload"]
        if text == nil && payload == nil { return ChatError.missingElement.reply("Missing element (text or payload)") }
        if let text, text.stringValue == nil { return ChatError.invalidElement.reply("Invalid element (text should be a string)") }
        var target: ChatTarget?
        if let t = body["target"] {
            guard let name = t.stringValue, let parsed = ChatTarget(rawValue: name) else {
                return ChatError.invalidElement.reply("Invalid element (target should be \"room\" or \"stream\")")
            }
            guard body["to"] == nil else { return ChatError.invalidElement.reply("Invalid element (target is for messages to everyone, not with to)") }
            target = parsed
        }
        let route = links.route(from: p.room.id, target: target)
        switch route {
        case .refusedNotLinked:
            return ChatError.notLinked.reply("Room '\(p.room.id)' has no stream link, so target names no other chat")
        case .refusedRoomWritesOff:
            return ChatError.readOnly.reply("The stream chat is read-only for the room (its stream_chat_write is off)")
        case .refusedViewerWrite:
            return ChatError.readOnly.reply("Viewers cannot write to the room's chat: they may only read it")
        case .ownRoom, .intoStreamChat:
            break
        }
        var size = 0
        if let text { size += text.serializedBytes.count }
        if let payload { size += payload.serializedBytes.count }
        guard size <= config.maxMessageBytes else {
            counters.withLock { $0.rejected += 1 }
            return ChatError.messageTooLarge.reply("Message too large: \(size) bytes, the limit is \(config.maxMessageBytes)")
        }
        guard takeToken(p) else {
            counters.withLock { $0.rejected += 1 }
            return ChatError.rateLimited.reply("Too many messages: at most \(config.messagesPerSecond) per second (burst \(Int(config.burst)))")
        }
        if case .intoStreamChat(let streamChat) = route {
            return postAsRoom(p, into: streamChat, text: text, payload: payload)
        }
        var recipient: Participant?
        if let to = body["to"] {
            guard let name = to.stringValue else { return ChatError.invalidElement.reply("Invalid element (to should be a display name)") }
            guard let r = p.room.participant(named: name), r.id != p.id else {
                return ChatError.noSuchParticipant.reply("No participant '\(name)' in room '\(p.room.id)'")
            }
            recipient = r
        }
        var event: JSONObject = [
            "chat": "message", "room": .string(p.room.id), "from": p.summary,
            "private": .bool(recipient != nil), "date": .string(timestamp()),
        ]
        if let text { event["text"] = text }
        if let payload { event["payload"] = payload }
        let message = JSON.object(event)
        if let recipient {
            host.pushEvent(to: recipient.handle, event: message)
            counters.withLock { $0.privateMessages += 1 }
        } else {
            for other in p.room.participants.values where other.id != p.id {
                host.pushEvent(to: other.handle, event: message)
            }
            keep(message, in: p.room)
            counters.withLock { $0.messages += 1 }
            if case .ownRoom(let copy?) = route, let text, let viewers = rooms[copy] {
                // The viewers' read-only copy: the text only (a payload may carry anything the room
                // shares among itself), under the stream chat's id, not kept in its history (it
                // would outlive `viewers_read_chat` being turned off).
                let copyEvent: JSON = [
                    "chat": "message", "room": .string(viewers.id), "from": p.summary, "private": false,
                    "room_chat": true, "date": event["date"]!, "text": text,
                ]
                for v in viewers.participants.values { host.pushEvent(to: v.handle, event: copyEvent) }
            }
        }
        var bus = event
        bus["chat"] = nil
        if let recipient { bus["to"] = recipient.summary }
        host.publish(topic: "chat.message", event: .object(bus))
        var reply: JSONObject = ["chat": "sent", "room": .string(p.room.id)]
        if let recipient { reply["to"] = recipient.summary }
        return .object(reply)
    }

    /// A room participant's message into the room's stream chat, as "<name> (room)": kept in the
    /// stream chat's history like any message there.
    func postAsRoom(_ p: Participant, into streamChat: String, text: JSON?, payload: JSON?) -> JSON {
        // Nobody watching yet: the message waits in the history for the first viewers.
        guard let room = rooms[streamChat] ?? makeRoom(streamChat, pin: nil) else { return tooManyRooms() }
        updateGauges()
        var event: JSONObject = [
            "chat": "message", "room": .string(room.id),
            "from": ["id": JSON(p.id), "display": .string("\(p.display) (room)")],
            "from_room": true, "private": false, "date": .string(timestamp()),
        ]
        if let text { event["text"] = text }
        if let payload { event["payload"] = payload }
        let message = JSON.object(event)
        for member in room.participants.values { host.pushEvent(to: member.handle, event: message) }
        keep(message, in: room)
        counters.withLock { $0.messages += 1 }
        var bus = event
        bus["chat"] = nil
        host.publish(topic: "chat.message", event: .object(bus))
        return ["chat": "sent", "room": .string(room.id)]
    }

    /// A room made on demand (a join, or the room's first message to its viewers). A stream chat's
    /// pin is always its stream id, whoever makes it. Nil when the room limit is reached.
    func makeRoom(_ id: String, pin: String?) -> Room? {
        guard rooms.count < config.maxRooms else { return nil }
        let room = Room(id: id, description: id, pin: links.link(streamChat: id)?.streamID ?? pin, historyLimit: config.history, fromConfig: false)
        rooms[id] = room
        return room
    }

    func tooManyRooms() -> JSON {
        ChatError.tooManyRooms.reply("Too many rooms (limit \(config.maxRooms))")
    }

    func keep(_ message: JSON, in room: Room) {
        guard room.historyLimit > 0 else { return }
        room.history.append(message)
        if room.history.count > room.historyLimit { room.history.removeFirst(room.history.count - room.historyLimit) }
    }

    func participants(_ handle: PluginHandle, _ body: JSONObject) -> JSON {
        let room: Room?
        if let value = body["room"] {
            guard let id = roomID(value) else { return ChatError.invalidElement.reply("Invalid element (room should be a string)") }
            room = rooms[id]
            guard let r = room else { return ChatError.noSuchRoom.reply("No such room '\(id)'") }
            if let pin = r.pin, members[handle.id]?.room !== r, body["pin"]?.stringValue != pin {
                return ChatError.unauthorized.reply("Wrong pin for room '\(id)'")
            }
        } else {
            room = members[handle.id]?.room
            guard room != nil else { return ChatError.missingElement.reply("Missing element (room)") }
        }
        return ["chat": "participants", "room": .string(room!.id), "participants": room!.roster]
    }

    func list() -> JSON {
        let list = rooms.values.sorted { $0.id < $1.id }.map { r -> JSON in
            ["room": .string(r.id), "description": .string(r.description), "pin_required": .bool(r.pin != nil), "num_participants": JSON(r.participants.count)]
        }
        return ["chat": "rooms", "rooms": .array(list)]
    }

    func exists(_ body: JSONObject) -> JSON {
        guard let value = body["room"] else { return ChatError.missingElement.reply("Missing element (room)") }
        guard let id = roomID(value) else { return ChatError.invalidElement.reply("Invalid element (room should be a string)") }
        return ["chat": "exists", "room": .string(id), "exists": .bool(rooms[id] != nil)]
    }

    // MARK: - Helpers

    func takeToken(_ p: Participant) -> Bool {
        let now = Date()
        p.tokens = min(config.burst, p.tokens + now.timeIntervalSince(p.lastRefill) * config.messagesPerSecond)
        p.lastRefill = now
        guard p.tokens >= 1 else { return false }
        p.tokens -= 1
        return true
    }

    func timestamp() -> String {
        Date().formatted(.iso8601)
    }

    func updateGauges() {
        let (r, p) = (rooms.count, members.count)
        counters.withLock { $0.rooms = r; $0.participants = p }
    }

    func metricsText() -> String {
        let c = counters.withLock { $0 }
        return """
            # HELP atrium_chat_rooms Chat rooms open now.
            # TYPE atrium_chat_rooms gauge
            atrium_chat_rooms \(c.rooms)
            # HELP atrium_chat_participants Chat participants joined now.
            # TYPE atrium_chat_participants gauge
            atrium_chat_participants \(c.participants)
            # HELP atrium_chat_messages_total Chat messages delivered, by kind.
            # TYPE atrium_chat_messages_total counter
            atrium_chat_messages_total{kind="broadcast"} \(c.messages)
            atrium_chat_messages_total{kind="private"} \(c.privateMessages)
            # HELP atrium_chat_rejected_total Chat messages refused by the size or rate limit.
            # TYPE atrium_chat_rejected_total counter
            atrium_chat_rejected_total \(c.rejected)

            """
    }

    func adminMessage(_ body: JSONObject) -> JSON? {
        switch body["request"]?.stringValue {
        case "list": return list()
        case "exists": return exists(body)
        case "create": return create(body)
        default: return ChatError.invalidRequest.reply("Unknown admin request")
        }
    }
}
