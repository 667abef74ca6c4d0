public import PluginAPI
import AtriumJSON
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Builds the C descriptor and tables for a Swift plugin.
///
/// The C function pointers cannot capture context, so the factory and the descriptor live in this
/// library's globals (each plugin library has its own copy of PluginKit) and the plugin object
/// travels in `plugin_data` as an `Unmanaged` reference, retained once in create and released once
/// in destroy.
public enum PluginEntry {
    nonisolated(unsafe) private static var entry: UnsafeMutablePointer<atrium_plugin_entry_t>?
    nonisolated(unsafe) private static var factory: ((PluginHost) -> any AtriumPlugin)?
    nonisolated(unsafe) private static var descriptorID: String = ""

    /// Returns the library's static descriptor; call it from the plugin's `@c(atrium_plugin_entry)`.
    /// Called on the host's control thread, once per load.
    public static func make(
        _ descriptor: PluginDescriptor,
        factory: @escaping (PluginHost) -> any AtriumPlugin
    ) -> UnsafePointer<atrium_plugin_entry_t> {
        if let entry { return UnsafePointer(entry) }
        Self.factory = factory
        Self.descriptorID = descriptor.id
        let e = zeroedTable(atrium_plugin_entry_t.self)
        e.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_entry_t>.size)
        e.pointee.abi_version = atrium_version_t(major: UInt16(ATRIUM_ABI_VERSION_MAJOR), minor: UInt16(ATRIUM_ABI_VERSION_MINOR))
        // Static strings: owned by the library for as long as it is loaded.
        e.pointee.id = UnsafePointer(strdup(descriptor.id))
        e.pointee.name = UnsafePointer(strdup(descriptor.name))
        e.pointee.description = UnsafePointer(strdup(descriptor.description))
        e.pointee.author = UnsafePointer(strdup(descriptor.author))
        e.pointee.version_string = UnsafePointer(strdup(descriptor.versionString))
        e.pointee.version = descriptor.version
        e.pointee.create = { host, err, cap in PluginEntry.create(host: host, err: err, cap: cap) }
        entry = e
        return UnsafePointer(e)
    }

    static func create(host: UnsafePointer<atrium_host_t>, err: UnsafeMutablePointer<CChar>, cap: Int) -> UnsafePointer<atrium_plugin_t>? {
        guard let factory else {
            copyCString("plugin factory missing", to: err, capacity: cap)
            return nil
        }
        let pluginHost = PluginHost(raw: host)
        let box = PluginBox(plugin: factory(pluginHost), host: pluginHost)
        let table = zeroedTable(atrium_plugin_t.self)
        table.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_t>.size)
        table.pointee.abi_version = atrium_version_t(major: UInt16(ATRIUM_ABI_VERSION_MAJOR), minor: UInt16(ATRIUM_ABI_VERSION_MINOR))
        table.pointee.plugin_data = Unmanaged.passRetained(box).toOpaque()
        table.pointee.`init` = { p, config, length, err, cap in
            let box = PluginBox.from(p)
            let object = parseObject(config, length) ?? [:]
            do throws(PluginFailure) {
                try box.plugin.start(config: object)
                return ATRIUM_OK
            } catch {
                copyCString(error.message, to: err, capacity: cap)
                return ATRIUM_ERR_INVALID_ARGUMENT
            }
        }
        table.pointee.destroy = { p in
            let box = PluginBox.from(p)
            box.plugin.stop()
            Unmanaged<PluginBox>.fromOpaque(p.pointee.plugin_data!).release()
            // The table itself stays allocated: the host may still hold the pointer until dlclose.
        }
        table.pointee.get_extension = { p, id in PluginBox.from(p).extensionTable(String(cString: id)) }
        table.pointee.handle_created = { p, handle, err, cap in
            do throws(PluginFailure) {
                try PluginBox.from(p).plugin.handleCreated(PluginHandle(raw: handle))
                return ATRIUM_OK
            } catch {
                copyCString(error.message, to: err, capacity: cap)
                return ATRIUM_ERR_STATE
            }
        }
        table.pointee.handle_destroyed = { p, handle in
            PluginBox.from(p).plugin.handleDestroyed(PluginHandle(raw: handle))
        }
        table.pointee.handle_message = { p, handle, transaction, body, bodyLength, jsep, jsepLength, reply in
            let box = PluginBox.from(p)
            guard let object = parseObject(body, bodyLength) else {
                _ = reply.pointee.set_error?(reply, "message body is not a JSON object")
                return ATRIUM_MESSAGE_ERROR
            }
            let outcome = box.plugin.handleMessage(
                PluginHandle(raw: handle),
                transaction: String(cString: transaction),
                body: object,
                jsep: parseObject(jsep, jsepLength)
            )
            return PluginEntry.respond(outcome, through: reply)
        }
        table.pointee.setup_media = { p, handle in PluginBox.from(p).plugin.setupMedia(PluginHandle(raw: handle)) }
        table.pointee.hangup_media = { p, handle, reason in
            PluginBox.from(p).plugin.hangupMedia(PluginHandle(raw: handle), reason: reason)
        }
        table.pointee.incoming_rtp = { p, handle, packet in PluginBox.from(p).plugin.incomingRTP(PluginHandle(raw: handle), packet) }
        table.pointee.incoming_rtcp = { p, handle, packet in PluginBox.from(p).plugin.incomingRTCP(PluginHandle(raw: handle), packet) }
        table.pointee.media_state = { p, handle, mid, isVideo, receiving in
            PluginBox.from(p).plugin.mediaState(PluginHandle(raw: handle), mid: String(cString: mid), isVideo: isVideo != 0, receiving: receiving != 0)
        }
        table.pointee.slow_link = { p, handle, mid, isVideo, uplink, lost in
            PluginBox.from(p).plugin.slowLink(PluginHandle(raw: handle), mid: String(cString: mid), isVideo: isVideo != 0, uplink: uplink != 0, lost: lost)
        }
        table.pointee.query_handle = { p, handle, out, cap in
            let text = JSON.object(PluginBox.from(p).plugin.describe(PluginHandle(raw: handle))).serialized
            guard text.utf8.count < cap else { return ATRIUM_ERR_BUFFER_TOO_SMALL }
            copyCString(text, to: out, capacity: cap)
            return ATRIUM_OK
        }
        return UnsafePointer(table)
    }

    static func respond(_ outcome: MessageOutcome, through reply: UnsafePointer<atrium_reply_t>) -> Int32 {
        switch outcome {
        case .reply(let json):
            let text = json.serialized
            let status = text.withCString { reply.pointee.set_reply?(reply, $0, strlen($0)) ?? ATRIUM_ERR_UNSUPPORTED }
            if status != ATRIUM_OK {
                _ = reply.pointee.set_error?(reply, "plugin produced an invalid reply")
                return ATRIUM_MESSAGE_ERROR
            }
            return ATRIUM_MESSAGE_REPLY
        case .ack(let hint):
            if let hint { _ = reply.pointee.set_hint?(reply, hint) }
            return ATRIUM_MESSAGE_ACK
        case .failure(let reason):
            _ = reply.pointee.set_error?(reply, reason)
            return ATRIUM_MESSAGE_ERROR
        }
    }
}

