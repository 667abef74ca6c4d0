public import AtriumJSON
import Foundation

/// A configuration that cannot be used, with where and why: the file and line/column for text that
/// is not JSON, the key path (`plugins[1].aliases`) and what was expected for everything else.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var location: String
    public var message: String

    public var description: String { "\(file): \(location): \(message)" }
}

/// One entry of the `plugins` array.
public struct PluginConfig: Sendable {
    /// The library file, absolute or relative to the plugins directory.
    public var library: String
    public var aliases: [String]
    public var enabled: Bool
    public var optional: Bool
    /// The opaque object handed to the plugin's init.
    public var config: JSONObject
    /// Where the entry is in the file, for messages (`plugins[0]`).
    public var keyPath: String
}

/// The host's settings, read from one JSON file (`config/config.json` by default).
/// docs/configuration.md lists every key; the defaults here are the documented ones.
public struct HostConfig: Sendable {
    public struct HTTP: Sendable {
        public var enabled = true
        public var bind = "0.0.0.0"
        public var port = 8088
        public var basePath = "/janus"
        public var adminPath = "/admin"
        public var longPollSeconds = 30.0
        public var maxBodyBytes = 1 << 20
        public var corsOrigin: String? = nil
    }

    public struct WebSocket: Sendable {
        public var enabled = true
        public var bind = "0.0.0.0"
        public var port = 8188
        public var maxMessageBytes = 1 << 20
    }

    public struct Sessions: Sendable {
        public var timeoutSeconds = 60.0
        public var reclaimSeconds = 0.0
        public var maxSessions = 10_000
        public var maxHandlesPerSession = 64
        public var maxQueuedEvents = 1_000
    }

    public struct Limits: Sendable {
        /// Requests a second one connection may sustain, and the burst above it.
        public var requestsPerSecond = 200.0
        public var burst = 400.0
    }

    public struct Admin: Sendable {
        /// The admin API answers only when a secret is set.
        public var secret: String? = nil
    }

    public var serverName = "Atrium"
    public var logLevel = "info"
    public var pluginsDirectory: String? = nil
    public var apiSecret: String? = nil
    public var http = HTTP()
    public var webSocket = WebSocket()
    public var sessions = Sessions()
    public var limits = Limits()
    public var admin = Admin()
    public var plugins: [PluginConfig] = []
    /// Where the configuration came from, for messages.
    public var source = "<memory>"

    public init() {}

