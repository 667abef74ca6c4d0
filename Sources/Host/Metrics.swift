import AtriumJSON
import Synchronization

/// Counters of the Janus API, rendered in the Prometheus text format at /metrics.
///
/// Kept by hand rather than through swift-metrics: the host needs a handful of counters plus the
/// plugins' own text (which crosses the ABI as text anyway), and one lock keeps the scrape exact.
final class CoreMetrics: Sendable {
    /// Verbs counted by name; anything else is "other", so clients cannot grow the label set.
    static let knownVerbs: Set<String> = [
        "info", "ping", "create", "claim", "keepalive", "attach", "destroy", "detach", "hangup", "message", "trickle",
    ]

    private struct State {
        var requests: [String: UInt64] = [:]
        var errors: [Int: UInt64] = [:]
        var sessionsCreated: UInt64 = 0
        var sessionsTimedOut: UInt64 = 0
        var sessionsClosed: [String: UInt64] = [:]
        var handlesCreated: UInt64 = 0
        var eventsPushed: UInt64 = 0
        var httpRequests: [String: UInt64] = [:]
        var connectionsRefused: [String: UInt64] = [:]
        var connectionsTimedOut: [String: UInt64] = [:]
        var requestsRefused: [String: UInt64] = [:]
        var slowReadersClosed: UInt64 = 0
    }

    /// Gauges read from the host's state at each scrape.
    struct Gauges {
        var sessions = 0
        var handles = 0
        var httpConnections = 0
        var webSocketConnections = 0
        var clientAddresses = 0
        var queuedEventBytes = 0
        var largestSessionQueueBytes = 0
        var webSocketPendingBytes = 0
    }

    private let state = Mutex(State())

    func count(verb: String?, reply: JSON) {
        let label = verb.map { Self.knownVerbs.contains($0) ? $0 : "other" } ?? "invalid"
        let code = reply["janus"]?.stringValue == "error" ? reply["error"]?["code"]?.intValue.map(Int.init) : nil
        state.withLock { s in
            s.requests[label, default: 0] += 1
            if let code { s.errors[code, default: 0] += 1 }
        }
    }

    func sessionCreated() { state.withLock { $0.sessionsCreated += 1 } }
    func sessionTimedOut() { state.withLock { $0.sessionsTimedOut += 1 } }
    func sessionsClosed(reason: String) { state.withLock { $0.sessionsClosed[reason, default: 0] += 1 } }
    func handleCreated() { state.withLock { $0.handlesCreated += 1 } }
    func eventPushed() { state.withLock { $0.eventsPushed += 1 } }
    func httpRequest(kind: String) { state.withLock { $0.httpRequests[kind, default: 0] += 1 } }
    func slowReaderClosed() { state.withLock { $0.slowReadersClosed += 1 } }
    func requestRefused(by scope: RequestBudgetScope) { state.withLock { $0.requestsRefused[scope.rawValue, default: 0] += 1 } }
    func connectionTimedOut(_ expiry: ConnectionDeadline.Expiry) { state.withLock { $0.connectionsTimedOut[expiry.rawValue, default: 0] += 1 } }

    func connectionRefused(transport: ClientShares.Transport, _ refusal: ClientShares.ConnectionRefusal) {
        let label = "transport=\"\(transport == .http ? "http" : "websocket")\",reason=\"\(refusal)\""
        state.withLock { $0.connectionsRefused[label, default: 0] += 1 }
    }