/// The plugin object plus the static extension tables it offers.
final class PluginBox {
    let plugin: any AtriumPlugin
    let host: PluginHost
    let eventsTable: UnsafeMutablePointer<atrium_plugin_events_t>
    let metricsTable: UnsafeMutablePointer<atrium_plugin_metrics_t>
    let adminTable: UnsafeMutablePointer<atrium_plugin_admin_t>
    let serviceTable: UnsafeMutablePointer<atrium_plugin_service_t>
    let tapTable: UnsafeMutablePointer<atrium_plugin_tap_t>
    let bandwidthTable: UnsafeMutablePointer<atrium_plugin_bandwidth_t>

    init(plugin: any AtriumPlugin, host: PluginHost) {
        self.plugin = plugin
        self.host = host
        eventsTable = zeroedTable(atrium_plugin_events_t.self)
        eventsTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_events_t>.size)
        eventsTable.pointee.on_event = { p, source, topic, json, length in
            guard let event = parseObject(json, length) else { return }
            PluginBox.from(p).plugin.receiveEvent(source: String(cString: source), topic: String(cString: topic), event: event)
        }
        metricsTable = zeroedTable(atrium_plugin_metrics_t.self)
        metricsTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_metrics_t>.size)
        metricsTable.pointee.collect = { p, writer in
            let text = PluginBox.from(p).plugin.metricsText()
            guard !text.isEmpty else { return }
            text.withCString { writer.pointee.write?(writer, $0, strlen($0)) }
        }
        serviceTable = zeroedTable(atrium_plugin_service_t.self)
        serviceTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_service_t>.size)
        serviceTable.pointee.start = { p, err, capacity in
            do throws(PluginFailure) {
                try PluginBox.from(p).plugin.startService()
                return ATRIUM_OK
            } catch {
                copyCString(error.message, to: err, capacity: capacity)
                return ATRIUM_ERR_INVALID_ARGUMENT
            }
        }
        serviceTable.pointee.stop = { p in PluginBox.from(p).plugin.stopService() }
        serviceTable.pointee.health = { p, out, capacity in
            copyCString(JSON.object(PluginBox.from(p).plugin.serviceHealth()).serialized, to: out, capacity: capacity)
            return ATRIUM_OK
        }
        tapTable = zeroedTable(atrium_plugin_tap_t.self)
        tapTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_tap_t>.size)
        tapTable.pointee.stream_started = { p, s in
            let labels = parseObject(s.pointee.labels_json, s.pointee.labels_len) ?? [:]
            let stream = TapStream(
                id: s.pointee.stream_id, handleID: s.pointee.handle_id,
                labels: Dictionary(labels.compactMap { k, v in v.stringValue.map { (k, $0) } }, uniquingKeysWith: { a, _ in a }),
                isVideo: s.pointee.is_video != 0, mid: String(cString: s.pointee.mid), rid: s.pointee.rid.map { String(cString: $0) },
                codec: String(cString: s.pointee.codec), payloadType: UInt8(truncatingIfNeeded: s.pointee.payload_type),
                clockRate: s.pointee.clock_rate, ssrc: s.pointee.ssrc, fmtp: s.pointee.fmtp.map { String(cString: $0) })
            return PluginBox.from(p).plugin.tapStreamStarted(stream) ? 1 : 0
        }
        tapTable.pointee.stream_rtp = { p, stream, packet, arrival in PluginBox.from(p).plugin.tapRTP(stream: stream, packet, arrivalMicros: arrival) }
        tapTable.pointee.stream_rtcp = { p, stream, packet, arrival in PluginBox.from(p).plugin.tapRTCP(stream: stream, packet, arrivalMicros: arrival) }
        tapTable.pointee.stream_ended = { p, stream in PluginBox.from(p).plugin.tapStreamEnded(stream: stream) }
        tapTable.pointee.labels_changed = { p, handle, json, length in
            PluginBox.from(p).plugin.tapLabelsChanged(handleID: handle, labels: parseObject(json, length) ?? [:])
        }
        bandwidthTable = zeroedTable(atrium_plugin_bandwidth_t.self)
        bandwidthTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_bandwidth_t>.size)
        bandwidthTable.pointee.estimate_changed = { p, handle, bitrate in
            PluginBox.from(p).plugin.bandwidthEstimateChanged(PluginHandle(raw: handle), bitrate: bitrate)
        }
        adminTable = zeroedTable(atrium_plugin_admin_t.self)
        adminTable.pointee.struct_size = UInt32(MemoryLayout<atrium_plugin_admin_t>.size)
        adminTable.pointee.handle_admin_message = { p, body, length, reply in
            guard let object = parseObject(body, length) else {
                _ = reply.pointee.set_error?(reply, "message body is not a JSON object")
                return ATRIUM_MESSAGE_ERROR
            }
            guard let answer = PluginBox.from(p).plugin.adminMessage(object) else {
                _ = reply.pointee.set_error?(reply, "this plugin has no admin requests")
                return ATRIUM_MESSAGE_ERROR
            }
            return PluginEntry.respond(.reply(answer), through: reply)
        }
    }

    static func from(_ p: UnsafePointer<atrium_plugin_t>) -> PluginBox {
        Unmanaged<PluginBox>.fromOpaque(p.pointee.plugin_data!).takeUnretainedValue()
    }

    func extensionTable(_ id: String) -> UnsafeRawPointer? {
        switch id {
        case ATRIUM_EXT_EVENTS: return plugin.subscribesToEvents ? UnsafeRawPointer(eventsTable) : nil
        case ATRIUM_EXT_METRICS: return UnsafeRawPointer(metricsTable)
        case ATRIUM_EXT_ADMIN: return UnsafeRawPointer(adminTable)
        case ATRIUM_EXT_SERVICE: return plugin.hasService ? UnsafeRawPointer(serviceTable) : nil
        case ATRIUM_EXT_TAP: return plugin.isTap ? UnsafeRawPointer(tapTable) : nil
        case ATRIUM_EXT_BANDWIDTH: return plugin.followsBandwidth ? UnsafeRawPointer(bandwidthTable) : nil
        default: return nil
        }
    }
}

/// A heap table of C type `T`, every byte zero (NULL pointers, zero sizes), never freed by Swift:
/// tables handed to the host live as long as the library.
func zeroedTable<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
    return raw.bindMemory(to: T.self, capacity: 1)
}
