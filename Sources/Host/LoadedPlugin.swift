import AtriumJSON
import Dispatch
import Logging
import PluginAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A plugin library that was loaded, created and initialised, with its serial control context.
///
/// Every [control] call of the ABI runs on `queue`, one at a time; the host table handed to the
/// plugin points back here through `host_data`.
final class LoadedPlugin: @unchecked Sendable {
    let id: String
    let name: String
    let pluginDescription: String
    let author: String
    let versionString: String
    let version: UInt32
    let abiVersion: atrium_version_t
    let aliases: [String]
    let libraryPath: String
    let queue: DispatchQueue
    let logger: Logger

    /// The plugin's table as the plugin owns it (passed back on every call) and our zero-extended copy.
    private(set) var pluginPointer: UnsafePointer<atrium_plugin_t>!
    private(set) var table = atrium_plugin_t()
    private(set) var service: atrium_plugin_service_t?
    private(set) var metrics: atrium_plugin_metrics_t?
    private(set) var admin: atrium_plugin_admin_t?
    private(set) var events: atrium_plugin_events_t?
    private(set) var tap: atrium_plugin_tap_t?
    private(set) var bandwidth: atrium_plugin_bandwidth_t?

    /// The host table given to this plugin; host_data is this object (unretained: it lives as long
    /// as the process keeps the plugin).
    let hostTable: UnsafeMutablePointer<atrium_host_t>
    weak var core: HostCore?

    /// Events pushed from this plugin's control context while a message is being handled wait here
    /// until the reply went out, so a client always sees "ack" before the event it announces.
    /// Touched only on `queue`.
    var deferredEvents: [() -> Void]?

