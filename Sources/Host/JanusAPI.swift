import AtriumJSON
import Dispatch
import Logging
import PluginAPI

/// One Janus API request being answered: the verbs of reference §2.2, with Janus's checks in
/// Janus's order, so that every outcome (good or bad) is the one Janus 1.1.2 gives.
struct Call: Sendable {
    let core: HostCore
    let request: JSONObject
    let verb: String
    let transaction: String
    let sessionID: UInt64
    let handleID: UInt64
    /// A handle_id was given but is not a positive integer.
    let handleIDInvalid: Bool
    let context: RequestContext
    let reply: @Sendable (JSON) -> Void

    func fail(_ error: JanusError, session: UInt64? = nil) {
        core.finish(error.envelope(transaction: transaction, sessionID: session ?? core.nonZero(sessionID)), verb: verb, reply: reply)
    }

    func succeed(_ kind: String = "success", session: Bool = true, extra: JSONObject = [:]) {
        var o: JSONObject = ["janus": .string(kind)]
        if session { o["session_id"] = .int(Int64(bitPattern: sessionID)) }
        o["transaction"] = .string(transaction)
        for (k, v) in extra { o[k] = v }
        core.finish(.object(o), verb: verb, reply: reply)
    }

    func run() {
        if sessionID == 0 && handleID == 0 && !handleIDInvalid {
            switch verb {
            case "info": core.finish(core.serverInfo(transaction: transaction), verb: verb, reply: reply)
            case "ping": succeed("pong", session: false)
            case "create": create()
            default: fail(.unhandled(verb))
            }
            return
        }
        if sessionID == 0 {
            fail(JanusError(.sessionNotFound, "Session not found"))
            return
        }
        if handleIDInvalid {
            fail(JanusError(.handleNotFound, "Handle not found"))
            return
        }
        guard let session = core.findSession(sessionID) else {
            fail(.noSession(sessionID))
            return
        }
        var handle: Handle?
        if handleID != 0 {
            handle = core.registry.withLock { _ in
                guard let h = session.handles[handleID], h.state != .detaching else { return nil }
                return h
            }
            guard handle != nil else {
                fail(.noHandle(handleID, session: sessionID))
                return
            }
        }
        switch verb {
        case "keepalive": succeed("ack")
        case "attach": handle == nil ? attach(session) : fail(.unhandled(verb))
        case "destroy": handle == nil ? destroy(session) : fail(.unhandled(verb))
        case "claim": handle == nil ? claim(session) : fail(.unhandled(verb))
        case "detach": handle.map(detach) ?? fail(.unhandled(verb))
        case "hangup": handle.map(hangup) ?? fail(.unhandled(verb))
        case "message": handle.map(message) ?? fail(.unhandled(verb))
        case "trickle": handle.map(trickle) ?? fail(.unhandled(verb))
        default: fail(JanusError(.unknownRequest, "Unknown request '\(verb)'"))
        }
    }

    // MARK: - Root

    static let maximumOpaqueIDBytes = 256

    func create() {
        var forcedID: UInt64?
        if let idValue = request["id"] {
            guard case .int(let i) = idValue, i >= 0 else {
                fail(.wrongType("id", expected: "a positive integer"))
                return
            }
            if i > 0 { forcedID = UInt64(i) }
        }
        let config = core.config
        let outcome: Result<UInt64, JanusError> = core.registry.withLock { r in
            guard r.acceptingSessions else {
                return .failure(JanusError(.notAcceptingSessions, "This server is not accepting new sessions"))
            }
            guard r.sessions.count < config.sessions.maxSessions else {
                return .failure(JanusError(.notAcceptingSessions, "Too many sessions (limit \(config.sessions.maxSessions))"))
            }
            var id = forcedID ?? randomJanusID()
            if let forcedID, r.sessions[forcedID] != nil {
                return .failure(JanusError(.sessionConflict, "Session ID already in use"))
            }
            while r.sessions[id] != nil { id = randomJanusID() }
            guard core.shares.reserveSession(context.client) else {
                return .failure(JanusError(.notAcceptingSessions, "Too many sessions from your address (limit \(config.limits.sessionsPerAddress))"))
            }
            r.sessions[id] = Session(id: id, connection: context.connection, queueCapacity: config.sessions.maxQueuedEvents,
                                     queueByteCapacity: config.sessions.maxQueuedEventBytes, client: context.client)
            return .success(id)
        }
        switch outcome {
        case .failure(let e): fail(e, session: forcedID)
        case .success(let id):
            core.metrics.sessionCreated()
            core.finish(["janus": "success", "transaction": .string(transaction), "data": ["id": JSON(id)]], verb: verb, reply: reply)
        }
    }

