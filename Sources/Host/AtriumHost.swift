public import Logging
public import ServiceLifecycle
import AtriumJSON
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import RTC
import Synchronization

/// The Atrium host as a library: plugins loaded from the configuration, the Janus API on HTTP and
/// WebSocket, the admin API and metrics. `main` builds one and runs it; tests build one from an
/// in-memory configuration on port 0.
public final class AtriumHost: Service, Sendable {
    public let config: HostConfig
    let core: HostCore
    let logger: Logger
    let webApp: WebApp
    private let group: MultiThreadedEventLoopGroup
    private let channels = Mutex<[any Channel]>([])
    private let sweeper = Mutex<PluginTimer?>(nil)
    private let stopped = Mutex(false)
    /// Finished when the host stops, however that happens: `run` waits on it (a timer polling a
    /// flag woke a thread five times a second for nothing).
    private let ended = AsyncStream.makeStream(of: Void.self)
    /// The listeners' certificates, nil for a listener without TLS.
    let httpCertificate: ListenerCertificate?
    let webSocketCertificate: ListenerCertificate?
    private let reloads: CertificateReloads

    /// Loads every enabled plugin (create + init). A plugin that fails stops this unless its entry
    /// is `optional`, in which case it is logged and skipped.
    public init(config: HostConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        let loops = try MediaLoops(config: config.media, logger: logger)
        (httpCertificate, webSocketCertificate) = try Self.listenerCertificates(config: config, advertised: loops.advertised, logger: logger)
        reloads = CertificateReloads(listeners: Self.reloadable(httpCertificate, webSocketCertificate), logger: logger)
        let loaded = try Self.loadPlugins(config: config, logger: logger)
        core = HostCore(config: config, plugins: loaded, loops: loops, logger: logger)
        webApp = WebApp(root: Self.webRoot(for: config), janusPath: config.http.basePath, webSocketPath: config.http.webSocketPath)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
    }

    /// The certificates of the HTTP and WebSocket listeners that have TLS; one certificate when
    /// both are set up alike, so a self-signed one is trusted once for both.
    static func listenerCertificates(config: HostConfig, advertised: [IPAddress], logger: Logger) throws(TLSSetupError)
        -> (http: ListenerCertificate?, webSocket: ListenerCertificate?) {
        let addresses = advertised.map(\.description) + ["127.0.0.1", "::1"]
        var hostNames = ["localhost"]
        if let name = machineHostName(), name != "localhost" { hostNames.append(name) }
        func make(_ tls: HostConfig.TLS, _ listener: String) throws(TLSSetupError) -> ListenerCertificate? {
            guard tls.enabled else { return nil }
            return try ListenerCertificate(settings: tls, listener: listener, addresses: addresses, hostNames: hostNames, logger: logger)
        }
        let http = config.http.enabled ? try make(config.http.tls, "http") : nil
        guard config.webSocket.enabled else { return (http, nil) }
        if let http, http.settings == config.webSocket.tls { return (http, http) }
        return (http, try make(config.webSocket.tls, "websocket"))
    }

    static func reloadable(_ http: ListenerCertificate?, _ webSocket: ListenerCertificate?) -> [(name: String, certificate: ListenerCertificate)] {
        switch (http, webSocket) {
        case let (h?, w?) where h === w: return [("http and websocket", h)]
        default: return [("http", http), ("websocket", webSocket)].compactMap { name, c in c.map { (name, $0) } }
        }
    }