    static let queueKey = DispatchSpecificKey<UInt>()
    var queueTag: UInt { UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()) }
    var isOnQueue: Bool { DispatchQueue.getSpecific(key: Self.queueKey) == queueTag }

    let timers = Mutex([UInt64: PluginTimer]())

    /// Whether the instance may still be called from [any] threads (metrics scrapes, health).
    /// Held while such a call runs, so destroy waits for it.
    private let alive = Mutex(true)
    /// Whether post_control still takes calls: closed by destroy before it queues the plugin's
    /// destroy, so every call posted before runs first. Never held while plugin code runs (a plugin
    /// may post from health or metrics, which run under `alive`).
    private let postsOpen = Mutex(true)
    /// Calls posted with post_control that have not run yet.
    private let postedCalls = Atomic<Int>(0)
    /// The most posted calls that may wait at once; a plugin that posts faster than its control
    /// context runs them is refused rather than grown without end.
    static let maximumPostedCalls = 65_536
    /// Whether the plugin's services were started (and so must be stopped).
    private let servicesRunning = Mutex(false)

    /// Loads the library, checks the descriptor, creates the instance and checks its table.
    /// `init` is not called yet (see `initialize`).
    init(library: PluginLibrary, aliases: [String], logger: Logger) throws(PluginLoadError) {
        let path = library.path
        guard let symbol = library.symbol(ATRIUM_PLUGIN_ENTRY_SYMBOL) else {
            throw PluginLoadError(code: .missingEntry, plugin: path, reason: "the library exports no \(ATRIUM_PLUGIN_ENTRY_SYMBOL) symbol: \(PluginLibrary.lastError())")
        }
        let entryFunction = unsafeBitCast(symbol, to: (@convention(c) () -> UnsafePointer<atrium_plugin_entry_t>?).self)
        guard let entryPointer = entryFunction() else {
            throw PluginLoadError(code: .invalidDescriptor, plugin: path, reason: "\(ATRIUM_PLUGIN_ENTRY_SYMBOL) returned NULL")
        }
        let declaredSize = UnsafeRawPointer(entryPointer).load(as: UInt32.self)
        guard declaredSize >= 8 else {
            throw PluginLoadError(code: .invalidDescriptor, plugin: path, reason: "descriptor struct_size \(declaredSize) is too small")
        }
        let entry = copyTable(entryPointer, declaredSize: declaredSize, as: atrium_plugin_entry_t.self)
        let abi = entry.abi_version
        guard abi.major == UInt16(ATRIUM_ABI_VERSION_MAJOR) else {
            throw PluginLoadError(code: .abiMismatch, plugin: path, reason: "built for plugin ABI \(abi.major).\(abi.minor), this host speaks ABI \(ATRIUM_ABI_VERSION_MAJOR).\(ATRIUM_ABI_VERSION_MINOR) (the major version must match)")
        }
        func text(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        let rawID: UnsafePointer<CChar>? = entry.id
        id = text(rawID)
        guard !id.isEmpty else {
            throw PluginLoadError(code: .invalidDescriptor, plugin: path, reason: "the descriptor has no id")
        }
        name = text(entry.name)
        pluginDescription = text(entry.description)
        author = text(entry.author)
        versionString = text(entry.version_string)
        version = entry.version
        abiVersion = abi
        self.aliases = aliases
        libraryPath = path
        var pluginLogger = logger
        pluginLogger[metadataKey: "plugin"] = .string(id)
        self.logger = pluginLogger
        queue = DispatchQueue(label: "atrium.plugin.\(id)")

        hostTable = .allocate(capacity: 1)
        hostTable.initialize(to: makeHostTable())
        hostTable.pointee.host_data = Unmanaged.passUnretained(self).toOpaque()
        queue.setSpecific(key: Self.queueKey, value: queueTag)

        guard let create = entry.create else {
            throw PluginLoadError(code: .invalidDescriptor, plugin: id, reason: "the descriptor has no create function")
        }
        var err = [CChar](repeating: 0, count: 1024)
        let created = queue.sync { create(hostTable, &err, err.count) }
        guard let created else {
            throw PluginLoadError(code: .createFailed, plugin: id, reason: "create failed: \(cStringBuffer(err))")
        }
        pluginPointer = created
        let tableSize = UnsafeRawPointer(created).load(as: UInt32.self)
        table = copyTable(created, declaredSize: tableSize, as: atrium_plugin_t.self)
        guard table.abi_version.major == UInt16(ATRIUM_ABI_VERSION_MAJOR) else {
            throw PluginLoadError(code: .abiMismatch, plugin: id, reason: "plugin table is ABI \(table.abi_version.major).\(table.abi_version.minor), this host speaks ABI \(ATRIUM_ABI_VERSION_MAJOR)")
        }
        let required: [(String, Bool)] = [
            ("init", table.`init` != nil), ("destroy", table.destroy != nil),
            ("handle_created", table.handle_created != nil), ("handle_destroyed", table.handle_destroyed != nil),
            ("handle_message", table.handle_message != nil),
        ]
        if let missing = required.first(where: { !$0.1 }) {
            throw PluginLoadError(code: .missingFunction, plugin: id, reason: "required function \(missing.0) is NULL")
        }
        service = lookupExtension(ATRIUM_EXT_SERVICE, as: atrium_plugin_service_t.self)
        metrics = lookupExtension(ATRIUM_EXT_METRICS, as: atrium_plugin_metrics_t.self)
        admin = lookupExtension(ATRIUM_EXT_ADMIN, as: atrium_plugin_admin_t.self)
        events = lookupExtension(ATRIUM_EXT_EVENTS, as: atrium_plugin_events_t.self)
        tap = lookupExtension(ATRIUM_EXT_TAP, as: atrium_plugin_tap_t.self)
        bandwidth = lookupExtension(ATRIUM_EXT_BANDWIDTH, as: atrium_plugin_bandwidth_t.self)
    }

    private func lookupExtension<T>(_ extensionID: String, as type: T.Type) -> T? {
        guard let get = table.get_extension, let p = get(pluginPointer, extensionID) else { return nil }
        return copyTable(p, declaredSize: p.load(as: UInt32.self), as: T.self)
    }

    /// Calls the plugin's init with its configuration object.
    func initialize(config: JSONObject) throws(PluginLoadError) {
        let text = JSON.object(config).serialized
        var err = [CChar](repeating: 0, count: 1024)
        let status = queue.sync {
            text.withCString { table.`init`!(pluginPointer, $0, strlen($0), &err, err.count) }
        }
        guard status == ATRIUM_OK else {
            throw PluginLoadError(code: .initFailed, plugin: id, reason: "init failed (status \(status)): \(cStringBuffer(err))")
        }
    }

    /// Starts the plugin's services, if it has any.
    func startServices() throws(PluginLoadError) {
        guard let start = service?.start else { return }
        var err = [CChar](repeating: 0, count: 1024)
        let status = queue.sync { start(pluginPointer, &err, err.count) }
        servicesRunning.withLock { $0 = status == ATRIUM_OK }
        guard status == ATRIUM_OK else {
            throw PluginLoadError(code: .startFailed, plugin: id, reason: "service start failed (status \(status)): \(cStringBuffer(err))")
        }
    }

    func stopServices() {
        let running = servicesRunning.withLock { r in
            defer { r = false }
            return r
        }
        guard running, let stop = service?.stop else { return }
        queue.sync { stop(pluginPointer) }
    }

    /// The service's health object, or nil if the plugin offers none.
    func health() -> JSON? {
        guard let health = service?.health else { return nil }
        return alive.withLock { alive -> JSON? in
            guard alive else { return nil }
            var out = [CChar](repeating: 0, count: 4096)
            guard health(pluginPointer, &out, out.count) == ATRIUM_OK else { return ["ok": false] }
            return try? JSON.parse(cStringBuffer(out))
        }
    }

    /// Cancels timers and destroys the instance (once). The library stays loaded.
    func destroy() {
        let wasAlive = alive.withLock { a in
            defer { a = false }
            return a
        }
        guard wasAlive else { return }
        postsOpen.withLock { $0 = false }
        let all = timers.withLock { t in
            defer { t.removeAll() }
            return Array(t.values)
        }
        for timer in all { timer.source.cancel() }
        queue.sync { table.destroy!(pluginPointer) }
    }

    /// post_control: runs `fn` on `queue` after what is queued there now ([any]).
    func postControl(_ fn: @escaping @convention(c) (UnsafePointer<atrium_plugin_t>, UnsafeMutableRawPointer?) -> Void,
                     userData: UnsafeMutableRawPointer?) -> Int32 {
        postsOpen.withLock { open -> Int32 in
            guard open, pluginPointer != nil else { return ATRIUM_ERR_STATE }
            guard postedCalls.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maximumPostedCalls else {
                postedCalls.wrappingSubtract(1, ordering: .relaxed)
                return ATRIUM_ERR_LIMIT
            }
            let userBits = UInt(bitPattern: userData)
            queue.async { [self] in
                postedCalls.wrappingSubtract(1, ordering: .relaxed)
                fn(pluginPointer, UnsafeMutableRawPointer(bitPattern: userBits))
            }
            return ATRIUM_OK
        }
    }

    // MARK: - Control calls (each runs on `queue`)

    func handleCreated(_ handle: Handle) -> String? {
        dispatchPrecondition(condition: .onQueue(queue))
        var err = [CChar](repeating: 0, count: 512)
        let status = table.handle_created!(pluginPointer, handle.raw, &err, err.count)
        if status == ATRIUM_OK { return nil }
        let reason = cStringBuffer(err)
        return reason.isEmpty ? "status \(status)" : reason
    }

    func handleDestroyed(_ handle: Handle) {
        dispatchPrecondition(condition: .onQueue(queue))
        handle.released = true
        table.handle_destroyed!(pluginPointer, handle.raw)
    }

    enum MessageResult {
        case reply(JSON)
        case ack(hint: String?)
        case error(String)
    }

    func handleMessage(_ handle: Handle, transaction: String, body: JSON, jsep: JSON?) -> MessageResult {
        dispatchPrecondition(condition: .onQueue(queue))
        let collector = ReplyCollector()
        let bodyText = body.serialized
        let jsepText = jsep?.serialized
        let outcome: Int32 = collector.withReply { reply in
            transaction.withCString { t in
                bodyText.withCString { b in
                    if let jsepText {
                        return jsepText.withCString { j in
                            table.handle_message!(pluginPointer, handle.raw, t, b, strlen(b), j, strlen(j), reply)
                        }
                    }
                    return table.handle_message!(pluginPointer, handle.raw, t, b, strlen(b), nil, 0, reply)
                }
            }
        }
        return result(of: collector, returned: outcome)
    }

    /// The collected reply, read by this plugin's ABI minor; a code the contract does not know is
    /// logged as misbehaving.
    private func result(of collector: ReplyCollector, returned: Int32) -> MessageResult {
        let code = ReplyCode(returned, abiMinor: table.abi_version.minor)
        if case .invalid(let value) = code {
            logger.error("misbehaving: handle_message returned \(value), which is not a reply code (ATRIUM_MESSAGE_REPLY, _ACK or _ERROR)")
        }
        return collector.result(code)
    }

    func adminMessage(_ body: JSON) -> MessageResult? {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let handler = admin?.handle_admin_message else { return nil }
        let collector = ReplyCollector()
        let text = body.serialized
        let outcome = collector.withReply { reply in text.withCString { handler(pluginPointer, $0, strlen($0), reply) } }
        return result(of: collector, returned: outcome)
    }

    func queryHandle(_ handle: Handle) -> JSON? {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let query = table.query_handle else { return nil }
        var capacity = 4096
        for _ in 0..<2 {
            var out = [CChar](repeating: 0, count: capacity)
            let status = query(pluginPointer, handle.raw, &out, capacity)
            if status == ATRIUM_OK {
                return try? JSON.parse(cStringBuffer(out))
            }
            guard status == ATRIUM_ERR_BUFFER_TOO_SMALL else { return nil }
            capacity = 1 << 20
        }
        return nil
    }

    func hangupMedia(_ handle: Handle, reason: Int32) {
        dispatchPrecondition(condition: .onQueue(queue))
        table.hangup_media?(pluginPointer, handle.raw, reason)
    }

    func deliverEvent(source: String, topic: String, event: JSON) {
        guard let onEvent = events?.on_event else { return }
        let text = event.serialized
        queue.async { [self] in
            source.withCString { s in topic.withCString { t in text.withCString { onEvent(pluginPointer, s, t, $0, strlen($0)) } } }
        }
    }

    /// The plugin's Prometheus lines, collected on the caller's thread ([any]).
    func collectMetrics() -> String {
        guard let collect = metrics?.collect else { return "" }
        return alive.withLock { alive in alive ? collectMetrics(collect) : "" }
    }

    private func collectMetrics(_ collect: @convention(c) (UnsafePointer<atrium_plugin_t>, UnsafePointer<atrium_metrics_writer_t>) -> Void) -> String {
        let sink = TextSink()
        var writer = atrium_metrics_writer_t()
        writer.struct_size = UInt32(MemoryLayout<atrium_metrics_writer_t>.size)
        writer.host_data = Unmanaged.passUnretained(sink).toOpaque()
        writer.write = { w, text, length in
            let sink = Unmanaged<TextSink>.fromOpaque(w.pointee.host_data!).takeUnretainedValue()
            sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: text, count: length))
        }
        withUnsafePointer(to: &writer) { collect(pluginPointer, $0) }
        return String(decoding: sink.bytes, as: UTF8.self)
    }

    var info: JSON {
        [
            "name": .string(name), "author": .string(author), "description": .string(pluginDescription),
            "version_string": .string(versionString), "version": .int(Int64(version)),
            "abi": .string("\(abiVersion.major).\(abiVersion.minor)"),
            "aliases": .array(aliases.map { .string($0) }),
        ]
    }
}

