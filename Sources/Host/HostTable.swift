import AtriumJSON
import Dispatch
import Logging
import PluginAPI
#if canImport(Glibc)
import Glibc
import RTC
#endif

/// The plugin that owns a host table (host_data), valid while the process runs.
private func owner(_ host: UnsafePointer<atrium_host_t>) -> LoadedPlugin {
    Unmanaged<LoadedPlugin>.fromOpaque(host.pointee.host_data!).takeUnretainedValue()
}

private func parseJSON(_ text: UnsafePointer<CChar>?, _ length: Int) -> JSON? {
    JSON.parse(borrowed: text, count: length)
}

/// The host extension tables: static, shared by every plugin (each call names its host table).
nonisolated(unsafe) private let eventsExtension: UnsafeMutablePointer<atrium_host_events_t> = {
    let t = UnsafeMutablePointer<atrium_host_events_t>.allocate(capacity: 1)
    t.initialize(to: atrium_host_events_t())
    t.pointee.struct_size = UInt32(MemoryLayout<atrium_host_events_t>.size)
    t.pointee.publish = { host, topic, json, length in
        let plugin = owner(host)
        guard let event = parseJSON(json, length), event.objectValue != nil else { return ATRIUM_ERR_INVALID_ARGUMENT }
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        core.publish(source: plugin, topic: String(cString: topic), event: event)
        return ATRIUM_OK
    }
    return t
}()

nonisolated(unsafe) private let tapExtension: UnsafeMutablePointer<atrium_host_tap_t> = {
    let t = UnsafeMutablePointer<atrium_host_tap_t>.allocate(capacity: 1)
    t.initialize(to: atrium_host_tap_t())
    t.pointee.struct_size = UInt32(MemoryLayout<atrium_host_tap_t>.size)
    t.pointee.request_keyframe = { host, stream in
        guard let core = owner(host).core else { return ATRIUM_ERR_STATE }
        guard let media = core.loops.engine(ofTapStream: stream) else { return ATRIUM_ERR_NOT_FOUND }
        media.post { _ = media.tapRequestKeyframe(stream) }
        return ATRIUM_OK
    }
    t.pointee.request_retransmission = { host, stream, seqs, count in
        guard let core = owner(host).core else { return ATRIUM_ERR_STATE }
        guard let media = core.loops.engine(ofTapStream: stream) else { return ATRIUM_ERR_NOT_FOUND }
        guard count > 0, count <= 1024 else { return ATRIUM_ERR_INVALID_ARGUMENT }
        let copy = Array(UnsafeBufferPointer(start: seqs, count: Int(count)))
        media.post { _ = media.tapRequestRetransmission(stream, copy) }
        return ATRIUM_OK
    }
    return t
}()

nonisolated(unsafe) private let timerExtension: UnsafeMutablePointer<atrium_host_timer_t> = {
    let t = UnsafeMutablePointer<atrium_host_timer_t>.allocate(capacity: 1)
    t.initialize(to: atrium_host_timer_t())
    t.pointee.struct_size = UInt32(MemoryLayout<atrium_host_timer_t>.size)
    t.pointee.schedule = { host, interval, fire, userData in
        guard let fire, interval > 0 else { return 0 }
        let plugin = owner(host)
        let id = randomJanusID()
        let timer = DispatchSource.makeTimerSource(queue: plugin.queue)
        let userBits = UInt(bitPattern: userData)
        let pluginPointer = plugin.pluginPointer!
        timer.schedule(deadline: .now() + .milliseconds(Int(interval)), repeating: .milliseconds(Int(interval)))
        timer.setEventHandler {
            fire(pluginPointer, UnsafeMutableRawPointer(bitPattern: userBits))
        }
        let entry = PluginTimer(source: timer)
        plugin.timers.withLock { $0[id] = entry }
        timer.resume()
        return id
    }
    t.pointee.cancel = { host, id in
        let plugin = owner(host)
        let timer = plugin.timers.withLock { $0.removeValue(forKey: id) }
        timer?.source.cancel()
        // A handler already running finishes before cancel returns (unless we are that handler).
        if !plugin.isOnQueue { plugin.queue.sync {} }
    }
    return t
}()

nonisolated(unsafe) private let groupExtension: UnsafeMutablePointer<atrium_host_group_t> = {
    let t = UnsafeMutablePointer<atrium_host_group_t>.allocate(capacity: 1)
    t.initialize(to: atrium_host_group_t())
    t.pointee.struct_size = UInt32(MemoryLayout<atrium_host_group_t>.size)
    t.pointee.set_group = { host, handle, group in
        let plugin = owner(host)
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        return core.setGroup(from: plugin, handleAddress: UInt(bitPattern: handle), group: group)
    }
    t.pointee.media_loop = { host, handle in
        let plugin = owner(host)
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        guard let h = core.lookupHandle(from: plugin, address: UInt(bitPattern: handle)) else { return ATRIUM_ERR_NOT_FOUND }
        return core.loops.engine(of: h).map { Int32($0.index) } ?? -1
    }
    return t
}()

