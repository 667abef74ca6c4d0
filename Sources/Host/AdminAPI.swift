import AtriumJSON
import Dispatch
import RTC

/// The admin API (POST /admin[/<session>[/<handle>]]): Janus's admin verbs that matter to an
/// operator, answered only with the configured `admin_secret`.
extension HostCore {
    func processAdmin(bytes: [UInt8], pathSessionID: UInt64?, pathHandleID: UInt64?, reply: @escaping @Sendable (JSON) -> Void) {
        let json: JSON
        switch JanusError.parseRequest(bytes) {
        case .success(let parsed): json = parsed
        case .failure(let error): return reply(error.envelope(transaction: nil))
        }
        guard case .object(let request) = json else {
            reply(JanusError(.invalidJSONObject, "JSON error: not an object").envelope(transaction: nil))
            return
        }
        guard case .string(let transaction)? = request["transaction"] else {
            reply((request["transaction"] == nil ? JanusError.missing("transaction") : .wrongType("transaction", expected: "a string")).envelope(transaction: nil))
            return
        }
        guard case .string(let verb)? = request["janus"] else {
            reply((request["janus"] == nil ? JanusError.missing("janus") : .wrongType("janus", expected: "a string")).envelope(transaction: transaction))
            return
        }
        @Sendable func fail(_ e: JanusError) { reply(e.envelope(transaction: transaction)) }
        @Sendable func ok(_ extra: JSONObject) {
            var o: JSONObject = ["janus": "success", "transaction": .string(transaction)]
            for (k, v) in extra { o[k] = v }
            reply(.object(o))
        }
        if verb == "ping" {
            reply(["janus": "pong", "transaction": .string(transaction)])
            return
        }
        guard let secret = config.admin.secret, request["admin_secret"]?.stringValue == secret else {
            fail(JanusError(.unauthorized, "Unauthorized request (wrong or missing secret/token)"))
            return
        }
        let sessionID = pathSessionID ?? request["session_id"]?.intValue.map { UInt64(max($0, 0)) }
        let handleID = pathHandleID ?? request["handle_id"]?.intValue.map { UInt64(max($0, 0)) }

        switch verb {
        case "info":
            var info = serverInfo(transaction: transaction).objectValue ?? [:]
            info["janus"] = "server_info"
            reply(.object(info))
        case "get_status":
            let (sessions, handles) = counts
            ok(["status": [
                "sessions": JSON(sessions), "handles": JSON(handles),
                "session_timeout": .int(Int64(config.sessions.timeoutSeconds)),
                "uptime_seconds": .int(Int64(nanoseconds(from: startedAt, to: monotonicNanoseconds()) / 1_000_000_000)),
            ]])
        case "list_plugins":
            var list = JSONObject()
            for p in plugins { list[p.id] = p.info }
            ok(["plugins": .object(list)])
        case "list_sessions":
            let ids = registry.withLock { r in r.sessions.keys.sorted() }
            ok(["sessions": .array(ids.map { JSON($0) })])
        case "list_handles":
            guard let sessionID else { return fail(.missing("session_id")) }
            let ids: [UInt64]? = registry.withLock { r in r.sessions[sessionID].map { $0.handles.keys.sorted() } }
            guard let ids else { return fail(.noSession(sessionID)) }
            ok(["session_id": JSON(sessionID), "handles": .array(ids.map { JSON($0) })])
        case "handle_info":
            guard let sessionID else { return fail(.missing("session_id")) }
            guard let handleID else { return fail(.missing("handle_id")) }
            let found: (Session?, Handle?) = registry.withLock { r in
                let s = r.sessions[sessionID]
                return (s, s?.handles[handleID])
            }
            guard found.0 != nil else { return fail(.noSession(sessionID)) }
            guard let handle = found.1 else { return fail(.noHandle(handleID, session: sessionID)) }
            handle.plugin.queue.async { [self] in
                guard registry.withLock({ _ in handle.state != .detaching }) else {
                    return fail(.noHandle(handleID, session: sessionID))
                }
                let specific = handle.plugin.queryHandle(handle) ?? .object([:])
                let (labels, state) = registry.withLock { _ in (handle.labels, handle.state) }
                let now = monotonicNanoseconds()
                ok([
                    "session_id": JSON(sessionID), "handle_id": JSON(handleID),
                    "info": [
                        "session_id": JSON(sessionID),
                        "session_last_activity": .int(Int64(nanoseconds(from: handle.session.lastActivity, to: now) / 1000)),
                        "session_transport": .string(handle.session.connection?.transportName ?? "http"),
                        "handle_id": JSON(handleID),
                        "opaque_id": .string(handle.opaqueID),
                        "created": .int(Int64(nanoseconds(from: handle.createdAt, to: now) / 1000)),
                        "plugin": .string(handle.plugin.id),
                        "attached_as": .string(handle.attachedAs),
                        "state": .string("\(state)"),
                        "labels": labels,
                        "plugin_specific": specific,
                        "webrtc": webRTCSummary(handle),
                    ],
                ])
            }
        case "destroy_session":
            guard let sessionID else { return fail(.missing("session_id")) }
            guard let session = registry.withLock({ $0.sessions[sessionID] }) else { return fail(.noSession(sessionID)) }
            destroySession(session, reason: "admin")
            ok([:])
        case "detach_handle":
            guard let sessionID else { return fail(.missing("session_id")) }
            guard let handleID else { return fail(.missing("handle_id")) }
            guard let handle = registry.withLock({ $0.sessions[sessionID]?.handles[handleID] }) else {
                return fail(.noHandle(handleID, session: sessionID))
            }
            detach(handle, notify: true)
            ok([:])
        case "accept_new_sessions":
            guard case .bool(let accept)? = request["accept"] else { return fail(.missing("accept")) }
            registry.withLock { $0.acceptingSessions = accept }
            ok([:])
        case "message_plugin":
            guard case .string(let name)? = request["plugin"] else { return fail(.missing("plugin")) }
            guard case .object? = request["request"] else { return fail(.missing("request")) }
            guard let plugin = pluginsByName[name] else { return fail(JanusError(.pluginNotFound, "No such plugin '\(name)'")) }
            let body = request["request"]!
            plugin.queue.async {
                switch plugin.adminMessage(body) {
                case nil: fail(JanusError(.pluginMessage, "Plugin '\(name)' has no admin requests"))
                case .reply(let data)?: ok(["response": data])
                case .ack?: fail(JanusError(.pluginMessage, "Plugin '\(name)' did not answer synchronously"))
                case .error(let reason)?: fail(JanusError(.pluginMessage, reason))
                }
            }
        default:
            fail(JanusError(.unknownRequest, "Unknown request '\(verb)'"))
        }
    }

    /// A handle's PeerConnection as handle_info shows it, with the media loop it lives on.
    func webRTCSummary(_ handle: Handle) -> JSON {
        guard let media = loops.engine(of: handle) else { return ["peerconnection": false] }
        let summary = media.sync { media.peer(for: handle)?.summary ?? ["peerconnection": false] }
        guard var o = summary.objectValue else { return summary }
        o["media_loop"] = .int(Int64(media.index))
        return .object(o)
    }
}