final class TextSink { var bytes: [UInt8] = [] }

/// Collects what a plugin says through an `atrium_reply_t` during one call.
final class ReplyCollector {
    var reply: JSON?
    var hint: String?
    var error: String?
    var invalidReply = false

    func withReply(_ body: (UnsafePointer<atrium_reply_t>) -> Int32) -> Int32 {
        var r = atrium_reply_t()
        r.struct_size = UInt32(MemoryLayout<atrium_reply_t>.size)
        r.host_data = Unmanaged.passUnretained(self).toOpaque()
        r.set_reply = { r, json, length in
            let c = Unmanaged<ReplyCollector>.fromOpaque(r.pointee.host_data!).takeUnretainedValue()
            guard let value = JSON.parse(borrowed: json, count: length), value.objectValue != nil else {
                c.invalidReply = true
                return ATRIUM_ERR_INVALID_ARGUMENT
            }
            c.reply = value
            return ATRIUM_OK
        }
        r.set_hint = { r, hint in
            Unmanaged<ReplyCollector>.fromOpaque(r.pointee.host_data!).takeUnretainedValue().hint = String(cString: hint)
            return ATRIUM_OK
        }
        r.set_error = { r, reason in
            Unmanaged<ReplyCollector>.fromOpaque(r.pointee.host_data!).takeUnretainedValue().error = String(cString: reason)
            return ATRIUM_OK
        }
        return withUnsafePointer(to: &r) { body($0) }
    }

    func result(_ code: ReplyCode) -> LoadedPlugin.MessageResult {
        switch code {
        case .reply:
            guard let reply else { return .error(invalidReply ? "plugin replied with something that is not a JSON object" : "plugin returned a reply without content") }
            return .reply(reply)
        case .ack:
            return .ack(hint: hint)
        case .error:
            return .error(error ?? "plugin error")
        case .failed(let status):
            return .error(error ?? "plugin failed (\(statusName(status)))")
        case .invalid(let value):
            return .error("plugin returned \(value), which is not a reply code")
        }
    }
}

/// A timer a plugin scheduled through "atrium.timer/1"; the source is only used through its
/// thread-safe cancel.
struct PluginTimer: @unchecked Sendable {
    let source: any DispatchSourceTimer
}

/// The text of a NUL-terminated C buffer the host handed to a plugin.
func cStringBuffer(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
