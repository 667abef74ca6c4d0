/// Swift conveniences for writing an Atrium plugin over the C ABI in `atrium_plugin.h`.
///
/// A Swift plugin is a class that adopts ``AtriumPlugin`` plus one `Entry.swift` whose only `@c`
/// function returns ``PluginEntry/make(_:factory:)``. PluginKit is linked into each plugin library
/// separately, so its globals belong to that one plugin.
public import PluginAPI
public import AtriumJSON
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a plugin tells the host about itself.
public struct PluginDescriptor: Sendable {
    public var id: String
    public var name: String
    public var description: String
    public var author: String
    public var versionString: String
    public var version: UInt32

    public init(id: String, name: String, description: String, author: String, versionString: String, version: UInt32) {
        self.id = id
        self.name = name
        self.description = description
        self.author = author
        self.versionString = versionString
        self.version = version
    }
}

/// How a plugin answers a Janus API `message`.
public enum MessageOutcome: Sendable {
    /// A synchronous reply: the client gets `success` with this object as `plugindata.data`.
    case reply(JSON)
    /// Accepted; events follow through ``PluginHost/pushEvent(to:transaction:event:jsep:)``.
    case ack(hint: String? = nil)
    /// A failure of the plugin itself (Janus error 462); application errors are replies.
    case failure(String)
}

/// A failure to start or to accept a handle, with the text the host reports.
public struct PluginFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A client's handle, as the plugin sees it. Valid from `handleCreated` until `handleDestroyed` returns.
public struct PluginHandle: Hashable, @unchecked Sendable {
    public let raw: UnsafeMutablePointer<atrium_handle_t>
    public init(raw: UnsafeMutablePointer<atrium_handle_t>) { self.raw = raw }
    public var id: UInt64 { raw.pointee.id }
    public var sessionID: UInt64 { raw.pointee.session_id }
    public var opaqueID: String { String(cString: raw.pointee.opaque_id) }
    /// The attaching client's address key (IPv4 address or IPv6 /64), "" when unknown or when the
    /// host is older than ABI 1.1.
    public var clientAddress: String {
        let size = Int(raw.pointee.struct_size)
        guard size >= (MemoryLayout<atrium_handle_t>.offset(of: \.client_address) ?? Int.max - 8) + MemoryLayout<UnsafePointer<CChar>?>.size,
              let text = raw.pointee.client_address else { return "" }
        return String(cString: text)
    }
}

