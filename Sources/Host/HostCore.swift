public import AtriumJSON
import Dispatch
import Logging
import PluginAPI
import RTC
import Synchronization

/// Who sent a request and where its path put it.
public struct RequestContext: Sendable {
    /// The WebSocket the request came on; nil for HTTP, whose sessions deliver through long polls.
    public var connection: (any ClientConnection)?
    public var pathSessionID: UInt64?
    public var pathHandleID: UInt64?
    /// Whether the HTTP path named a session (even an unparseable one).
    public var pathHasSession = false
    /// Who sent it, for the fair shares per client address.
    public var client: ClientAddress

    public init(connection: (any ClientConnection)?, pathSessionID: UInt64? = nil, pathHandleID: UInt64? = nil, client: ClientAddress = .unknown) {
        self.connection = connection
        self.pathSessionID = pathSessionID
        self.pathHandleID = pathHandleID
        self.pathHasSession = pathSessionID != nil
        self.client = client
    }
}

/// The sessions, handles and plugins of one running host, and the Janus API over them.
///
/// Transports hand it parsed requests; it answers through a reply callback (at once for
/// core requests, from the plugin's control context for requests a plugin answers) and delivers
/// events to each session's connection or long-poll queue. All state is behind one lock.
public final class HostCore: Sendable {
    struct Registry {
        var sessions: [UInt64: Session] = [:]
        var handlesByAddress: [UInt: Handle] = [:]
        var acceptingSessions = true
    }

    let config: HostConfig
    let logger: Logger
    let plugins: [LoadedPlugin]
    let loops: MediaLoops
    let pluginsByName: [String: LoadedPlugin]
    let registry = Mutex(Registry())
    let metrics = CoreMetrics()
    /// What each client address holds and may still ask for.
    let shares: ClientShares
    /// Whose X-Forwarded-For names the client (`trusted_proxies`).
    let proxyTrust: ProxyTrust
    /// Bytes written to WebSocket clients that their sockets have not taken yet.
    let webSocketPending = PendingBytes()
    let startedAt = monotonicNanoseconds()
    let sessionTimeoutNanos: UInt64
    let reclaimNanos: UInt64
    let watchdog: Watchdog

    init(config: HostConfig, plugins: [LoadedPlugin], loops: MediaLoops, logger: Logger) {
        self.config = config
        self.logger = logger
        self.plugins = plugins
        self.loops = loops
        var byName: [String: LoadedPlugin] = [:]
        for p in plugins {
            byName[p.id] = p
            for a in p.aliases { byName[a] = p }
        }
        pluginsByName = byName
        shares = ClientShares(limits: ClientShares.Limits(config.limits))
        proxyTrust = ProxyTrust(proxies: config.trustedProxies)
        sessionTimeoutNanos = UInt64(config.sessions.timeoutSeconds * 1e9)
        reclaimNanos = UInt64(config.sessions.reclaimSeconds * 1e9)
        watchdog = Watchdog(plugins: plugins, loops: loops.engines, logger: logger,
                            controlMilliseconds: config.watchdog.controlMilliseconds, mediaMilliseconds: config.watchdog.mediaMilliseconds)
        for p in plugins { p.core = self }
        for engine in loops.engines {
            engine.core = self
            engine.tapPlugins = plugins.filter { $0.tap != nil }
        }
    }

    // MARK: - Entry from transports

    /// Processes one request body (raw bytes as received). `reply` is called exactly once.
    public func process(bytes: [UInt8], context: RequestContext, reply: @escaping @Sendable (JSON) -> Void) {
        switch JanusError.parseRequest(bytes) {
        case .success(let json): process(json: json, context: context, reply: reply)
        case .failure(let error): finish(error.envelope(transaction: nil), verb: nil, reply: reply)
        }
    }