    /// Reads and validates a configuration file.
    public static func load(path: String) throws(ConfigError) -> HostConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, location: "file", message: "cannot be read (missing or not permitted)")
        }
        return try parse(bytes: Array(data), source: path)
    }

    /// Validates a configuration from JSON bytes.
    public static func parse(bytes: [UInt8], source: String = "<memory>") throws(ConfigError) -> HostConfig {
        let json: JSON
        do {
            json = try JSON.parse(bytes: bytes)
        } catch {
            throw ConfigError(file: source, location: "line \(error.line), column \(error.column)", message: error.message)
        }
        return try parse(json: json, source: source)
    }

    public static func parse(json: JSON, source: String = "<memory>") throws(ConfigError) -> HostConfig {
        var config = HostConfig()
        config.source = source
        let root = ConfigReader(source: source)
        let top = try root.object(json, path: "", keys: [
            "server_name", "log_level", "plugins_dir", "api_secret", "http", "websocket", "sessions", "limits",
            "admin", "plugins",
        ])
        config.serverName = try root.string(top, "server_name", path: "") ?? config.serverName
        if let level = try root.string(top, "log_level", path: "") {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) else {
                throw root.error("log_level", "expected one of trace, debug, info, notice, warning, error, critical, found \"\(level)\"")
            }
            config.logLevel = level
        }
        config.pluginsDirectory = try root.string(top, "plugins_dir", path: "")
        config.apiSecret = try root.string(top, "api_secret", path: "")

        if let http = top["http"] {
            let o = try root.object(http, path: "http", keys: [
                "enabled", "bind", "port", "base_path", "admin_path", "long_poll_seconds", "max_body_bytes", "cors_origin",
            ])
            config.http.enabled = try root.bool(o, "enabled", path: "http") ?? config.http.enabled
            config.http.bind = try root.string(o, "bind", path: "http") ?? config.http.bind
            config.http.port = try root.int(o, "port", path: "http", range: 0...65535) ?? config.http.port
            config.http.basePath = try root.urlPath(o, "base_path", path: "http") ?? config.http.basePath
            config.http.adminPath = try root.urlPath(o, "admin_path", path: "http") ?? config.http.adminPath
            config.http.longPollSeconds = try root.number(o, "long_poll_seconds", path: "http", range: 0.1...300) ?? config.http.longPollSeconds
            config.http.maxBodyBytes = try root.int(o, "max_body_bytes", path: "http", range: 256...(64 << 20)) ?? config.http.maxBodyBytes
            config.http.corsOrigin = try root.string(o, "cors_origin", path: "http")
        }
        if let ws = top["websocket"] {
            let o = try root.object(ws, path: "websocket", keys: ["enabled", "bind", "port", "max_message_bytes"])
            config.webSocket.enabled = try root.bool(o, "enabled", path: "websocket") ?? config.webSocket.enabled
            config.webSocket.bind = try root.string(o, "bind", path: "websocket") ?? config.webSocket.bind
            config.webSocket.port = try root.int(o, "port", path: "websocket", range: 0...65535) ?? config.webSocket.port
            config.webSocket.maxMessageBytes = try root.int(o, "max_message_bytes", path: "websocket", range: 256...(64 << 20)) ?? config.webSocket.maxMessageBytes
        }
        if let sessions = top["sessions"] {
            let o = try root.object(sessions, path: "sessions", keys: [
                "timeout_seconds", "reclaim_seconds", "max_sessions", "max_handles_per_session", "max_queued_events",
            ])
            config.sessions.timeoutSeconds = try root.number(o, "timeout_seconds", path: "sessions", range: 0...86400) ?? config.sessions.timeoutSeconds
            config.sessions.reclaimSeconds = try root.number(o, "reclaim_seconds", path: "sessions", range: 0...86400) ?? config.sessions.reclaimSeconds
            config.sessions.maxSessions = try root.int(o, "max_sessions", path: "sessions", range: 1...10_000_000) ?? config.sessions.maxSessions
            config.sessions.maxHandlesPerSession = try root.int(o, "max_handles_per_session", path: "sessions", range: 1...100_000) ?? config.sessions.maxHandlesPerSession
            config.sessions.maxQueuedEvents = try root.int(o, "max_queued_events", path: "sessions", range: 1...1_000_000) ?? config.sessions.maxQueuedEvents
        }
        if let limits = top["limits"] {
            let o = try root.object(limits, path: "limits", keys: ["requests_per_second", "burst"])
            config.limits.requestsPerSecond = try root.number(o, "requests_per_second", path: "limits", range: 0.1...1_000_000) ?? config.limits.requestsPerSecond
            config.limits.burst = try root.number(o, "burst", path: "limits", range: 1...1_000_000) ?? config.limits.burst
        }
        if let admin = top["admin"] {
            let o = try root.object(admin, path: "admin", keys: ["secret"])
            config.admin.secret = try root.string(o, "secret", path: "admin")
            if config.admin.secret == "" { throw root.error("admin.secret", "expected a non-empty string or null") }
        }
        if let plugins = top["plugins"] {
            guard case .array(let entries) = plugins else {
                throw root.error("plugins", "expected an array of plugin entries, found \(plugins.typeDescription)")
            }
            var seenAliases: [String: String] = [:]
            for (i, entry) in entries.enumerated() {
                let path = "plugins[\(i)]"
                let o = try root.object(entry, path: path, keys: ["library", "aliases", "enabled", "optional", "config"])
                guard let library = try root.string(o, "library", path: path), !library.isEmpty else {
                    throw root.error("\(path).library", "a library file name is required")
                }
                var aliases: [String] = []
                if let a = o["aliases"] {
                    guard case .array(let items) = a else {
                        throw root.error("\(path).aliases", "expected an array of strings, found \(a.typeDescription)")
                    }
                    for (j, item) in items.enumerated() {
                        guard case .string(let s) = item, !s.isEmpty else {
                            throw root.error("\(path).aliases[\(j)]", "expected a non-empty string, found \(item.typeDescription)")
                        }
                        if let other = seenAliases[s] {
                            throw root.error("\(path).aliases[\(j)]", "alias \"\(s)\" is already used by \(other)")
                        }
                        seenAliases[s] = "\(path)"
                        aliases.append(s)
                    }
                }
                var pluginConfig = JSONObject()
                if let c = o["config"] {
                    guard case .object(let obj) = c else {
                        throw root.error("\(path).config", "expected an object, found \(c.typeDescription)")
                    }
                    pluginConfig = obj
                }
                config.plugins.append(PluginConfig(
                    library: library,
                    aliases: aliases,
                    enabled: try root.bool(o, "enabled", path: path) ?? true,
                    optional: try root.bool(o, "optional", path: path) ?? false,
                    config: pluginConfig,
                    keyPath: path
                ))
            }
        }
        return config
    }
}

