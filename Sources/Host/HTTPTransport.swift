import AtriumJSON
import Logging
import NIOCore
import NIOHTTP1
import RTC

/// A token bucket limiting the requests of one connection.
struct RequestBudget {
    let rate: Double
    let burst: Double
    var tokens: Double
    var last: UInt64

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        tokens = burst
        last = monotonicNanoseconds()
    }

    mutating func take() -> Bool {
        let now = monotonicNanoseconds()
        tokens = min(burst, tokens + Double(now - last) / 1e9 * rate)
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Which request budget refused a request.
enum RequestBudgetScope: String, Sendable {
    case connection, address
}

extension HostCore {
    /// The answer to a request refused by a request budget, keeping its transaction when a cheap
    /// scan finds it (see scanTransaction) so the client's callback fires; the body is not parsed.
    func rateLimited(bytes: [UInt8], by scope: RequestBudgetScope) -> JSON {
        let reason = scope == .connection ? "Too many requests on this connection, slow down" : "Too many requests from your address, slow down"
        let reply = JanusError(.unknown, reason).envelope(transaction: scanTransaction(bytes))
        metrics.count(verb: nil, reply: reply)
        metrics.requestRefused(by: scope)
        return reply
    }
}

/// One HTTP connection on the API port: the Janus API (POST and long-poll GET under the base path,
/// with Janus's CORS), the admin API, /metrics, /health and the meeting web app (GET and HEAD of
/// any other path, see WebApp).
final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// Its name in the pipeline, for the WebSocket upgrade on `http.websocket_path` to remove it.
    static let name = "atrium.http"
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let core: HostCore
    private let config: HostConfig.HTTP
    private let webApp: WebApp?
    /// The request's client: the peer, or behind a trusted proxy the client it names.
    private var client: ClientAddress
    /// May read /metrics, the admin API and the details of /health (http.private_from).
    private var isPrivate: Bool
    private let peer: NIOCore.SocketAddress?
    private let deadline: ConnectionDeadline?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    private var budget: RequestBudget
    private var pendingPoll: (queue: LongPollQueue, waiter: UInt64, timer: Scheduled<Void>)?
    /// A complete request held until the socket takes what was already answered.
    private var waitingForWritability: HTTPRequestHead?

    /// `peer` nil is an in-process caller (tests, fuzzing): no share is counted and it is trusted
    /// as loopback is. An accepted TCP connection always has its peer's address.
    init(core: HostCore, webApp: WebApp? = nil, peer: NIOCore.SocketAddress? = nil, deadline: ConnectionDeadline? = nil) {
        self.core = core
        self.webApp = webApp
        self.config = core.config.http
        self.peer = peer
        self.client = ClientAddress(peer)
        // No peer: an in-process caller (tests, the fuzz harness); sockets without one are refused at admit.
        self.isPrivate = peer.map { core.config.http.privateFrom.admits($0) } ?? true
        self.deadline = deadline
        budget = RequestBudget(rate: core.config.limits.requestsPerSecond, burst: core.config.limits.burst)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            if core.proxyTrust.isTrusted(peer) {
                let named = core.proxyTrust.client(peer: peer, headers: h.headers)
                client = ClientAddress(named)
                isPrivate = core.config.http.privateFrom.admits(named)
            }
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
        case .body(var buffer):
            guard !bodyTooLarge else { return }
            if body.count + buffer.readableBytes > config.maxBodyBytes {
                bodyTooLarge = true
                body.removeAll()
            } else {
                body.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
            }
        case .end:
            guard let head else { return }
            self.head = nil
            deadline?.requestReceived()
            guard context.channel.isWritable else {
                // The socket has not taken the last answers: this request waits for it (NIO hands
                // over the next pipelined request only after this one's answer, so a client that
                // never reads holds one answer here, not one per request it sent).
                waitingForWritability = head
                return
            }
            route(context: context, head: head)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let head = waitingForWritability {
            waitingForWritability = nil
            route(context: context, head: head)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let poll = pendingPoll {
            // A vanished long-poll client: its events stay queued for the next poll.
            _ = poll.queue.cancel(waiter: poll.waiter)
            poll.timer.cancel()
            pendingPoll = nil
        }
        context.fireChannelInactive()
    }

    // MARK: - Routing

    private func route(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let (path, query) = splitURI(head.uri)
        if head.method == .OPTIONS {
            core.metrics.httpRequest(kind: "preflight")
            respond(context: context, head: head, status: .ok, body: nil, extraHeaders: preflightHeaders(head), keepAlive: false)
            return
        }
        if path == config.basePath || path.hasPrefix(config.basePath + "/") {
            core.metrics.httpRequest(kind: "janus")
            janus(context: context, head: head, components: components(of: path, under: config.basePath), query: query)
        } else if path == config.adminPath || path.hasPrefix(config.adminPath + "/") {
            core.metrics.httpRequest(kind: "admin")
            guard isPrivate else {
                core.metrics.httpRequest(kind: "forbidden")
                let refusal = JanusError(.unauthorized, "The admin API is not served to this address (see http.private_from)")
                respondJSON(context: context, head: head, json: refusal.envelope(transaction: nil), status: .forbidden)
                return
            }
            admin(context: context, head: head, components: components(of: path, under: config.adminPath))
        } else if path == "/metrics" && head.method == .GET {
            core.metrics.httpRequest(kind: "metrics")
            guard isPrivate else {
                core.metrics.httpRequest(kind: "forbidden")
                respondText(context: context, head: head, status: .forbidden, text: "Metrics are not served to this address (see http.private_from)\n", contentType: "text/plain; charset=utf-8")
                return
            }
            respondText(context: context, head: head, status: .ok, text: core.metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        } else if path == "/health" && head.method == .GET {
            core.metrics.httpRequest(kind: "health")
            // Anyone may ask whether the host is well (load balancers probe from other
            // addresses); how many sessions it holds and what each plugin says is private.
            let health = core.health()
            respondJSON(context: context, head: head, json: isPrivate ? health : ["ok": health["ok"] ?? false])
        } else if let webApp, head.method == .GET || head.method == .HEAD {
            web(context: context, head: head, path: path, webApp: webApp)
        } else {
            core.metrics.httpRequest(kind: "not_found")
            respond(context: context, head: head, status: .notFound, body: nil)
        }
    }

    /// The web app's files and its page configuration. Files are revalidated on every load
    /// (`no-cache` with an ETag, answered 304 when unchanged): there is no build step that could
    /// give changed files new names, and a page must never mix modules of two versions.
    private func web(context: ChannelHandlerContext, head: HTTPRequestHead, path: String, webApp: WebApp) {
        var headers = HTTPHeaders()
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        // Room links are secrets: never send one to another site as a Referer.
        headers.add(name: "Referrer-Policy", value: "no-referrer")
        if path == WebApp.configPath {
            core.metrics.httpRequest(kind: "web")
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Cache-Control", value: "no-store")
            respond(context: context, head: head, status: .ok, body: webApp.pageConfig.serializedBytes, extraHeaders: headers)
            return
        }
        guard let file = webApp.file(forURLPath: path) else {
            core.metrics.httpRequest(kind: "not_found")
            respond(context: context, head: head, status: .notFound, body: nil, extraHeaders: headers)
            return
        }
        core.metrics.httpRequest(kind: "web")
        headers.add(name: "Content-Type", value: file.contentType)
        headers.add(name: "Cache-Control", value: "no-cache")
        headers.add(name: "ETag", value: file.etag)
        if file.contentType.hasPrefix("text/html") {
            // The pages load only their own scripts and styles; the Janus API's WebSocket is on
            // another port, hence ws:/wss: in connect-src.
            headers.add(name: "Content-Security-Policy", value: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        }
        let notModified = head.headers[canonicalForm: "If-None-Match"].contains { $0 == file.etag || $0 == "*" }
        respond(context: context, head: head, status: notModified ? .notModified : .ok,
                body: notModified ? nil : file.bytes, extraHeaders: headers, omitBody: head.method == .HEAD || notModified)
    }

    private func janus(context: ChannelHandlerContext, head: HTTPRequestHead, components: [String], query: [String: String]) {
        if bodyTooLarge {
            respondJSON(context: context, head: head, json: JanusError(.transportSpecific, "Request body too large (limit \(config.maxBodyBytes) bytes)").envelope(transaction: nil))
            return
        }
        switch head.method {
        case .POST:
            // Janus closes the connection without an answer for a POST with no body or with path
            // components after the handle; clients never send those.
            guard components.count <= 2, !body.isEmpty else {
                context.close(promise: nil)
                return
            }
            guard budget.take() else {
                respondJSON(context: context, head: head, json: core.rateLimited(bytes: body, by: .connection))
                return
            }
            guard core.shares.takeRequest(client) else {
                respondJSON(context: context, head: head, json: core.rateLimited(bytes: body, by: .address))
                return
            }
            // Path ids that are not numbers count as absent, as in Janus.
            let ids = components.map { UInt64($0) ?? 0 }
            var requestContext = RequestContext(connection: nil, client: client)
            if let s = ids.first, s != 0 {
                requestContext.pathSessionID = s
                requestContext.pathHasSession = true
                if ids.count > 1, ids[1] != 0 { requestContext.pathHandleID = ids[1] }
            }
            core.process(bytes: body, context: requestContext, reply: replier(context: context, head: head))
        case .GET:
            if components == ["info"] {
                guard budget.take() else {
                    respondJSON(context: context, head: head, json: core.rateLimited(bytes: [], by: .connection))
                    return
                }
                guard core.shares.takeRequest(client) else {
                    respondJSON(context: context, head: head, json: core.rateLimited(bytes: [], by: .address))
                    return
                }
                let request: JSON = ["janus": "info", "transaction": .string(randomTransaction())]
                core.process(json: request, context: RequestContext(connection: nil, client: client), reply: replier(context: context, head: head))
                return
            }
            if components.count == 2 {
                // Janus redirects a GET on a handle to its session's long poll, known or not.
                var headers = HTTPHeaders()
                headers.add(name: "Location", value: "\(config.basePath)/\(components[0])")
                respond(context: context, head: head, status: .found, body: nil, extraHeaders: headers)
                return
            }
            guard components.count == 1, let sessionID = UInt64(components[0]), sessionID > 0 else {
                respond(context: context, head: head, status: .notFound, body: nil)
                return
            }
            longPoll(context: context, head: head, sessionID: sessionID, maxEvents: max(1, Int(query["maxev"] ?? "") ?? 1))
        default:
            guard body.isEmpty else {
                context.close(promise: nil)
                return
            }
            respondJSON(context: context, head: head, json: JanusError(.transportSpecific, "Unsupported method \(head.method.rawValue)").envelope(transaction: nil))
        }
    }

    private func longPoll(context: ChannelHandlerContext, head: HTTPRequestHead, sessionID: UInt64, maxEvents: Int) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let asArray = maxEvents > 1
        let started = core.longPoll(sessionID: sessionID, maxEvents: maxEvents) { events in
            loop.execute {
                let (handler, context) = bound.value
                handler.pendingPoll?.timer.cancel()
                handler.pendingPoll = nil
                handler.answerPoll(context: context, head: head, events: events, asArray: asArray)
            }
        }
        guard let (queue, waiter) = started else {
            respond(context: context, head: head, status: .notFound, body: nil)
            return
        }
        guard let waiter else { return }  // answered at once from the queue
        let timer = loop.scheduleTask(in: .nanoseconds(Int64(config.longPollSeconds * 1e9))) {
            let (handler, context) = bound.value
            guard queue.cancel(waiter: waiter) else { return }
            handler.pendingPoll = nil
            handler.answerPoll(context: context, head: head, events: [], asArray: asArray)
        }
        pendingPoll = (queue, waiter, timer)
    }

    private func answerPoll(context: ChannelHandlerContext, head: HTTPRequestHead, events: [JSON], asArray: Bool) {
        let events: [JSON] = events.isEmpty ? [["janus": "keepalive"]] : events
        respondJSON(context: context, head: head, json: asArray ? .array(events) : events[0])
    }

    private func admin(context: ChannelHandlerContext, head: HTTPRequestHead, components: [String]) {
        guard head.method == .POST else {
            respondJSON(context: context, head: head, json: JanusError(.transportSpecific, "Unsupported method").envelope(transaction: nil))
            return
        }
        guard !bodyTooLarge else {
            respondJSON(context: context, head: head, json: JanusError(.transportSpecific, "Request body too large").envelope(transaction: nil))
            return
        }
        let ids = components.map { UInt64($0) }
        guard components.count <= 2, !ids.contains(where: { $0 == nil }) else {
            respond(context: context, head: head, status: .notFound, body: nil)
            return
        }
        core.processAdmin(bytes: body, pathSessionID: ids.first ?? nil, pathHandleID: ids.count > 1 ? ids[1] : nil,
                          reply: replier(context: context, head: head))
    }

    // MARK: - Responses

    /// A reply callback that may run on any thread: it answers this request on the connection's loop.
    private func replier(context: ChannelHandlerContext, head: HTTPRequestHead) -> @Sendable (JSON) -> Void {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        return { reply in
            loop.execute {
                let (handler, context) = bound.value
                handler.respondJSON(context: context, head: head, json: reply)
            }
        }
    }

    private func corsHeaders(_ head: HTTPRequestHead) -> HTTPHeaders {
        var h = HTTPHeaders()
        if let origin = config.corsOrigin {
            h.add(name: "Access-Control-Allow-Origin", value: origin)
            h.add(name: "Access-Control-Allow-Credentials", value: "true")
            h.add(name: "Vary", value: "Origin")
        } else {
            h.add(name: "Access-Control-Allow-Origin", value: "*")
        }
        h.add(name: "Access-Control-Max-Age", value: "86400")
        return h
    }

    private func preflightHeaders(_ head: HTTPRequestHead) -> HTTPHeaders {
        var h = HTTPHeaders()
        if let method = head.headers.first(name: "Access-Control-Request-Method") {
            h.add(name: "Access-Control-Allow-Methods", value: method)
        }
        if let headers = head.headers.first(name: "Access-Control-Request-Headers") {
            h.add(name: "Access-Control-Allow-Headers", value: headers)
        }
        return h
    }

    func respondJSON(context: ChannelHandlerContext, head: HTTPRequestHead, json: JSON, status: HTTPResponseStatus = .ok) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        respond(context: context, head: head, status: status, body: json.prettyPrinted(indent: 3).utf8.map { $0 }, extraHeaders: headers)
    }

    private func respondText(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, text: String, contentType: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        respond(context: context, head: head, status: status, body: Array(text.utf8), extraHeaders: headers)
    }

    /// Sends one response. `omitBody` (HEAD, 304) sends the headers of `body` without it: the
    /// Content-Length still says how long it is (none for a 304, which has no representation).
    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, body: [UInt8]?, extraHeaders: HTTPHeaders = [:], keepAlive: Bool? = nil, omitBody: Bool = false) {
        guard context.channel.isActive else { return }
        var headers = corsHeaders(head)
        headers.add(contentsOf: extraHeaders)
        headers.add(name: "Server", value: "Atrium/\(AtriumVersion.string)")
        if status != .notModified { headers.add(name: "Content-Length", value: String(body?.count ?? 0)) }
        let keepAlive = keepAlive ?? head.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        if !omitBody, let body, !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        // Before the end is written: writing it may hand over the next pipelined request at once,
        // whose requestReceived must not be undone by this response's responseSent.
        if keepAlive { deadline?.responseSent() }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.logger.debug("http connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

func splitURI(_ uri: String) -> (String, [String: String]) {
    let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    let path = String(parts.first ?? "")
    var query: [String: String] = [:]
    if parts.count > 1 {
        for pair in parts[1].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            query[String(kv[0])] = kv.count > 1 ? String(kv[1]).removingPercentEncodingSafely : ""
        }
    }
    return (path, query)
}

func components(of path: String, under base: String) -> [String] {
    path.dropFirst(base.count).split(separator: "/").map(String.init)
}

func randomTransaction() -> String {
    let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    return String((0..<12).map { _ in letters.randomElement()! })
}

extension String {
    /// Percent-decoding that leaves malformed escapes as they are.
    var removingPercentEncodingSafely: String {
        var out = [UInt8]()
        var bytes = Array(utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "%"), bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                bytes = bytes.dropFirst(2)
            } else if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension HostCore {
    func health() -> JSON {
        let (sessions, handles) = counts
        var pluginHealth = JSONObject()
        var ok = true
        for p in plugins {
            let h = p.health() ?? ["ok": true]
            if h["ok"] == .bool(false) { ok = false }
            pluginHealth[p.id] = h
        }
        let (threadsOK, threads) = watchdog.health()
        return ["ok": .bool(ok && threadsOK), "sessions": JSON(sessions), "handles": JSON(handles), "plugins": .object(pluginHealth),
                "threads": threads]
    }
}
