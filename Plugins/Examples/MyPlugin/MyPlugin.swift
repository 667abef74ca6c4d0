import AtriumJSON
import PluginKit
import Synchronization

/// Echoes the `text` of a request back: `{"request":"echo","text":"hi"}` answers at once,
/// `{"request":"echo_event","text":"hi"}` answers "ack" and then an event.
///
/// Everything but `requestsTotal` is touched only on the plugin's control context, which the host
/// serializes, so it needs no lock; `metricsText` runs on any thread and reads only the atomic.
final class MyPlugin: AtriumPlugin {
    let host: PluginHost
    var prefix = ""
    /// Requests per live handle; a handle is a key from handleCreated until handleDestroyed.
    var requests: [PluginHandle: Int] = [:]
    let requestsTotal = Atomic<Int>(0)

    init(host: PluginHost) { self.host = host }

    func start(config: JSONObject) throws(PluginFailure) {
        for key in config.keys where key != "prefix" {
            throw PluginFailure("config.\(key): unknown key; expected: prefix")
        }
        if let value = config["prefix"] {
            guard let text = value.stringValue else {
                throw PluginFailure("config.prefix: expected a string, found \(value.typeDescription)")
            }
            prefix = text
        }
        host.log(.info, "myplugin ready")
    }

    func stop() {
        requests.removeAll()
    }

    func handleCreated(_ handle: PluginHandle) throws(PluginFailure) {
        requests[handle] = 0
    }

    func handleDestroyed(_ handle: PluginHandle) {
        requests[handle] = nil
    }

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        requests[handle, default: 0] += 1
        requestsTotal.add(1, ordering: .relaxed)
        guard let text = body["text"]?.stringValue else {
            return .reply(["myplugin": "error", "error": "text should be a string"])
        }
        switch body["request"]?.stringValue {
        case "echo":
            return .reply(["myplugin": "echo", "text": .string(prefix + text)])
        case "echo_event":
            // Pushed from the control context during handle_message: the host holds the event
            // until the "ack" went out, so the client always sees the ack first.
            host.pushEvent(to: handle, transaction: transaction, event: ["myplugin": "echo", "text": .string(prefix + text)])
            return .ack(hint: "the echo follows as an event")
        default:
            return .reply(["myplugin": "error", "error": "unknown request"])
        }
    }

    func describe(_ handle: PluginHandle) -> JSONObject {
        ["requests": JSON(requests[handle] ?? 0)]
    }

    func metricsText() -> String {
        """
        # HELP atrium_myplugin_requests_total Messages handled by MyPlugin.
        # TYPE atrium_myplugin_requests_total counter
        atrium_myplugin_requests_total \(requestsTotal.load(ordering: .relaxed))

        """
    }
}