    /// Processes one parsed request. `reply` is called exactly once.
    public func process(json: JSON, context: RequestContext, reply: @escaping @Sendable (JSON) -> Void) {
        let request: JSONObject
        switch json {
        case .object(let o):
            request = o
        case .array where context.connection != nil:
            // Janus's WebSocket transport hands arrays to the core, whose first check is the transaction.
            finish(JanusError.missing("transaction").envelope(transaction: nil), verb: nil, reply: reply)
            return
        case .array:
            finish(JanusError(.invalidJSONObject, "JSON error: not an object").envelope(transaction: nil), verb: nil, reply: reply)
            return
        default:
            // Janus parses without JSON_DECODE_ANY: a bare scalar is not a JSON text to it.
            finish(JanusError(.invalidJSON, "JSON error: on line 1: '[' or '{' expected near the start").envelope(transaction: nil), verb: nil, reply: reply)
            return
        }
        // Ids are read as Janus reads them: any integer, reinterpreted as unsigned.
        var sessionID: UInt64 = 0
        var handleID: UInt64 = 0
        var handleIDInvalid = false
        if case .int(let s)? = request["session_id"] { sessionID = UInt64(bitPattern: s) }
        if let h = request["handle_id"], !h.isNull {
            if case .int(let i) = h, i > 0 { handleID = UInt64(i) } else { handleIDInvalid = true }
        }
        if context.pathHasSession {
            let pathSession = context.pathSessionID ?? 0
            if sessionID != 0 && pathSession != 0 && sessionID != pathSession {
                finish(JanusError(.invalidRequestPath, "Conflicting session ID (payload and path)").envelope(transaction: nil), verb: nil, reply: reply)
                return
            }
            if pathSession != 0 { sessionID = pathSession }
            if let pathHandle = context.pathHandleID {
                if handleID != 0 && handleID != pathHandle {
                    finish(JanusError(.invalidRequestPath, "Conflicting handle ID (payload and path)").envelope(transaction: nil), verb: nil, reply: reply)
                    return
                }
                handleID = pathHandle
                handleIDInvalid = false
            }
        }
        let envelopeSession = nonZero(sessionID)
        // Validation as Janus does it: transaction, janus, then id; failures carry no transaction.
        let checks: [(String, String, (JSON) -> Bool)] = [
            ("transaction", "a string", { $0.stringValue != nil }),
            ("janus", "a string", { $0.stringValue != nil }),
        ]
        for (key, expected, valid) in checks {
            guard let value = request[key] else {
                finish(JanusError.missing(key).envelope(transaction: nil, sessionID: envelopeSession), verb: nil, reply: reply)
                return
            }
            guard valid(value) else {
                finish(JanusError.wrongType(key, expected: expected).envelope(transaction: nil, sessionID: envelopeSession), verb: nil, reply: reply)
                return
            }
        }
        if let id = request["id"], !id.isNull {
            guard case .int(let i) = id, i >= 0 else {
                finish(JanusError.wrongType("id", expected: "a positive integer").envelope(transaction: nil, sessionID: envelopeSession), verb: nil, reply: reply)
                return
            }
        }
        let transaction = request["transaction"]!.stringValue!
        let verb = request["janus"]!.stringValue!
        let call = Call(core: self, request: request, verb: verb, transaction: transaction, sessionID: sessionID, handleID: handleID, handleIDInvalid: handleIDInvalid, context: context, reply: reply)
        if let secret = config.apiSecret, !["info", "ping"].contains(verb), request["apisecret"]?.stringValue != secret {
            call.fail(JanusError(.unauthorized, "Unauthorized request (wrong or missing secret/token)"))
            return
        }
        call.run()
    }

    func nonZero(_ id: UInt64) -> UInt64? { id == 0 ? nil : id }

    /// Every reply passes here: counted by verb and error code, then sent.
    func finish(_ message: JSON, verb: String?, reply: @Sendable (JSON) -> Void) {
        metrics.count(verb: verb, reply: message)
        reply(message)
    }

    // MARK: - Sessions

    func findSession(_ id: UInt64) -> Session? {
        registry.withLock { r in
            guard let s = r.sessions[id], !s.destroyed else { return nil }
            s.lastActivity = monotonicNanoseconds()
            return s
        }
    }

    /// Sends an event to wherever the session is bound.
    func deliver(_ event: JSON, to session: Session) {
        let connection = registry.withLock { _ in session.connection }
        if let connection {
            connection.send(event)
        } else {
            session.longPoll.push(event)
        }
    }

    /// Sends a core event about a handle (`detached`, `hangup`, `webrtcup`, `media`, ...) in Janus's
    /// key order: the kind, the session, the handle, then the event's own fields.
    func deliverEvent(_ kind: String, about handle: Handle, _ fields: JSONObject = [:]) {
        var o: JSONObject = ["janus": .string(kind), "session_id": JSON(handle.session.id), "sender": JSON(handle.id)]
        for (k, v) in fields { o[k] = v }
        deliver(.object(o), to: handle.session)
    }