nonisolated(unsafe) private let bandwidthExtension: UnsafeMutablePointer<atrium_host_bandwidth_t> = {
    let t = UnsafeMutablePointer<atrium_host_bandwidth_t>.allocate(capacity: 1)
    t.initialize(to: atrium_host_bandwidth_t())
    t.pointee.struct_size = UInt32(MemoryLayout<atrium_host_bandwidth_t>.size)
    t.pointee.estimate = { host, handle in
        let plugin = owner(host)
        guard let core = plugin.core, let h = core.lookupHandle(from: plugin, address: UInt(bitPattern: handle)) else { return 0 }
        return h.bandwidthEstimate.load(ordering: .relaxed)
    }
    t.pointee.set_desired = { host, handle, bitrate in
        onPeer(host, handle) { _, peer in peer.bandwidth?.desired = bitrate }
    }
    return t
}()

/// Runs a media call on the handle's PeerConnection, as the header's "Media from any thread" says.
/// On the handle's own loop it runs at once, on the caller's borrowed data, and its status is
/// returned. From any other thread `later` first copies what the call needs (nil: the input is
/// invalid), the copy is queued to the handle's loop (bounded), and a live handle gets ATRIUM_OK.
private func onPeer(_ host: UnsafePointer<atrium_host_t>, _ handle: UnsafePointer<atrium_handle_t>,
                    now: (MediaEngine, PeerConnection) -> Int32,
                    later: () -> ((MediaEngine, PeerConnection) -> Void)?) -> Int32 {
    let plugin = owner(host)
    let address = UInt(bitPattern: handle)
    if let media = MediaEngine.current, let peer = media.peer(address: address, plugin: plugin) {
        return now(media, peer)
    }
    guard let core = plugin.core else { return ATRIUM_ERR_STATE }
    guard let target = core.lookupHandle(from: plugin, address: address) else { return ATRIUM_ERR_NOT_FOUND }
    let media = core.loops.engine(of: target)
    // On the handle's own loop the lookup above was authoritative: there is no PeerConnection.
    if media?.isOnMediaThread == true { return ATRIUM_ERR_STATE }
    guard let task = later() else { return ATRIUM_ERR_INVALID_ARGUMENT }
    // A handle never placed on a loop has no PeerConnection to act on: dropped, as queued calls
    // that find none are.
    guard let media else { return ATRIUM_OK }
    let queued = media.postPluginCall {
        if let peer = media.peer(address: address, plugin: plugin) { task(media, peer) }
    }
    return queued ? ATRIUM_OK : ATRIUM_ERR_LIMIT
}

/// `onPeer` for calls that take no borrowed input.
private func onPeer(_ host: UnsafePointer<atrium_host_t>, _ handle: UnsafePointer<atrium_handle_t>,
                    _ body: @escaping (MediaEngine, PeerConnection) -> Void) -> Int32 {
    onPeer(host, handle, now: { media, peer in
        body(media, peer)
        return ATRIUM_OK
    }, later: { body })
}

/// An RTP packet a plugin relayed from outside the media thread, kept until the thread sends it.
private struct CopiedRTP: @unchecked Sendable {
    var fields: atrium_rtp_packet_t
    let bytes: [UInt8]

    init?(_ packet: UnsafePointer<atrium_rtp_packet_t>) {
        let p = copyTable(packet, declaredSize: packet.pointee.struct_size, as: atrium_rtp_packet_t.self)
        let buffer = p.buffer
        guard p.length > 0, p.length <= 1500 else { return nil }
        fields = p
        bytes = Array(UnsafeBufferPointer(start: buffer, count: Int(p.length)))
    }

    func withPacket(_ body: (UnsafePointer<atrium_rtp_packet_t>) -> Void) {
        var p = fields
        bytes.withUnsafeBufferPointer { b in
            p.buffer = b.baseAddress!
            p.mid = nil
            p.rid = nil
            withUnsafePointer(to: &p) { body($0) }
        }
    }
}