/// What a Swift plugin implements. Every method has the thread of its C counterpart:
/// the lifecycle and message methods run on the plugin's [control] context, one at a time.
public protocol AtriumPlugin: AnyObject {
    /// [control] Start with the plugin's `config` object.
    func start(config: JSONObject) throws(PluginFailure)
    /// [control] Stop and release everything.
    func stop()
    /// [control] A client attached; throw to refuse.
    func handleCreated(_ handle: PluginHandle) throws(PluginFailure)
    /// [control] The handle is gone; forget it.
    func handleDestroyed(_ handle: PluginHandle)
    /// [control] A Janus API message.
    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome
    /// [control] Plugin-specific state of a handle for the admin API.
    func describe(_ handle: PluginHandle) -> JSONObject
    /// [any] Prometheus text lines, or "".
    func metricsText() -> String
    /// [control] An event from another plugin on the event bus; return false from
    /// `subscribesToEvents` to never get one.
    func receiveEvent(source: String, topic: String, event: JSONObject)
    var subscribesToEvents: Bool { get }
    /// [control] An admin API `message_plugin` request; nil means the plugin has no admin API.
    func adminMessage(_ body: JSONObject) -> JSON?
    /// [control] A PeerConnection came up / went away.
    func setupMedia(_ handle: PluginHandle)
    func hangupMedia(_ handle: PluginHandle, reason: Int32)
    /// [media] Decrypted RTP and RTCP from the handle's peer; the packet is borrowed for the call.
    func incomingRTP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtp_packet_t>)
    func incomingRTCP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtcp_packet_t>)
    /// [control] Media on stream `mid` started or stopped arriving.
    func mediaState(_ handle: PluginHandle, mid: String, isVideo: Bool, receiving: Bool)
    /// [control] Losses on stream `mid` crossed the slow-link threshold.
    func slowLink(_ handle: PluginHandle, mid: String, isVideo: Bool, uplink: Bool, lost: UInt32)
    /// Whether the plugin runs a service (its own listeners): then the host calls `startService`
    /// after `start`, and `stopService` before it destroys handles on shutdown.
    var hasService: Bool { get }
    /// [control] Open listeners and start threads; throw to stop the host's start-up.
    func startService() throws(PluginFailure)
    /// [control] Stop them; return only when no plugin thread calls the host any more.
    func stopService()
    /// [any] Health for /health and the admin API, as a JSON object (e.g. `["ok": true]`).
    func serviceHealth() -> JSONObject
    /// Whether the plugin is a tap (the `atrium.tap/1` extension): it is offered every stream of a
    /// labelled handle.
    var isTap: Bool { get }
    /// [control] A labelled stream started; return true to receive its packets.
    func tapStreamStarted(_ stream: TapStream) -> Bool
    /// [media] A packet of a stream this plugin took (borrowed for the call); `arrivalMicros` is
    /// the host's monotonic clock.
    func tapRTP(stream: UInt64, _ packet: UnsafePointer<atrium_rtp_packet_t>, arrivalMicros: UInt64)
    func tapRTCP(stream: UInt64, _ packet: UnsafePointer<atrium_rtcp_packet_t>, arrivalMicros: UInt64)
    /// [control] The stream ended (also for streams the plugin did not take).
    func tapStreamEnded(stream: UInt64)
    /// [control] A handle's labels changed.
    func tapLabelsChanged(handleID: UInt64, labels: JSONObject)
    /// Whether the plugin hears the host's send-side bandwidth estimates (`atrium.bandwidth/1`).
    var followsBandwidth: Bool { get }
    /// [media] The estimate of what the host may send the handle moved (bits per second).
    func bandwidthEstimateChanged(_ handle: PluginHandle, bitrate: UInt64)
}

/// A stream offered to a tap plugin, as `atrium_tap_stream_t` describes it.
public struct TapStream: Sendable {
    public var id: UInt64
    public var handleID: UInt64
    public var labels: [String: String]
    public var isVideo: Bool
    public var mid: String
    public var rid: String?
    public var codec: String
    public var payloadType: UInt8
    public var clockRate: UInt32
    public var ssrc: UInt32
    public var fmtp: String?

    public init(id: UInt64, handleID: UInt64, labels: [String: String], isVideo: Bool, mid: String, rid: String?, codec: String,
                payloadType: UInt8, clockRate: UInt32, ssrc: UInt32, fmtp: String?) {
        self.id = id
        self.handleID = handleID
        self.labels = labels
        self.isVideo = isVideo
        self.mid = mid
        self.rid = rid
        self.codec = codec
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.ssrc = ssrc
        self.fmtp = fmtp
    }
}