    /// The machine's host name when it can go in a certificate as a DNS name.
    static func machineHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = cStringBuffer(buffer)
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }) else { return nil }
        return name
    }

    /// Where relative plugin library names are looked up: `ATRIUM_PLUGINS_DIR`, then `plugins_dir`
    /// (relative to the configuration file), then the folder of the running executable (the build
    /// folder puts the plugins beside `atrium`).
    public static func pluginsDirectory(for config: HostConfig) -> String {
        if let env = ProcessInfo.processInfo.environment["ATRIUM_PLUGINS_DIR"], !env.isEmpty { return env }
        if let dir = config.pluginsDirectory {
            if dir.hasPrefix("/") { return dir }
            let base = (config.source as NSString).deletingLastPathComponent
            return ((base.isEmpty ? "." : base) as NSString).appendingPathComponent(dir)
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    static func loadPlugins(config: HostConfig, logger: Logger) throws(PluginLoadError) -> [LoadedPlugin] {
        let directory = pluginsDirectory(for: config)
        var loaded: [LoadedPlugin] = []
        var names: [String: String] = [:]
        for entry in config.plugins where entry.enabled {
            let path = entry.library.hasPrefix("/") ? entry.library : (directory as NSString).appendingPathComponent(entry.library)
            var created: LoadedPlugin?
            do throws(PluginLoadError) {
                let library = try PluginLibrary(path: path)
                let plugin = try LoadedPlugin(library: library, aliases: entry.aliases, logger: logger)
                created = plugin
                for name in [plugin.id] + plugin.aliases {
                    if let other = names[name] {
                        throw PluginLoadError(code: .duplicateID, plugin: plugin.id, reason: "\(entry.keyPath): id or alias \"\(name)\" is already used by \(other)")
                    }
                }
                try plugin.initialize(config: entry.config)
                for name in [plugin.id] + plugin.aliases { names[name] = "\(entry.keyPath) (\(entry.library))" }
                loaded.append(plugin)
                logger.info("plugin loaded", metadata: [
                    "plugin": "\(plugin.id)", "version": "\(plugin.versionString)", "aliases": "\(plugin.aliases.joined(separator: ","))",
                ])
            } catch {
                // The header promises destroy after a created instance fails.
                created?.destroy()
                var error = error
                if error.plugin == path || error.plugin.isEmpty { error.plugin = "\(entry.keyPath) (\(entry.library))" } else { error.plugin += " [\(entry.keyPath)]" }
                if entry.optional {
                    logger.warning("optional plugin skipped", metadata: ["reason": "\(error)"])
                    continue
                }
                for p in loaded.reversed() { p.destroy() }
                throw error
            }
        }
        return loaded
    }

    /// The ports actually bound (useful with port 0).
    public private(set) var httpPort: Int? {
        get { ports.withLock { $0.http } }
        set { ports.withLock { $0.http = newValue } }
    }
    /// The plain-HTTP port that redirects to HTTPS (`http.redirect_port`), once bound.
    public private(set) var redirectPort: Int? {
        get { ports.withLock { $0.redirect } }
        set { ports.withLock { $0.redirect = newValue } }
    }
    public private(set) var webSocketPort: Int? {
        get { ports.withLock { $0.ws } }
        set { ports.withLock { $0.ws = newValue } }
    }
    private let ports = Mutex<(http: Int?, ws: Int?, redirect: Int?)>((nil, nil, nil))

    /// Starts plugin services and binds the listeners.
    public func start() async throws {
        do throws(PluginLoadError) {
            for plugin in core.plugins { try plugin.startServices() }
        } catch {
            logger.critical("cannot start: \(error)")
            core.shutdown()
            throw error
        }
        do throws(MediaSocketError) {
            try core.loops.start()
        } catch {
            logger.critical("cannot start: \(error)")
            core.shutdown()
            throw error
        }
        core.watchdog.start()
        let core = self.core
        let webApp = self.webApp
        let config = self.config
        let logger = self.logger
        let httpCertificate = self.httpCertificate
        let webSocketCertificate = self.webSocketCertificate
        reloads.start()
        if config.http.enabled {
            let channel = try await listener()
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard core.admit(channel, .http) else { return }
                        if let httpCertificate {
                            try channel.pipeline.syncOperations.addHandler(TLSHandler(connection: try httpCertificate.context.accept(), logger: logger))
                        }
                        let deadline = core.connectionDeadline(header: config.http.headerTimeoutSeconds, idle: config.http.idleTimeoutSeconds)
                        // No reading while the socket cannot take our writes: a client that pipelines
                        // requests and never reads the answers would otherwise have them pile up here.
                        try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                        try channel.pipeline.syncOperations.addHandler(deadline)
                        if let path = config.http.webSocketPath {
                            let upgrader = janusWebSocketUpgrader(core: core, peer: channel.remoteAddress, deadline: NIOLoopBound(deadline, eventLoop: channel.eventLoop),
                                                                  path: path, replacing: HTTPHandler.name)
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                                withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }), withErrorHandling: true)
                        } else {
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        }
                        try channel.pipeline.syncOperations.addHandler(HTTPHandler(core: core, webApp: webApp, peer: channel.remoteAddress, deadline: deadline),
                                                                       name: HTTPHandler.name)
                    }
                }
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .bind(to: listenAddress(config.http.bind, config.http.port)).get()
            channels.withLock { $0.append(channel) }
            httpPort = channel.localAddress?.port
            logger.info(httpCertificate == nil ? "Janus API over HTTP" : "Janus API over HTTPS",
                        metadata: ["address": "\(config.http.bind):\(httpPort ?? 0)", "path": "\(config.http.basePath)"])
            if let httpCertificate { logCertificate(httpCertificate, listener: "http") }
            if let port = config.http.redirectPort, let httpsPort = httpPort {
                try await bindRedirect(port: port, to: httpsPort)
            }
            if FileManager.default.fileExists(atPath: webApp.root + "/index.html") {
                logger.info("meeting web app", metadata: ["address": "\(config.http.bind):\(httpPort ?? 0)", "folder": "\(webApp.root)"])
                for url in meetingURLs() { logger.notice("open the meeting app at \(url)") }
            } else {
                logger.notice("no meeting web app: \(webApp.root)/index.html does not exist (set http.web_root)")
            }
        }
        if config.webSocket.enabled {
            let channel = try await listener()
                .childChannelInitializer { channel in
                    guard core.admit(channel, .webSocket) else { return channel.eventLoop.makeSucceededVoidFuture() }
                    // The handshake is HTTP: it gets the header timeout, and no idle phase before it.
                    let deadline = core.connectionDeadline(header: config.webSocket.handshakeTimeoutSeconds, idle: config.webSocket.handshakeTimeoutSeconds)
                    let boundDeadline = NIOLoopBound(deadline, eventLoop: channel.eventLoop)
                    let upgrader = janusWebSocketUpgrader(core: core, peer: channel.remoteAddress, deadline: boundDeadline, path: nil,
                                                          replacing: UpgradeRequiredHandler.name)
                    return channel.eventLoop.makeCompletedFuture {
                        if let webSocketCertificate {
                            try channel.pipeline.syncOperations.addHandler(TLSHandler(connection: try webSocketCertificate.context.accept(), logger: logger))
                        }
                        try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                        try channel.pipeline.syncOperations.addHandler(boundDeadline.value)
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }),
                            withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(UpgradeRequiredHandler(), name: UpgradeRequiredHandler.name)
                    }
                }
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .bind(to: listenAddress(config.webSocket.bind, config.webSocket.port)).get()
            channels.withLock { $0.append(channel) }
            webSocketPort = channel.localAddress?.port
            // An https page may not open a ws:// socket (mixed content): it long-polls instead.
            if httpCertificate != nil, webSocketCertificate == nil {
                logger.notice("the web app uses HTTP long polls: its page is https and the WebSocket port has no TLS")
            } else {
                webApp.setWebSocketPort(webSocketPort)
            }
            logger.info(webSocketCertificate == nil ? "Janus API over WebSocket" : "Janus API over secure WebSocket",
                        metadata: ["address": "\(config.webSocket.bind):\(webSocketPort ?? 0)"])
            if let webSocketCertificate, webSocketCertificate !== httpCertificate { logCertificate(webSocketCertificate, listener: "websocket") }
        }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "atrium.sessions.sweeper"))
        timer.schedule(deadline: .now() + .seconds(1), repeating: .milliseconds(500))
        timer.setEventHandler { core.sweep() }
        timer.resume()
        let entry = PluginTimer(source: timer)
        sweeper.withLock { $0 = entry }
    }

    /// Where a listener binds. An IP address is taken as it is: resolving "::" goes through
    /// getaddrinfo, which refuses IPv6 on a machine with no IPv6 address but loopback, though
    /// binding "::" there still serves IPv4 (dual-stack).
    private func listenAddress(_ host: String, _ port: Int) throws -> NIOCore.SocketAddress {
        if let numeric = try? NIOCore.SocketAddress(ipAddress: host, port: port) { return numeric }
        return try NIOCore.SocketAddress.makeAddressResolvingHost(host, port: port)
    }

    /// A TCP listener as every port of the host has one.
    private func listener() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    }

    /// The plain-HTTP listener that redirects to the HTTPS port: admitted and timed like the HTTP
    /// port's connections, one answer each.
    private func bindRedirect(port: Int, to httpsPort: Int) async throws {
        let core = core
        let config = config
        let channel = try await listener()
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard core.admit(channel, .http) else { return }
                    let deadline = core.connectionDeadline(header: config.http.headerTimeoutSeconds, idle: config.http.headerTimeoutSeconds)
                    try channel.pipeline.syncOperations.addHandler(deadline)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPSRedirectHandler(httpsPort: httpsPort))
                }
            }
            .bind(to: listenAddress(config.http.bind, port)).get()
        channels.withLock { $0.append(channel) }
        redirectPort = channel.localAddress?.port
        logger.info("plain HTTP redirected to HTTPS", metadata: ["address": "\(config.http.bind):\(redirectPort ?? 0)"])
    }

    /// What a browser needs to trust a certificate it cannot check with a CA: its fingerprints.
    private func logCertificate(_ certificate: ListenerCertificate, listener: String) {
        let context = certificate.context
        logger.notice("TLS certificate", metadata: [
            "listener": "\(listener)", "self_signed": "\(certificate.settings.selfSigned)", "sha256": "\(context.fingerprint)",
            "spki_sha256": "\(context.publicKeyHash)", "expires": "\(CertificateTime.text(context.notAfter))",
        ])
    }

    /// The web app's address at each advertised address: what people on other machines open.
    func meetingURLs() -> [String] {
        guard let port = httpPort else { return [] }
        let scheme = httpCertificate == nil ? "http" : "https"
        return core.loops.advertised.map { "\(scheme)://\(TransportAddress(ip: $0, port: UInt16(clamping: port)))/" }
    }

    /// Closes the listeners, destroys every session, stops services and plugins.
    public func shutdown() async {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard first else { return }
        ended.continuation.finish()
        reloads.stop()
        sweeper.withLock { $0?.source.cancel(); $0 = nil }
        let open = channels.withLock { c in
            defer { c.removeAll() }
            return c
        }
        for channel in open { try? await channel.close() }
        core.shutdown()
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    /// Runs until a graceful shutdown is triggered (SIGTERM/SIGINT through the service group).
    public func run() async throws {
        try await start()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                for await _ in self.ended.stream {}
            } onCancel: {
                self.ended.continuation.finish()
            }
        } onGracefulShutdown: {
            self.logger.info("shutting down")
            self.ended.continuation.finish()
        }
        await shutdown()
    }

    /// For tests: the number of open sessions and handles.
    public var counts: (sessions: Int, handles: Int) { core.counts }
}