    // MARK: - Session

    func attach(_ session: Session) {
        guard let pluginValue = request["plugin"] else {
            fail(.missing("plugin"))
            return
        }
        guard case .string(let pluginName) = pluginValue else {
            fail(.wrongType("plugin", expected: "a string"))
            return
        }
        guard let plugin = core.pluginsByName[pluginName] else {
            fail(JanusError(.pluginNotFound, "No such plugin '\(pluginName)'"))
            return
        }
        var opaqueID = ""
        if let o = request["opaque_id"] {
            guard case .string(let s) = o else {
                fail(.wrongType("opaque_id", expected: "a string"))
                return
            }
            // Kept for the handle's life (twice: for Swift and for the plugin), so bounded like
            // every string a client can make the server hold; janus.js sends about 20 bytes.
            guard s.utf8.count <= Self.maximumOpaqueIDBytes else {
                fail(.wrongType("opaque_id", expected: "a string of at most \(Self.maximumOpaqueIDBytes) bytes"))
                return
            }
            opaqueID = s
        }
        let limit = core.config.sessions.maxHandlesPerSession
        let addressLimit = core.config.limits.handlesPerAddress
        let call = self
        let refusal: String? = core.registry.withLock { r in
            guard !session.destroyed, session.handles.count < limit else { return "too many handles in this session (limit \(limit))" }
            guard core.shares.reserveHandle(context.client) else { return "too many handles from your address (limit \(addressLimit))" }
            var id = randomJanusID()
            while session.handles[id] != nil { id = randomJanusID() }
            let handle = Handle(id: id, session: session, plugin: plugin, opaqueID: opaqueID, attachedName: pluginName, client: context.client)
            session.handles[id] = handle
            r.handlesByAddress[handle.address] = handle
            // Enqueued under the lock: a destroy that removes the handle queues handle_destroyed after this.
            plugin.queue.async { call.finishAttach(handle) }
            return nil
        }
        if let refusal {
            fail(JanusError(.pluginAttach, "Couldn't attach to plugin: \(refusal)"))
        }
    }

    /// On the plugin's control context: handle_created, then the reply.
    private func finishAttach(_ handle: Handle) {
        let plugin = handle.plugin
        if let refusal = plugin.handleCreated(handle) {
            core.registry.withLock { r in
                handle.state = .detaching
                handle.session.handles.removeValue(forKey: handle.id)
                if r.handlesByAddress.removeValue(forKey: handle.address) != nil { core.shares.releaseHandle(handle.client) }
            }
            fail(JanusError(.pluginAttach, "Couldn't attach to plugin: error '\(refusal)'"))
            return
        }
        core.registry.withLock { _ in
            if handle.state == .attaching { handle.state = .ready }
        }
        core.metrics.handleCreated()
        succeed(extra: ["data": ["id": JSON(handle.id)]])
    }

    func destroy(_ session: Session) {
        core.destroySession(session, reason: "destroy request")
        succeed()
    }

    func claim(_ session: Session) {
        core.registry.withLock { _ in
            session.connection = context.connection
            session.orphanedAt = nil
        }
        succeed()
        // Events that waited in the queue while the session had no WebSocket follow it.
        if let connection = context.connection {
            for event in session.longPoll.takeAll() { connection.send(event) }
        }
    }

    // MARK: - Handle

    func detach(_ handle: Handle) {
        // Reply first, then the plugin lets go and the client hears "detached" (Janus's order).
        succeed()
        core.detach(handle, notify: true)
    }

    func hangup(_ handle: Handle) {
        // Janus's order: the hangup event, then success; without a PeerConnection, success alone.
        if core.hangupRequested(handle) {
            core.deliverEvent("hangup", about: handle, ["reason": .string(HangupReason.client.text)])
        }
        succeed()
    }