    /// Removes a session and tears its handles down on their plugins' control contexts (without
    /// `detached` events, as Janus). Waiting long polls keep waiting for their own timer, as in Janus
    /// (answering them at once makes janus.js poll a session it is still destroying); only shutdown
    /// answers them at once.
    func destroySession(_ session: Session, reason: String, answerPolls: Bool = false) {
        let handles: [Handle]? = registry.withLock { r in
            guard !session.destroyed else { return nil }
            session.destroyed = true
            r.sessions.removeValue(forKey: session.id)
            shares.releaseSession(session.client)
            let hs = Array(session.handles.values)
            session.handles.removeAll()
            for h in hs {
                h.state = .detaching
                r.handlesByAddress.removeValue(forKey: h.address)
                shares.releaseHandle(h.client)
                // Enqueued under the lock, so it follows the handle's handle_created.
                h.plugin.queue.async { [self] in
                    releaseMedia(h, notifyClient: false)
                    h.plugin.handleDestroyed(h)
                }
            }
            return hs
        }
        guard handles != nil else { return }
        logger.debug("session destroyed", metadata: ["session": "\(session.id)", "reason": "\(reason)"])
        if answerPolls {
            for waiter in session.longPoll.drain() { waiter.deliver([]) }
        }
        metrics.sessionsClosed(reason: reason)
    }

    /// A WebSocket closed: its sessions go (or wait for a claim if a reclaim window is set).
    public func connectionClosed(_ connection: any ClientConnection) {
        let bound: [Session] = registry.withLock { r in
            r.sessions.values.filter { $0.connection === connection }
        }
        for session in bound {
            if reclaimNanos > 0 {
                registry.withLock { _ in
                    session.connection = nil
                    session.orphanedAt = monotonicNanoseconds()
                }
            } else {
                destroySession(session, reason: "transport closed")
            }
        }
    }

    /// Expires idle sessions (with a `timeout` event) and orphans past the reclaim window.
    func sweep() {
        let now = monotonicNanoseconds()
        shares.sweep(now: now)
        let expired: [(Session, Bool)] = registry.withLock { r in
            var out: [(Session, Bool)] = []
            for s in r.sessions.values {
                if let orphaned = s.orphanedAt, nanoseconds(from: orphaned, to: now) > reclaimNanos {
                    out.append((s, false))
                } else if sessionTimeoutNanos > 0, now > s.lastActivity, now - s.lastActivity > sessionTimeoutNanos,
                    !s.longPoll.hasWaiters
                {
                    out.append((s, true))
                }
            }
            return out
        }
        for (session, timedOut) in expired {
            if timedOut {
                deliver(["janus": "timeout", "session_id": JSON(session.id)], to: session)
                metrics.sessionTimedOut()
            }
            destroySession(session, reason: timedOut ? "timeout" : "reclaim window expired")
        }
    }

    /// Starts an HTTP long poll on a session. Returns false if there is no such session.
    func longPoll(sessionID: UInt64, maxEvents: Int, deliver: @escaping @Sendable ([JSON]) -> Void) -> (LongPollQueue, UInt64?)? {
        guard let session = findSession(sessionID) else { return nil }
        let waiter = session.longPoll.poll(maxEvents: maxEvents, deliver: deliver)
        return (session.longPoll, waiter)
    }

    // MARK: - Calls from plugins (any thread)

    func lookupHandle(from plugin: LoadedPlugin, address: UInt) -> Handle? {
        registry.withLock { r in
            guard let h = r.handlesByAddress[address], h.plugin === plugin, h.state != .detaching else { return nil }
            return h
        }
    }

    /// A plugin puts a handle in a group (a room): its next PeerConnection goes to the group's loop.
    func setGroup(from plugin: LoadedPlugin, handleAddress: UInt, group: UInt64) -> Int32 {
        guard let handle = lookupHandle(from: plugin, address: handleAddress) else { return ATRIUM_ERR_NOT_FOUND }
        loops.setGroup(handle, group)
        return ATRIUM_OK
    }

    func pushEvent(from plugin: LoadedPlugin, handleAddress: UInt, transaction: String?, event: JSON, jsep: JSON?) -> Int32 {
        guard let handle = lookupHandle(from: plugin, address: handleAddress) else { return ATRIUM_ERR_NOT_FOUND }
        var jsep = jsep
        if let given = jsep {
            switch completeJSEP(given, handle: handle) {
            case .success(let completed): jsep = completed
            case .failure(let error):
                plugin.logger.warning("push_event with a jsep the host cannot use: \(error)", metadata: ["handle": "\(handle.id)"])
                return ATRIUM_ERR_INVALID_ARGUMENT
            }
        }
        var o: JSONObject = ["janus": "event", "session_id": JSON(handle.session.id)]
        if let transaction { o["transaction"] = .string(transaction) }
        o["sender"] = JSON(handle.id)
        o["plugindata"] = ["plugin": .string(handle.attachedAs), "data": event]
        if let jsep { o["jsep"] = jsep }
        let message = JSON.object(o)
        let session = handle.session
        let send: () -> Void = { [self] in deliver(message, to: session) }
        if plugin.isOnQueue, plugin.deferredEvents != nil {
            plugin.deferredEvents!.append(send)
        } else {
            send()
        }
        metrics.eventPushed()
        return ATRIUM_OK
    }