    func render(_ gauges: Gauges) -> String {
        let s = state.withLock { $0 }
        var out = ""
        /// One metric family: its HELP and TYPE lines, then one sample per label value (or one without labels).
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(label: String?, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                out += sample.label.map { "\(name){\($0)} \(sample.value)\n" } ?? "\(name) \(sample.value)\n"
            }
        }
        func labelled<K: Comparable>(_ key: String, _ values: [K: UInt64]) -> [(label: String?, value: String)] {
            values.sorted { $0.key < $1.key }.map { (label: "\(key)=\"\($0.key)\"", value: String($0.value)) }
        }
        family("atrium_sessions", "gauge", "Janus API sessions open now.", [(nil, String(gauges.sessions))])
        family("atrium_handles", "gauge", "Plugin handles attached now.", [(nil, String(gauges.handles))])
        family("atrium_sessions_created_total", "counter", "Sessions created.", [(nil, String(s.sessionsCreated))])
        family("atrium_sessions_timed_out_total", "counter", "Sessions destroyed by the idle timeout.", [(nil, String(s.sessionsTimedOut))])
        family("atrium_sessions_closed_total", "counter", "Sessions destroyed, by reason.", labelled("reason", s.sessionsClosed))
        family("atrium_handles_created_total", "counter", "Handles attached.", [(nil, String(s.handlesCreated))])
        family("atrium_events_pushed_total", "counter", "Plugin events sent to clients.", [(nil, String(s.eventsPushed))])
        family("atrium_requests_total", "counter", "Janus API requests, by verb.", labelled("verb", s.requests))
        family("atrium_errors_total", "counter", "Janus API error replies, by code.", labelled("code", s.errors))
        family("atrium_http_requests_total", "counter", "HTTP requests, by kind.", labelled("kind", s.httpRequests))
        family("atrium_http_connections", "gauge", "HTTP connections open now.", [(nil, String(gauges.httpConnections))])
        family("atrium_websocket_connections", "gauge", "WebSocket connections open now (upgraded or not yet).", [(nil, String(gauges.webSocketConnections))])
        family("atrium_client_addresses", "gauge", "Client addresses whose shares are tracked now.", [(nil, String(gauges.clientAddresses))])
        family("atrium_connections_refused_total", "counter", "Connections refused at accept, by transport and cap.",
               s.connectionsRefused.sorted { $0.key < $1.key }.map { (label: $0.key, value: String($0.value)) })
        family("atrium_connections_timed_out_total", "counter", "Connections closed by a header or idle timeout.", labelled("timeout", s.connectionsTimedOut))
        family("atrium_requests_refused_total", "counter", "Requests refused by a request budget, by budget.", labelled("budget", s.requestsRefused))
        family("atrium_queued_event_bytes", "gauge", "Bytes of events queued for sessions that have not polled them.", [(nil, String(gauges.queuedEventBytes))])
        family("atrium_queued_event_bytes_max", "gauge", "Bytes of events queued for the session holding most.", [(nil, String(gauges.largestSessionQueueBytes))])
        family("atrium_websocket_pending_bytes", "gauge", "Bytes sent to WebSocket clients that their sockets have not taken yet.", [(nil, String(gauges.webSocketPendingBytes))])
        family("atrium_websocket_slow_readers_closed_total", "counter", "WebSocket clients closed for not reading what they were sent.", [(nil, String(s.slowReadersClosed))])
        return out
    }
}

extension HostCore {
    /// The whole /metrics page: the host's counters, the media counters, then each plugin's.
    func metricsText() -> String {
        var gauges = CoreMetrics.Gauges()
        (gauges.sessions, gauges.handles) = counts
        let shareCounts = shares.snapshot
        gauges.httpConnections = shareCounts.httpConnections
        gauges.webSocketConnections = shareCounts.webSocketConnections
        gauges.clientAddresses = shareCounts.addresses
        let queues = registry.withLock { r in r.sessions.values.map(\.longPoll) }
        for queue in queues {
            let bytes = queue.usage.bytes
            gauges.queuedEventBytes += bytes
            gauges.largestSessionQueueBytes = max(gauges.largestSessionQueueBytes, bytes)
        }
        gauges.webSocketPendingBytes = webSocketPending.bytes
        var text = metrics.render(gauges) + MediaMetrics.prometheus(loops)
        for plugin in plugins {
            let part = plugin.collectMetrics()
            if !part.isEmpty {
                text += part.hasSuffix("\n") ? part : part + "\n"
            }
        }
        return text
    }
}