extension AtriumPlugin {
    public func stop() {}
    public func handleCreated(_ handle: PluginHandle) throws(PluginFailure) {}
    public func handleDestroyed(_ handle: PluginHandle) {}
    public func describe(_ handle: PluginHandle) -> JSONObject { [:] }
    public func metricsText() -> String { "" }
    public func receiveEvent(source: String, topic: String, event: JSONObject) {}
    public var subscribesToEvents: Bool { false }
    public func adminMessage(_ body: JSONObject) -> JSON? { nil }
    public func setupMedia(_ handle: PluginHandle) {}
    public func hangupMedia(_ handle: PluginHandle, reason: Int32) {}
    public func incomingRTP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtp_packet_t>) {}
    public func incomingRTCP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtcp_packet_t>) {}
    public func mediaState(_ handle: PluginHandle, mid: String, isVideo: Bool, receiving: Bool) {}
    public func slowLink(_ handle: PluginHandle, mid: String, isVideo: Bool, uplink: Bool, lost: UInt32) {}
    public var hasService: Bool { false }
    public func startService() throws(PluginFailure) {}
    public func stopService() {}
    public func serviceHealth() -> JSONObject { ["ok": true] }
    public var isTap: Bool { false }
    public func tapStreamStarted(_ stream: TapStream) -> Bool { false }
    public func tapRTP(stream: UInt64, _ packet: UnsafePointer<atrium_rtp_packet_t>, arrivalMicros: UInt64) {}
    public func tapRTCP(stream: UInt64, _ packet: UnsafePointer<atrium_rtcp_packet_t>, arrivalMicros: UInt64) {}
    public func tapStreamEnded(stream: UInt64) {}
    public func tapLabelsChanged(handleID: UInt64, labels: JSONObject) {}
    public var followsBandwidth: Bool { false }
    public func bandwidthEstimateChanged(_ handle: PluginHandle, bitrate: UInt64) {}
}

/// The host, as a plugin calls it. Safe from any thread.
public struct PluginHost: @unchecked Sendable {
    public let raw: UnsafePointer<atrium_host_t>
    private let events: UnsafePointer<atrium_host_events_t>?
    private let timer: UnsafePointer<atrium_host_timer_t>?
    private let tap: UnsafePointer<atrium_host_tap_t>?
    private let group: UnsafePointer<atrium_host_group_t>?
    private let bandwidth: UnsafePointer<atrium_host_bandwidth_t>?
    /// The host's post_control, if its table is of ABI 1.2 or later (an older one ends before it).
    private let post: (@convention(c) (UnsafePointer<atrium_host_t>, (@convention(c) (UnsafePointer<atrium_plugin_t>, UnsafeMutableRawPointer?) -> Void)?, UnsafeMutableRawPointer?) -> atrium_status_t)?

    init(raw: UnsafePointer<atrium_host_t>) {
        self.raw = raw
        let end = (MemoryLayout<atrium_host_t>.offset(of: \.post_control) ?? Int.max - 8) + MemoryLayout<UnsafeRawPointer?>.size
        post = Int(raw.pointee.struct_size) >= end ? raw.pointee.post_control : nil
        let lookup = raw.pointee.get_extension
        self.events = lookup?(raw, ATRIUM_EXT_EVENTS)?.assumingMemoryBound(to: atrium_host_events_t.self)
        self.timer = lookup?(raw, ATRIUM_EXT_TIMER)?.assumingMemoryBound(to: atrium_host_timer_t.self)
        self.tap = lookup?(raw, ATRIUM_EXT_TAP)?.assumingMemoryBound(to: atrium_host_tap_t.self)
        self.group = lookup?(raw, ATRIUM_EXT_GROUP)?.assumingMemoryBound(to: atrium_host_group_t.self)
        self.bandwidth = lookup?(raw, ATRIUM_EXT_BANDWIDTH)?.assumingMemoryBound(to: atrium_host_bandwidth_t.self)
    }

    public enum LogLevel: Int32 { case error = 0, warning = 1, info = 2, debug = 3 }

    public func log(_ level: LogLevel, _ message: String) {
        raw.pointee.log?(raw, level.rawValue, message)
    }

