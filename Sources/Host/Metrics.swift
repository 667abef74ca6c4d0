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

    func render(sessions: Int, handles: Int) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("atrium_sessions", "gauge", "Janus API sessions open now.")
        out += "atrium_sessions \(sessions)\n"
        family("atrium_handles", "gauge", "Plugin handles attached now.")
        out += "atrium_handles \(handles)\n"
        family("atrium_sessions_created_total", "counter", "Sessions created.")
        out += "atrium_sessions_created_total \(s.sessionsCreated)\n"
        family("atrium_sessions_timed_out_total", "counter", "Sessions destroyed by the idle timeout.")
        out += "atrium_sessions_timed_out_total \(s.sessionsTimedOut)\n"
        family("atrium_sessions_closed_total", "counter", "Sessions destroyed, by reason.")
        for (reason, n) in s.sessionsClosed.sorted(by: { $0.key < $1.key }) {
            out += "atrium_sessions_closed_total{reason=\"\(reason)\"} \(n)\n"
        }
        family("atrium_handles_created_total", "counter", "Handles attached.")
        out += "atrium_handles_created_total \(s.handlesCreated)\n"
        family("atrium_events_pushed_total", "counter", "Plugin events sent to clients.")
        out += "atrium_events_pushed_total \(s.eventsPushed)\n"
        family("atrium_requests_total", "counter", "Janus API requests, by verb.")
        for (verb, n) in s.requests.sorted(by: { $0.key < $1.key }) {
            out += "atrium_requests_total{verb=\"\(verb)\"} \(n)\n"
        }
        family("atrium_errors_total", "counter", "Janus API error replies, by code.")
        for (code, n) in s.errors.sorted(by: { $0.key < $1.key }) {
            out += "atrium_errors_total{code=\"\(code)\"} \(n)\n"
        }
        family("atrium_http_requests_total", "counter", "HTTP requests, by kind.")
        for (kind, n) in s.httpRequests.sorted(by: { $0.key < $1.key }) {
            out += "atrium_http_requests_total{kind=\"\(kind)\"} \(n)\n"
        }
        return out
    }
}

extension HostCore {
    /// The whole /metrics page: the host's counters, then each plugin's.
    func metricsText() -> String {
        let (sessions, handles) = counts
        var text = metrics.render(sessions: sessions, handles: handles)
        for plugin in plugins {
            let part = plugin.collectMetrics()
            if !part.isEmpty {
                text += part.hasSuffix("\n") ? part : part + "\n"
            }
        }
        return text
    }
}