/// Builds the host table for one plugin; `host_data` is filled in by the caller.
func makeHostTable() -> atrium_host_t {
    var t = atrium_host_t()
    t.struct_size = UInt32(MemoryLayout<atrium_host_t>.size)
    t.abi_version = atrium_version_t(major: UInt16(ATRIUM_ABI_VERSION_MAJOR), minor: UInt16(ATRIUM_ABI_VERSION_MINOR))
    t.get_extension = { _, id in
        switch String(cString: id) {
        case ATRIUM_EXT_EVENTS: return UnsafeRawPointer(eventsExtension)
        case ATRIUM_EXT_TIMER: return UnsafeRawPointer(timerExtension)
        case ATRIUM_EXT_TAP: return UnsafeRawPointer(tapExtension)
        case ATRIUM_EXT_GROUP: return UnsafeRawPointer(groupExtension)
        case ATRIUM_EXT_BANDWIDTH: return UnsafeRawPointer(bandwidthExtension)
        default: return nil
        }
    }
    t.log = { host, level, message in
        let plugin = owner(host)
        let text = String(cString: message)
        switch level {
        case ATRIUM_LOG_ERROR: plugin.logger.error("\(text)")
        case ATRIUM_LOG_WARNING: plugin.logger.warning("\(text)")
        case ATRIUM_LOG_INFO: plugin.logger.info("\(text)")
        case ATRIUM_LOG_MISBEHAVING: plugin.logger.error("misbehaving: \(text)")
        default: plugin.logger.debug("\(text)")
        }
    }
    t.push_event = { host, handle, transaction, json, length, jsep, jsepLength in
        let plugin = owner(host)
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        guard let event = parseJSON(json, length), event.objectValue != nil else { return ATRIUM_ERR_INVALID_ARGUMENT }
        var jsepValue: JSON?
        if let jsep {
            // An object here; completeJSEP checks its type and SDP.
            guard let j = parseJSON(jsep, jsepLength), j.objectValue != nil else { return ATRIUM_ERR_INVALID_ARGUMENT }
            jsepValue = j
        }
        return core.pushEvent(from: plugin, handleAddress: UInt(bitPattern: handle), transaction: transaction.map { String(cString: $0) }, event: event, jsep: jsepValue)
    }
    t.end_handle = { host, handle in
        let plugin = owner(host)
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        return core.endHandle(from: plugin, handleAddress: UInt(bitPattern: handle))
    }
    t.close_pc = { host, handle in
        let plugin = owner(host)
        guard let core = plugin.core, let h = core.lookupHandle(from: plugin, address: UInt(bitPattern: handle)) else { return ATRIUM_ERR_NOT_FOUND }
        if let media = core.loops.engine(of: h) { media.post { _ = media.hangup(h, reason: .closePC, notifyClient: true, notifyPlugin: true) } }
        return ATRIUM_OK
    }
    t.relay_rtp = { host, handle, packet in
        onPeer(host, handle, now: { media, peer in media.sendRTP(peer, packet, now: media.mediaNow) }, later: {
            CopiedRTP(packet).map { copy in { media, peer in copy.withPacket { _ = media.sendRTP(peer, $0, now: monotonicNanoseconds()) } } }
        })
    }
    t.relay_rtcp = { host, handle, packet in
        let bytes = UnsafeRawBufferPointer(start: packet.pointee.buffer, count: Int(packet.pointee.length))
        guard !bytes.isEmpty else { return ATRIUM_ERR_INVALID_ARGUMENT }
        return onPeer(host, handle, now: { media, peer in media.sendRTCP(peer, bytes) }, later: {
            guard bytes.count <= 1500 else { return nil }
            let copy = Array(bytes)
            return { media, peer in _ = copy.withUnsafeBytes { media.sendRTCP(peer, $0) } }
        })
    }
    // Data channels arrive with SCTP; until then a peer has none.
    t.relay_data = { _, _, _ in ATRIUM_ERR_UNSUPPORTED }
    t.request_keyframe = { host, handle, mindex in
        onPeer(host, handle) { media, peer in media.requestKeyframe(peer, mindex: mindex, now: monotonicNanoseconds()) }
    }
    t.send_remb = { host, handle, bitrate in
        onPeer(host, handle) { media, peer in media.sendREMB(peer, bitrate: bitrate) }
    }
    t.set_labels = { host, handle, json, length in
        let plugin = owner(host)
        guard let core = plugin.core else { return ATRIUM_ERR_STATE }
        guard let labels = parseJSON(json, length), let o = labels.objectValue,
            o.allSatisfy({ $0.value.stringValue != nil })
        else { return ATRIUM_ERR_INVALID_ARGUMENT }
        return core.setLabels(from: plugin, handleAddress: UInt(bitPattern: handle), labels: labels)
    }
    t.post_control = { host, fn, userData in
        guard let fn else { return ATRIUM_ERR_INVALID_ARGUMENT }
        return owner(host).postControl(fn, userData: userData)
    }
    return t
}
