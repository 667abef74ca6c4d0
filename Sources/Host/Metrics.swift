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
        family("atrium_sessions", "gauge", "Janus API sessions open now.", [(nil, String(sessions))])
        family("atrium_handles", "gauge", "Plugin handles attached now.", [(nil, String(handles))])
        family("atrium_sessions_created_total", "counter", "Sessions created.", [(nil, String(s.sessionsCreated))])
        family("atrium_sessions_timed_out_total", "counter", "Sessions destroyed by the idle timeout.", [(nil, String(s.sessionsTimedOut))])
        family("atrium_sessions_closed_total", "counter", "Sessions destroyed, by reason.", labelled("reason", s.sessionsClosed))
        family("atrium_handles_created_total", "counter", "Handles attached.", [(nil, String(s.handlesCreated))])
        family("atrium_events_pushed_total", "counter", "Plugin events sent to clients.", [(nil, String(s.eventsPushed))])
        family("atrium_requests_total", "counter", "Janus API requests, by verb.", labelled("verb", s.requests))
        family("atrium_errors_total", "counter", "Janus API error replies, by code.", labelled("code", s.errors))
        family("atrium_http_requests_total", "counter", "HTTP requests, by kind.", labelled("kind", s.httpRequests))
        return out
    }
}

extension HostCore {
    /// The whole /metrics page: the host's counters, the media counters, then each plugin's.
    func metricsText() -> String {
        let (sessions, handles) = counts
        var text = metrics.render(sessions: sessions, handles: handles) + media.metrics.prometheus
        for plugin in plugins {
            let part = plugin.collectMetrics()
            if !part.isEmpty {
                text += part.hasSuffix("\n") ? part : part + "\n"
            }
        }
        return text
    }
}