    func endHandle(from plugin: LoadedPlugin, handleAddress: UInt) -> Int32 {
        guard let handle = lookupHandle(from: plugin, address: handleAddress) else { return ATRIUM_ERR_NOT_FOUND }
        detach(handle, notify: true)
        return ATRIUM_OK
    }

    func setLabels(from plugin: LoadedPlugin, handleAddress: UInt, labels: JSON) -> Int32 {
        guard let handle = lookupHandle(from: plugin, address: handleAddress) else { return ATRIUM_ERR_NOT_FOUND }
        registry.withLock { _ in handle.labels = labels }
        let text = tapLabelsText(labels)
        if let media = loops.engine(of: handle) { media.post { media.labelsChanged(handle, labels: text) } }
        let id = handle.id
        let full = labels.serialized
        for tapPlugin in plugins where tapPlugin.tap != nil && tapPlugin !== plugin {
            tapPlugin.queue.async { tapPlugin.tapLabelsChanged(handleID: id, labels: full) }
        }
        return ATRIUM_OK
    }

    /// A handle's labels for taps: JSON text, or nil while it has none.
    func tapLabels(of handle: Handle) -> String? {
        tapLabelsText(registry.withLock { _ in handle.labels })
    }

    private func tapLabelsText(_ labels: JSON) -> String? {
        guard let o = labels.objectValue, !o.isEmpty else { return nil }
        return labels.serialized
    }

    func publish(source: LoadedPlugin, topic: String, event: JSON) {
        for plugin in plugins where plugin !== source {
            plugin.deliverEvent(source: source.id, topic: topic, event: event)
        }
    }

    /// Removes a handle: the plugin hears handle_destroyed on its context, then (if `notify`) the
    /// client gets `detached`. Returns false if it was already going.
    @discardableResult
    func detach(_ handle: Handle, notify: Bool) -> Bool {
        registry.withLock { r -> Bool in
            guard handle.state != .detaching else { return false }
            handle.state = .detaching
            handle.session.handles.removeValue(forKey: handle.id)
            r.handlesByAddress.removeValue(forKey: handle.address)
            shares.releaseHandle(handle.client)
            // Enqueued under the lock, so it follows the handle's handle_created.
            handle.plugin.queue.async { [self] in
                releaseMedia(handle, notifyClient: notify)
                handle.plugin.handleDestroyed(handle)
                if notify {
                    deliverEvent("detached", about: handle)
                }
            }
            return true
        }
    }

    /// On the plugin's control context, before handle_destroyed: the handle's PeerConnection goes
    /// (waiting for the media thread, so no media callback can follow), the plugin hears
    /// hangup_media, and the client a `hangup` with reason "Detach" when it is still listening.
    func releaseMedia(_ handle: Handle, notifyClient: Bool) {
        defer { loops.remove(handle) }
        guard let media = loops.engine(of: handle) else { return }
        let hadPeer = media.sync { media.hangup(handle, reason: .detach, notifyClient: false, notifyPlugin: false) }
        guard hadPeer else { return }
        if notifyClient {
            deliverEvent("hangup", about: handle, ["reason": .string(HangupReason.detach.text)])
        }
        handle.plugin.hangupMedia(handle, reason: HangupReason.detach.code)
    }

    // MARK: - Snapshot for admin and metrics

    var counts: (sessions: Int, handles: Int) {
        registry.withLock { r in (r.sessions.count, r.handlesByAddress.count) }
    }

    /// Tears everything down at shutdown: plugin services first (as the header promises), then
    /// sessions and their handles, then the plugin instances.
    func shutdown() {
        let sessions = registry.withLock { r in
            r.acceptingSessions = false
            return Array(r.sessions.values)
        }
        watchdog.stop()
        for p in plugins.reversed() { p.stopServices() }
        for s in sessions { destroySession(s, reason: "shutdown", answerPolls: true) }
        for p in plugins.reversed() { p.queue.sync {} }  // let queued handle_destroyed calls finish
        loops.stop()
        for p in plugins.reversed() { p.destroy() }
    }
}

extension Handle {
    /// The plugin name the client attached with (an id or an alias), echoed in plugindata.
    var attachedAs: String { attachedName ?? plugin.id }
}