    func message(_ handle: Handle) {
        guard let bodyValue = request["body"] else {
            fail(.missing("body"))
            return
        }
        guard case .object = bodyValue else {
            fail(.wrongType("body", expected: "an object"))
            return
        }
        var jsep: JSON?
        if let j = request["jsep"] {
            guard case .object(let o) = j else {
                fail(JanusError(.invalidJSONObject, "Invalid jsep object"))
                return
            }
            // Janus checks type, then sdp: missing, then wrong type.
            var strings: [String: String] = [:]
            for key in ["type", "sdp"] {
                guard let value = o[key] else {
                    fail(JanusError(.missingMandatoryElement, "JSEP error: missing mandatory element (\(key))"))
                    return
                }
                guard case .string(let text) = value else {
                    fail(JanusError(.invalidElementType, "JSEP error: invalid element type (\(key) should be a string)"))
                    return
                }
                strings[key] = text
            }
            let type = strings["type"]!
            let sdp = strings["sdp"]!
            let kind = type.lowercased()
            guard kind == "offer" || kind == "answer" else {
                fail(JanusError(.jsepUnknownType, "JSEP error: unknown message type '\(type)'"))
                return
            }
            guard sdp.hasPrefix("v=") else {
                fail(JanusError(.jsepInvalidSDP, "Invalid SDP (doesn't start with v=)"))
                return
            }
            if let error = core.acceptClientJSEP(type: kind, sdp: sdp, handle: handle) {
                fail(error)
                return
            }
            jsep = j
        }
        let plugin = handle.plugin
        let call = self
        let jsepValue = jsep
        plugin.queue.async {
            guard core.registry.withLock({ _ in handle.state != .detaching }) else {
                call.fail(.noHandle(handle.id, session: handle.session.id))
                return
            }
            plugin.deferredEvents = []
            let result = plugin.handleMessage(handle, transaction: transaction, body: bodyValue, jsep: jsepValue)
            switch result {
            case .reply(let data):
                call.succeed(extra: [
                    "sender": JSON(handle.id),
                    "plugindata": ["plugin": .string(handle.attachedAs), "data": data],
                ])
            case .ack(let hint):
                var extra: JSONObject = [:]
                if let hint { extra["hint"] = .string(hint) }
                call.succeed("ack", extra: extra)
            case .error(let reason):
                call.fail(JanusError(.pluginMessage, reason))
            }
            let deferred = plugin.deferredEvents ?? []
            plugin.deferredEvents = nil
            for send in deferred { send() }
        }
    }

    func trickle(_ handle: Handle) {
        let candidate = request["candidate"]
        let candidates = request["candidates"]
        if candidate == nil && candidates == nil {
            fail(.missing("candidate|candidates"))
            return
        }
        if candidate != nil && candidates != nil {
            fail(JanusError(.invalidJSON, "Can't have both candidate and candidates"))
            return
        }
        // Without a PeerConnection the candidates have nowhere to go yet; Janus acks and queues.
        succeed("ack")
    }
}

extension HostCore {
    /// The `server_info` reply, with Janus's keys.
    func serverInfo(transaction: String?) -> JSON {
        var plugins = JSONObject()
        for p in self.plugins {
            var info = p.info.objectValue ?? [:]
            info["package"] = .string(p.id)
            plugins[p.id] = .object(info)
            for alias in p.aliases {
                info["package"] = .string(alias)
                plugins[alias] = .object(info)
            }
        }
        var o: JSONObject = ["janus": "server_info"]
        if let transaction { o["transaction"] = .string(transaction) }
        let accepting = registry.withLock { $0.acceptingSessions }
        let entries: [(String, JSON)] = [
            ("name", "Atrium"),
            ("version", .int(Int64(AtriumVersion.number))),
            ("version_string", .string(AtriumVersion.string)),
            ("author", "The Atrium authors"),
            ("commit-hash", "not-a-git-repo"),
            ("compile-time", ""),
            ("log-to-stdout", true),
            ("log-to-file", false),
            ("data_channels", false),
            ("accepting-new-sessions", .bool(accepting)),
            ("session-timeout", .int(Int64(config.sessions.timeoutSeconds))),
            ("reclaim-session-timeout", .int(Int64(config.sessions.reclaimSeconds))),
            ("candidates-timeout", 45),
            ("server-name", .string(config.serverName)),
            ("local-ip", "0.0.0.0"),
            ("ipv6", false),
            ("ice-lite", true),
            ("ice-tcp", false),
            ("full-trickle", false),
            ("mdns-enabled", false),
            ("min-nack-queue", 200),
            ("twcc-period", 200),
            ("dtls-mtu", 1200),
            ("static-event-loops", 0),
            ("api_secret", .bool(config.apiSecret != nil)),
            ("auth_token", false),
            ("event_handlers", false),
            ("opaqueid_in_api", false),
            ("dependencies", [:]),
            ("transports", [
                "atrium.transport.http": ["name": "HTTP transport", "version_string": .string(AtriumVersion.string), "version": .int(Int64(AtriumVersion.number))],
                "atrium.transport.websockets": ["name": "WebSocket transport", "version_string": .string(AtriumVersion.string), "version": .int(Int64(AtriumVersion.number))],
            ]),
            ("events", [:]),
            ("loggers", [:]),
            ("plugins", .object(plugins)),
        ]
        for (k, v) in entries { o[k] = v }
        return .object(o)
    }
}

/// The host's version, reported by `info` and the admin API.
public enum AtriumVersion {
    public static let string = "0.1.0"
    public static let number = 1
}