/// Typed reads with key paths in every error.
struct ConfigReader {
    let source: String

    func error(_ path: String, _ message: String) -> ConfigError {
        ConfigError(file: source, location: path.isEmpty ? "top level" : path, message: message)
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func object(_ json: JSON, path: String, keys: Set<String>) throws(ConfigError) -> JSONObject {
        guard case .object(let o) = json else {
            throw error(path, "expected an object, found \(json.typeDescription)")
        }
        for key in o.keys where !keys.contains(key) {
            throw error(join(path, key), "unknown key; expected one of: \(keys.sorted().joined(separator: ", "))")
        }
        return o
    }

    func string(_ o: JSONObject, _ key: String, path: String) throws(ConfigError) -> String? {
        guard let v = o[key], !v.isNull else { return nil }
        guard case .string(let s) = v else { throw error(join(path, key), "expected a string, found \(v.typeDescription)") }
        return s
    }

    func urlPath(_ o: JSONObject, _ key: String, path: String) throws(ConfigError) -> String? {
        guard let s = try string(o, key, path: path) else { return nil }
        guard s.hasPrefix("/"), s.count > 1, !s.hasSuffix("/") else {
            throw error(join(path, key), "expected a path like \"/janus\" (leading slash, no trailing slash), found \"\(s)\"")
        }
        return s
    }

    func bool(_ o: JSONObject, _ key: String, path: String) throws(ConfigError) -> Bool? {
        guard let v = o[key], !v.isNull else { return nil }
        guard case .bool(let b) = v else { throw error(join(path, key), "expected true or false, found \(v.typeDescription)") }
        return b
    }

    func int(_ o: JSONObject, _ key: String, path: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = o[key], !v.isNull else { return nil }
        guard case .int(let i) = v, range.contains(Int(i)) else {
            throw error(join(path, key), "expected an integer from \(range.lowerBound) to \(range.upperBound), found \(describe(v))")
        }
        return Int(i)
    }

    func number(_ o: JSONObject, _ key: String, path: String, range: ClosedRange<Double>) throws(ConfigError) -> Double? {
        guard let v = o[key], !v.isNull else { return nil }
        guard let d = v.doubleValue, range.contains(d) else {
            throw error(join(path, key), "expected a number from \(range.lowerBound) to \(range.upperBound), found \(describe(v))")
        }
        return d
    }

    private func describe(_ v: JSON) -> String {
        switch v {
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        default: return v.typeDescription
        }
    }
}
