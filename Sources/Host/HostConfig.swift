public import AtriumJSON
import Foundation
import RTC

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
        /// The meeting web app's folder; nil: `web` in the working directory (see AtriumHost.webRoot).
        public var webRoot: String? = nil
        /// A request (head and body) must arrive within this long of its first byte, and a new
        /// connection must send one within this long of being accepted.
        public var headerTimeoutSeconds = 10.0
        /// A keep-alive connection with no request in progress is closed after this long.
        public var idleTimeoutSeconds = 60.0
        /// Who may read /metrics, the admin API and the details of /health.
        public var privateFrom: [AddressPrefix] = HTTP.loopback
        /// The Janus WebSocket API on this port too, at this path (deployments that expose one port).
        public var webSocketPath: String? = nil
        /// With TLS: a plain-HTTP port on the same address that redirects to the HTTPS one.
        public var redirectPort: Int? = nil
        static let loopback = [AddressPrefix("127.0.0.0/8")!, AddressPrefix("::1/128")!]
        public var tls = TLS()
    }

    /// TLS on a listener: a certificate from files (certbot's fullchain.pem and privkey.pem), or a
    /// self-signed one for trials on a LAN. Browsers give the camera only to https pages.
    public struct TLS: Sendable, Hashable {
        public var certificateFile: String? = nil
        public var keyFile: String? = nil
        /// Make a certificate for the advertised addresses; with the two files named, it is kept
        /// in them (made when they are missing, or when the one in them ends within 30 days).
        public var selfSigned = false
        public var enabled: Bool { selfSigned || certificateFile != nil }
    }

    public struct WebSocket: Sendable {
        public var enabled = true
        public var bind = "0.0.0.0"
        public var port = 8188
        public var maxMessageBytes = 1 << 20
        /// The upgrade request must arrive within this long of the connection being accepted.
        public var handshakeTimeoutSeconds = 10.0
        /// An upgraded connection that sends nothing for this long is closed (0: never).
        public var idleTimeoutSeconds = 150.0
        /// Bytes written to a client but not yet taken by its socket; beyond it the client is
        /// closed, since it is not reading.
        public var maxPendingBytes = 8 << 20
        public var tls = TLS()
    }

    public struct Sessions: Sendable {
        public var timeoutSeconds = 60.0
        public var reclaimSeconds = 0.0
        public var maxSessions = 10_000
        public var maxHandlesPerSession = 64
        public var maxQueuedEvents = 1_000
        /// Bytes of events kept for a session whose client does not poll.
        public var maxQueuedEventBytes = 4 << 20
    }

    public struct Limits: Sendable {
        /// Requests a second one connection may sustain, and the burst above it.
        public var requestsPerSecond = 200.0
        public var burst = 400.0
        /// The same across every connection of one client address (ClientAddress).
        public var addressRequestsPerSecond = 400.0
        public var addressBurst = 800.0
        /// What one client address may hold at once.
        public var sessionsPerAddress = 100
        public var handlesPerAddress = 1_000
        public var httpConnectionsPerAddress = 512
        public var webSocketConnectionsPerAddress = 128
        /// Connections of all clients together.
        public var maxHTTPConnections = 10_000
        public var maxWebSocketConnections = 10_000
        /// Client addresses tracked at once; beyond it new addresses are refused.
        public var maxAddresses = 100_000
    }

    /// How long a plugin may hold a thread before the watchdog names it (log and `/health`).
    public struct Watchdog: Sendable {
        public var controlMilliseconds = 1_000
        public var mediaMilliseconds = 100
    }

    public struct Admin: Sendable {
        /// The admin API answers only when a secret is set.
        public var secret: String? = nil
    }

    /// WebRTC media: `threads` media loops, each with one UDP port for its peers (ICE-lite) and
    /// optionally a passive ICE-TCP port.
    public struct Media: Sendable {
        /// "::": IPv4 and IPv6 on one socket per port; "0.0.0.0": IPv4 only.
        public var bind = "::"
        /// Media loops, each a thread of its own: by default one per core.
        public var threads = Media.defaultThreads
        /// The first loop's UDP port; loop i uses udp_port + i (0: each loop an ephemeral port).
        public var udpPort = 10_000
        /// ICE-TCP (RFC 6544 passive) port of the first loop, the others following as for UDP;
        /// nil for none.
        public var tcpPort: Int? = nil

        public static let maximumThreads = 64
        public static var defaultThreads: Int { min(max(1, ProcessInfo.processInfo.activeProcessorCount), maximumThreads) }

        /// The UDP port loop `loop` binds.
        public func udpPort(loop: Int) -> Int { udpPort == 0 ? 0 : udpPort + loop }

        /// The ICE-TCP port loop `loop` binds, if ICE-TCP is on.
        public func tcpPort(loop: Int) -> Int? { tcpPort.map { $0 == 0 ? 0 : $0 + loop } }
        /// Addresses put in candidates; empty means every non-loopback IPv4 address of the machine
        /// (loopback only when there is no other). Behind 1:1 NAT, list the public address.
        public var advertisedAddresses: [String] = []
        /// A peer whose connectivity checks stop for this long is hung up (RFC 7675 consent).
        public var consentTimeoutSeconds = 30.0
        /// No packet on a stream for this long: a `media` event with receiving false.
        public var noMediaSeconds = 1.0
        /// Lost packets per second on a stream that trigger `slowlink` (0: never).
        public var slowlinkThreshold = 0
        /// PEM files of the DTLS certificate and key; both nil: a fresh P-256 certificate at start.
        public var certificateFile: String? = nil
        public var keyFile: String? = nil
        /// Packets kept per outgoing video stream to answer NACKs.
        public var retransmissionPackets = 512
        /// What one session description may hold (m= sections, and per section candidates,
        /// SSRCs and rids); larger ones are refused before anything is set up.
        public var sdpLimits = SDPLimits()
        /// Incoming SSRCs tracked per media section (statistics, NACKs, simulcast layers); packets
        /// of further SSRCs are dropped until the stream is renegotiated.
        public var maxSSRCsPerStream = 16
        /// ICE restarts one PeerConnection may make in a minute; more are refused (465).
        public var iceRestartsPerMinute = 10
    }

    public var serverName = "Atrium"
    public var logLevel = "info"
    public var pluginsDirectory: String? = nil
    public var apiSecret: String? = nil
    /// Reverse proxies whose X-Forwarded-For is believed (see ProxyTrust).
    public var trustedProxies: [AddressPrefix] = []
    public var http = HTTP()
    public var webSocket = WebSocket()
    public var sessions = Sessions()
    public var limits = Limits()
    public var admin = Admin()
    public var media = Media()
    public var watchdog = Watchdog()
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
            "admin", "media", "watchdog", "plugins", "trusted_proxies",
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
        config.trustedProxies = try root.prefixes(top, "trusted_proxies", path: "") ?? []

        if let http = top["http"] {
            let o = try root.object(http, path: "http", keys: [
                "enabled", "bind", "port", "base_path", "admin_path", "long_poll_seconds", "max_body_bytes", "cors_origin",
                "web_root", "header_timeout_seconds", "idle_timeout_seconds", "private_from", "certificate_file", "key_file",
                "self_signed", "websocket_path", "redirect_port",
            ])
            config.http.enabled = try root.bool(o, "enabled", path: "http") ?? config.http.enabled
            config.http.bind = try root.string(o, "bind", path: "http") ?? config.http.bind
            config.http.port = try root.int(o, "port", path: "http", range: 0...65535) ?? config.http.port
            config.http.basePath = try root.urlPath(o, "base_path", path: "http") ?? config.http.basePath
            config.http.adminPath = try root.urlPath(o, "admin_path", path: "http") ?? config.http.adminPath
            config.http.longPollSeconds = try root.number(o, "long_poll_seconds", path: "http", range: 0.1...300) ?? config.http.longPollSeconds
            config.http.maxBodyBytes = try root.int(o, "max_body_bytes", path: "http", range: 256...(64 << 20)) ?? config.http.maxBodyBytes
            config.http.corsOrigin = try root.string(o, "cors_origin", path: "http")
            config.http.webRoot = try root.string(o, "web_root", path: "http")
            if config.http.webRoot == "" { throw root.error("http.web_root", "expected a folder path or null") }
            config.http.headerTimeoutSeconds = try root.number(o, "header_timeout_seconds", path: "http", range: 0.5...300) ?? config.http.headerTimeoutSeconds
            config.http.idleTimeoutSeconds = try root.number(o, "idle_timeout_seconds", path: "http", range: 0.5...3600) ?? config.http.idleTimeoutSeconds
            config.http.privateFrom = try root.prefixes(o, "private_from", path: "http") ?? config.http.privateFrom
            config.http.tls = try root.tls(o, path: "http")
            config.http.webSocketPath = try root.urlPath(o, "websocket_path", path: "http")
            config.http.redirectPort = try root.int(o, "redirect_port", path: "http", range: 0...65535)
            if config.http.redirectPort != nil, !config.http.tls.enabled {
                throw root.error("http.redirect_port", "redirects to HTTPS, so it needs TLS on http (certificate_file and key_file, or self_signed)")
            }
            if let r = config.http.redirectPort, r != 0, r == config.http.port {
                throw root.error("http.redirect_port", "must differ from http.port (\(r))")
            }
            if let ws = config.http.webSocketPath, ws == config.http.basePath || ws == config.http.adminPath || ws.hasPrefix(config.http.basePath + "/") {
                throw root.error("http.websocket_path", "must differ from base_path and admin_path, found \"\(ws)\"")
            }
        }
        if let ws = top["websocket"] {
            let o = try root.object(ws, path: "websocket", keys: [
                "enabled", "bind", "port", "max_message_bytes", "handshake_timeout_seconds", "idle_timeout_seconds", "max_pending_bytes",
                "certificate_file", "key_file", "self_signed",
            ])
            config.webSocket.enabled = try root.bool(o, "enabled", path: "websocket") ?? config.webSocket.enabled
            config.webSocket.bind = try root.string(o, "bind", path: "websocket") ?? config.webSocket.bind
            config.webSocket.port = try root.int(o, "port", path: "websocket", range: 0...65535) ?? config.webSocket.port
            config.webSocket.maxMessageBytes = try root.int(o, "max_message_bytes", path: "websocket", range: 256...(64 << 20)) ?? config.webSocket.maxMessageBytes
            config.webSocket.handshakeTimeoutSeconds = try root.number(o, "handshake_timeout_seconds", path: "websocket", range: 0.5...300) ?? config.webSocket.handshakeTimeoutSeconds
            config.webSocket.idleTimeoutSeconds = try root.number(o, "idle_timeout_seconds", path: "websocket", range: 0...86400) ?? config.webSocket.idleTimeoutSeconds
            config.webSocket.maxPendingBytes = try root.int(o, "max_pending_bytes", path: "websocket", range: (64 << 10)...(1 << 30)) ?? config.webSocket.maxPendingBytes
            config.webSocket.tls = try root.tls(o, path: "websocket")
        }
        if let sessions = top["sessions"] {
            let o = try root.object(sessions, path: "sessions", keys: [
                "timeout_seconds", "reclaim_seconds", "max_sessions", "max_handles_per_session", "max_queued_events",
                "max_queued_event_bytes",
            ])
            config.sessions.timeoutSeconds = try root.number(o, "timeout_seconds", path: "sessions", range: 0...86400) ?? config.sessions.timeoutSeconds
            config.sessions.reclaimSeconds = try root.number(o, "reclaim_seconds", path: "sessions", range: 0...86400) ?? config.sessions.reclaimSeconds
            config.sessions.maxSessions = try root.int(o, "max_sessions", path: "sessions", range: 1...10_000_000) ?? config.sessions.maxSessions
            config.sessions.maxHandlesPerSession = try root.int(o, "max_handles_per_session", path: "sessions", range: 1...100_000) ?? config.sessions.maxHandlesPerSession
            config.sessions.maxQueuedEvents = try root.int(o, "max_queued_events", path: "sessions", range: 1...1_000_000) ?? config.sessions.maxQueuedEvents
            config.sessions.maxQueuedEventBytes = try root.int(o, "max_queued_event_bytes", path: "sessions", range: (4 << 10)...(1 << 30)) ?? config.sessions.maxQueuedEventBytes
        }
        if let limits = top["limits"] {
            config.limits = try parseLimits(limits, root)
        }
        if let admin = top["admin"] {
            let o = try root.object(admin, path: "admin", keys: ["secret"])
            config.admin.secret = try root.string(o, "secret", path: "admin")
            if config.admin.secret == "" { throw root.error("admin.secret", "expected a non-empty string or null") }
        }
        if let media = top["media"] {
            config.media = try parseMedia(media, root)
        }
        if let watchdog = top["watchdog"] {
            let o = try root.object(watchdog, path: "watchdog", keys: ["control_ms", "media_ms"])
            config.watchdog.controlMilliseconds = try root.int(o, "control_ms", path: "watchdog", range: 10...600_000) ?? config.watchdog.controlMilliseconds
            config.watchdog.mediaMilliseconds = try root.int(o, "media_ms", path: "watchdog", range: 5...60_000) ?? config.watchdog.mediaMilliseconds
        }
        // Rationale: a WebSocket whose sessions are alive sends at least one request per session
        // timeout (or its sessions die), so an idle timeout above it never closes a live client.
        // Unset, it follows a longer session timeout, so configurations that predate it still load.
        let webSocketIdleGiven = top["websocket"]?["idle_timeout_seconds"] != nil
        if !webSocketIdleGiven, config.sessions.timeoutSeconds > 0 {
            config.webSocket.idleTimeoutSeconds = max(config.webSocket.idleTimeoutSeconds, config.sessions.timeoutSeconds * 2.5)
        }
        if config.webSocket.idleTimeoutSeconds > 0, config.sessions.timeoutSeconds > 0,
            config.webSocket.idleTimeoutSeconds <= config.sessions.timeoutSeconds
        {
            throw root.error("websocket.idle_timeout_seconds", "must be longer than sessions.timeout_seconds (\(config.sessions.timeoutSeconds)), or 0 for none; found \(config.webSocket.idleTimeoutSeconds)")
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

extension HostConfig {
    static func parseLimits(_ json: JSON, _ root: ConfigReader) throws(ConfigError) -> Limits {
        var l = Limits()
        let path = "limits"
        let o = try root.object(json, path: path, keys: [
            "requests_per_second", "burst", "address_requests_per_second", "address_burst", "sessions_per_address",
            "handles_per_address", "http_connections_per_address", "websocket_connections_per_address",
            "max_http_connections", "max_websocket_connections", "max_addresses",
        ])
        l.requestsPerSecond = try root.number(o, "requests_per_second", path: path, range: 0.1...1_000_000) ?? l.requestsPerSecond
        l.burst = try root.number(o, "burst", path: path, range: 1...1_000_000) ?? l.burst
        l.addressRequestsPerSecond = try root.number(o, "address_requests_per_second", path: path, range: 0.1...1_000_000) ?? l.addressRequestsPerSecond
        l.addressBurst = try root.number(o, "address_burst", path: path, range: 1...1_000_000) ?? l.addressBurst
        l.sessionsPerAddress = try root.int(o, "sessions_per_address", path: path, range: 1...10_000_000) ?? l.sessionsPerAddress
        l.handlesPerAddress = try root.int(o, "handles_per_address", path: path, range: 1...10_000_000) ?? l.handlesPerAddress
        l.httpConnectionsPerAddress = try root.int(o, "http_connections_per_address", path: path, range: 1...1_000_000) ?? l.httpConnectionsPerAddress
        l.webSocketConnectionsPerAddress = try root.int(o, "websocket_connections_per_address", path: path, range: 1...1_000_000) ?? l.webSocketConnectionsPerAddress
        l.maxHTTPConnections = try root.int(o, "max_http_connections", path: path, range: 1...1_000_000) ?? l.maxHTTPConnections
        l.maxWebSocketConnections = try root.int(o, "max_websocket_connections", path: path, range: 1...1_000_000) ?? l.maxWebSocketConnections
        l.maxAddresses = try root.int(o, "max_addresses", path: path, range: 1...10_000_000) ?? l.maxAddresses
        if l.httpConnectionsPerAddress > l.maxHTTPConnections {
            throw root.error("limits.http_connections_per_address", "must not exceed limits.max_http_connections (\(l.maxHTTPConnections)), found \(l.httpConnectionsPerAddress)")
        }
        if l.webSocketConnectionsPerAddress > l.maxWebSocketConnections {
            throw root.error("limits.websocket_connections_per_address", "must not exceed limits.max_websocket_connections (\(l.maxWebSocketConnections)), found \(l.webSocketConnectionsPerAddress)")
        }
        return l
    }

    static func parseMedia(_ json: JSON, _ root: ConfigReader) throws(ConfigError) -> Media {
        var m = Media()
        let path = "media"
        let o = try root.object(json, path: path, keys: [
            "bind", "threads", "udp_port", "tcp_port", "advertised_addresses", "consent_timeout_seconds", "no_media_seconds",
            "slowlink_threshold", "certificate_file", "key_file", "retransmission_packets",
            "max_media_sections", "max_candidates_per_section", "max_ssrcs_per_section", "max_rids_per_section",
            "max_ssrcs_per_stream", "ice_restarts_per_minute",
        ])
        m.bind = try root.string(o, "bind", path: path) ?? m.bind
        guard IPText.isValid(m.bind) else { throw root.error("media.bind", "expected an IP address such as \"::\" or \"0.0.0.0\", found \"\(m.bind)\"") }
        m.threads = try root.int(o, "threads", path: path, range: 1...Media.maximumThreads) ?? m.threads
        m.udpPort = try root.int(o, "udp_port", path: path, range: 0...65535) ?? m.udpPort
        m.tcpPort = try root.int(o, "tcp_port", path: path, range: 0...65535)
        // Each loop takes the next port: the last must still be one.
        for (key, first) in [("udp_port", m.udpPort), ("tcp_port", m.tcpPort ?? 0)] where first != 0 && first + m.threads - 1 > 65535 {
            throw root.error("media.\(key)", "with \(m.threads) media threads the ports run from \(first) to \(first + m.threads - 1), past 65535")
        }
        if let a = o["advertised_addresses"], !a.isNull {
            guard case .array(let items) = a else {
                throw root.error("media.advertised_addresses", "expected an array of IP addresses, found \(a.typeDescription)")
            }
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item, let ip = IPAddress(s), ip != .v4(0), ip != .v6(0, 0) else {
                    throw root.error("media.advertised_addresses[\(i)]", "expected an IP address such as \"203.0.113.7\" or \"2001:db8::7\", found \(item.stringValue.map { "\"\($0)\"" } ?? item.typeDescription)")
                }
                m.advertisedAddresses.append(s)
            }
        }
        m.consentTimeoutSeconds = try root.number(o, "consent_timeout_seconds", path: path, range: 1...600) ?? m.consentTimeoutSeconds
        m.noMediaSeconds = try root.number(o, "no_media_seconds", path: path, range: 0.1...3600) ?? m.noMediaSeconds
        m.slowlinkThreshold = try root.int(o, "slowlink_threshold", path: path, range: 0...100_000) ?? m.slowlinkThreshold
        m.certificateFile = try root.string(o, "certificate_file", path: path)
        m.keyFile = try root.string(o, "key_file", path: path)
        if (m.certificateFile == nil) != (m.keyFile == nil) {
            throw root.error("media", "certificate_file and key_file go together: give both or neither")
        }
        m.retransmissionPackets = try root.int(o, "retransmission_packets", path: path, range: 16...32_768) ?? m.retransmissionPackets
        m.sdpLimits.mediaSections = try root.int(o, "max_media_sections", path: path, range: 1...1024) ?? m.sdpLimits.mediaSections
        m.sdpLimits.candidatesPerSection = try root.int(o, "max_candidates_per_section", path: path, range: 1...1024) ?? m.sdpLimits.candidatesPerSection
        m.sdpLimits.ssrcsPerSection = try root.int(o, "max_ssrcs_per_section", path: path, range: 1...1024) ?? m.sdpLimits.ssrcsPerSection
        m.sdpLimits.ridsPerSection = try root.int(o, "max_rids_per_section", path: path, range: 1...64) ?? m.sdpLimits.ridsPerSection
        m.maxSSRCsPerStream = try root.int(o, "max_ssrcs_per_stream", path: path, range: 2...1024) ?? m.maxSSRCsPerStream
        m.iceRestartsPerMinute = try root.int(o, "ice_restarts_per_minute", path: path, range: 1...600) ?? m.iceRestartsPerMinute
        return m
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

    /// A list of address prefixes (`["127.0.0.0/8", "::1/128"]`); an empty list admits no one.
    func prefixes(_ o: JSONObject, _ key: String, path: String) throws(ConfigError) -> [AddressPrefix]? {
        guard let v = o[key], !v.isNull else { return nil }
        guard case .array(let items) = v else {
            throw error(join(path, key), "expected an array of address prefixes such as [\"127.0.0.0/8\", \"::1/128\"], found \(v.typeDescription)")
        }
        return try items.enumerated().map { (i, item) throws(ConfigError) in
            guard case .string(let s) = item, let prefix = AddressPrefix(s) else {
                throw error("\(join(path, key))[\(i)]", "expected an address prefix such as \"10.0.0.0/8\" or \"::1/128\" (or one address), found \(item.stringValue.map { "\"\($0)\"" } ?? item.typeDescription)")
            }
            return prefix
        }
    }

    /// `certificate_file`, `key_file` and `self_signed` of a listener. Whether the files can be
    /// read and hold a valid pair is checked when the listener is set up (`check-config` does that
    /// too), since certbot may put them there after the configuration was written.
    func tls(_ o: JSONObject, path: String) throws(ConfigError) -> HostConfig.TLS {
        var tls = HostConfig.TLS()
        tls.certificateFile = try string(o, "certificate_file", path: path)
        tls.keyFile = try string(o, "key_file", path: path)
        tls.selfSigned = try bool(o, "self_signed", path: path) ?? false
        if (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw error(path, "certificate_file and key_file go together: give both or neither")
        }
        if tls.certificateFile == "" || tls.keyFile == "" {
            throw error(path, "certificate_file and key_file must be file paths")
        }
        return tls
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