    /// [media] Sends RTP to the handle's peer (the host copies it, sets its SSRC, encrypts it).
    @discardableResult
    public func relayRTP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtp_packet_t>) -> Int32 {
        raw.pointee.relay_rtp?(raw, handle.raw, packet) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// [media] Sends a (compound) RTCP packet to the handle's peer.
    @discardableResult
    public func relayRTCP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtcp_packet_t>) -> Int32 {
        raw.pointee.relay_rtcp?(raw, handle.raw, packet) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Asks the handle's peer for a keyframe on `mindex` (-1: every video stream).
    @discardableResult
    public func requestKeyframe(_ handle: PluginHandle, mindex: Int32 = -1) -> Int32 {
        raw.pointee.request_keyframe?(raw, handle.raw, mindex) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Caps what the handle's peer sends (REMB, bits per second).
    @discardableResult
    public func sendREMB(_ handle: PluginHandle, bitrate: UInt64) -> Int32 {
        raw.pointee.send_remb?(raw, handle.raw, bitrate) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Tears down the handle's PeerConnection (the client gets `hangup`, reason "Close PC").
    @discardableResult
    public func closePC(_ handle: PluginHandle) -> Int32 {
        raw.pointee.close_pc?(raw, handle.raw) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Sends `event` (becomes `plugindata.data`) to the handle's client.
    @discardableResult
    public func pushEvent(to handle: PluginHandle, transaction: String? = nil, event: JSON, jsep: JSON? = nil) -> Int32 {
        guard let push = raw.pointee.push_event else { return ATRIUM_ERR_UNSUPPORTED }
        let body = event.serialized
        let jsepText = jsep?.serialized
        return body.withCString { b in
            withOptionalCString(transaction) { t in
                withOptionalCString(jsepText) { j in
                    push(raw, handle.raw, t, b, strlen(b), j, j.map { strlen($0) } ?? 0)
                }
            }
        }
    }

    /// Asks the host to detach the handle (the client gets `detached`).
    @discardableResult
    public func endHandle(_ handle: PluginHandle) -> Int32 {
        raw.pointee.end_handle?(raw, handle.raw) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Labels the handle for taps and the admin API.
    @discardableResult
    public func setLabels(_ handle: PluginHandle, _ labels: [String: String]) -> Int32 {
        guard let set = raw.pointee.set_labels else { return ATRIUM_ERR_UNSUPPORTED }
        let object = JSON.object(JSONObject(labels.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSON.string($0.value)) }))
        let text = object.serialized
        return text.withCString { set(raw, handle.raw, $0, strlen($0)) }
    }

    /// Puts the handle in `group` (a room), so that its PeerConnection shares a media loop with the
    /// group's others; call it before the handle's first offer or answer. 0 takes it out.
    @discardableResult
    public func setGroup(_ handle: PluginHandle, _ group: UInt64) -> Int32 {
        self.group?.pointee.set_group?(raw, handle.raw, group) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// The media loop the handle lives on (-1: none yet), or a negative status.
    public func mediaLoop(_ handle: PluginHandle) -> Int32 {
        self.group?.pointee.media_loop?(raw, handle.raw) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// The host's send-side estimate for the handle's PeerConnection, bits/s; 0 when it has none.
    public func bandwidthEstimate(_ handle: PluginHandle) -> UInt64 {
        self.bandwidth?.pointee.estimate?(raw, handle.raw) ?? 0
    }

    /// What the plugin would send the handle if the path allowed (the host probes toward it); 0 stops probing.
    @discardableResult
    public func setDesiredBitrate(_ handle: PluginHandle, _ bitrate: UInt64) -> Int32 {
        self.bandwidth?.pointee.set_desired?(raw, handle.raw, bitrate) ?? ATRIUM_ERR_UNSUPPORTED
    }

    /// Asks the publisher of a tapped stream for a keyframe (the host throttles).
    @discardableResult
    public func requestKeyframe(stream: UInt64) -> Int32 {
        guard let request = tap?.pointee.request_keyframe else { return ATRIUM_ERR_UNSUPPORTED }
        return request(raw, stream)
    }

    /// Asks the publisher of a tapped stream to send these sequence numbers again (a NACK).
    @discardableResult
    public func requestRetransmission(stream: UInt64, _ sequenceNumbers: [UInt16]) -> Int32 {
        guard let request = tap?.pointee.request_retransmission, !sequenceNumbers.isEmpty else { return ATRIUM_ERR_UNSUPPORTED }
        return sequenceNumbers.withUnsafeBufferPointer { request(raw, stream, $0.baseAddress!, UInt32($0.count)) }
    }

    /// Publishes a JSON event on the host's event bus.
    @discardableResult
    public func publish(topic: String, event: JSON) -> Int32 {
        guard let publish = events?.pointee.publish else { return ATRIUM_ERR_UNSUPPORTED }
        let text = event.serialized
        return topic.withCString { t in text.withCString { publish(raw, t, $0, strlen($0)) } }
    }

    /// Calls `body` on the plugin's control context every `milliseconds` until cancelled.
    /// Returns the timer id, 0 if the host has no timers.
    public func schedule(everyMilliseconds milliseconds: UInt32, _ body: @escaping () -> Void) -> UInt64 {
        guard let schedule = timer?.pointee.schedule else { return 0 }
        let box = Unmanaged.passRetained(TimerBox(body)).toOpaque()
        let id = schedule(raw, milliseconds, { _, userData in
            guard let userData else { return }
            // A strong copy: the body may cancel its own timer, which releases the box.
            let body = Unmanaged<TimerBox>.fromOpaque(userData).takeUnretainedValue().body
            body()
        }, box)
        if id == 0 {
            Unmanaged<TimerBox>.fromOpaque(box).release()
        } else {
            timerBoxes.withLock { $0[id] = UInt(bitPattern: box) }
        }
        return id
    }

    /// Calls `body` once on the plugin's control context, soon: after the control call running now,
    /// if any (the host's post_control). Any thread. False, and `body` never runs, when the host
    /// refused (65,536 calls already wait, or the plugin is being destroyed) or predates ABI 1.2.
    @discardableResult
    public func postControl(_ body: @escaping () -> Void) -> Bool {
        guard let post else { return false }
        let box = Unmanaged.passRetained(TimerBox(body)).toOpaque()
        let status = post(raw, { _, userData in
            guard let userData else { return }
            Unmanaged<TimerBox>.fromOpaque(userData).takeRetainedValue().body()
        }, box)
        if status != ATRIUM_OK { Unmanaged<TimerBox>.fromOpaque(box).release() }
        return status == ATRIUM_OK
    }

    /// Calls `body` once on the plugin's control context, `milliseconds` from now (a timer that
    /// cancels itself when it fires, as the timer extension describes). Returns the timer id (to
    /// cancel it before it fires), 0 if the host has no timers.
    @discardableResult
    public func schedule(afterMilliseconds milliseconds: UInt32, _ body: @escaping () -> Void) -> UInt64 {
        // The id is known only once `schedule` returns. Should the first fire come before that,
        // the next one cancels (never the scheduling thread: cancel may wait for the plugin's queue).
        let once = Guarded((id: UInt64(0), fired: false))
        let id = schedule(everyMilliseconds: milliseconds) { [self] in
            let (id, first) = once.withLock { s -> (UInt64, Bool) in
                defer { s.fired = true }
                return (s.id, !s.fired)
            }
            if id != 0 { cancelTimer(id) }
            if first { body() }
        }
        once.withLock { $0.id = id }
        return id
    }

    /// Cancels a timer; its closure is released once the host guarantees it will not fire again.
    public func cancelTimer(_ id: UInt64) {
        timer?.pointee.cancel?(raw, id)
        if let bits = timerBoxes.withLock({ $0.removeValue(forKey: id) }), let box = UnsafeMutableRawPointer(bitPattern: bits) {
            Unmanaged<TimerBox>.fromOpaque(box).release()
        }
    }
}

/// The closure boxes of live timers, by timer id (this plugin library's own copy).
private let timerBoxes = Mutex([UInt64: UInt]())

final class TimerBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

/// Copies `message` into a C buffer of `capacity` bytes, NUL-terminated and truncated to fit.
public func copyCString(_ message: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
    guard let buffer, capacity > 0 else { return }
    var bytes = Array(message.utf8.prefix(capacity - 1))
    bytes.append(0)
    bytes.withUnsafeBufferPointer { src in
        src.withMemoryRebound(to: CChar.self) { buffer.update(from: $0.baseAddress!, count: $0.count) }
    }
}

func parseObject(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> JSONObject? {
    JSON.parse(borrowed: pointer, count: length)?.objectValue
}
