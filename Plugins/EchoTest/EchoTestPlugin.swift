import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import Synchronization

/// Error codes in `{"echotest":"event","error_code":N,"error":"..."}`, as Janus's EchoTest numbers them.
enum EchoTestError: Int64 {
    case noMessage = 411
    case invalidJSON = 412
    case invalidElement = 413
    case invalidSDP = 414
}

/// One handle's echo state. The media thread reads the switches on every packet; control writes them.
final class EchoSession: Sendable {
    let audio = Atomic<Bool>(true)
    let video = Atomic<Bool>(true)
    let bitrate = Atomic<UInt64>(0)
    let hasPeerConnection = Atomic<Bool>(false)
}

/// Sends a peer's media back to it, with Janus EchoTest's controls: audio and video on or off, a
/// bitrate cap (REMB to the sender), a keyframe request. The answer is built from the offer
/// (Opus and VP8 first, or the codecs asked for); the host completes the transport.
final class EchoTestPlugin: AtriumPlugin {
    let host: PluginHost
    /// The hint Janus's EchoTest puts in its "ack".
    static let hint = "I'm taking my time!"

    init(host: PluginHost) { self.host = host }

    func start(config: JSONObject) throws(PluginFailure) {
        for key in config.keys {
            throw PluginFailure("unknown key \"\(key)\" in the EchoTest config (it takes none)")
        }
    }

    func handleCreated(_ handle: PluginHandle) throws(PluginFailure) {
        handle.raw.pointee.plugin_data = Unmanaged.passRetained(EchoSession()).toOpaque()
    }

    func handleDestroyed(_ handle: PluginHandle) {
        guard let data = handle.raw.pointee.plugin_data else { return }
        handle.raw.pointee.plugin_data = nil
        Unmanaged<EchoSession>.fromOpaque(data).release()
    }

    private func session(_ handle: PluginHandle) -> EchoSession? {
        handle.raw.pointee.plugin_data.map { Unmanaged<EchoSession>.fromOpaque($0).takeUnretainedValue() }
    }

    // MARK: - Requests

    func handleMessage(_ handle: PluginHandle, transaction: String, body: JSONObject, jsep: JSONObject?) -> MessageOutcome {
        guard let session = session(handle) else { return .failure("no session for this handle") }
        // As Janus's EchoTest: an "ack" now, then one event with the result (and the answer).
        var answer: JSON?
        do throws(RequestError) {
            let request = try EchoRequest(body)
            // Janus's EchoTest refuses a message that carries nothing it acts on (a lone keyframe too).
            guard jsep != nil || EchoRequest.supportedKeys.contains(where: { body[$0] != nil }) else {
                throw RequestError(.invalidElement, "Message error: no supported attributes found")
            }
            if let sdp = jsep?["sdp"]?.stringValue, jsep?["type"]?.stringValue == "offer" {
                answer = try Self.answer(offer: sdp, request: request)
            }
            apply(request, to: session, handle: handle)
        } catch {
            let event: JSON = ["echotest": "event", "error_code": .int(error.code.rawValue), "error": .string(error.message)]
            _ = host.pushEvent(to: handle, transaction: transaction, event: event)
            return .ack(hint: Self.hint)
        }
        let event: JSON = ["echotest": "event", "result": "ok"]
        if host.pushEvent(to: handle, transaction: transaction, event: event, jsep: answer) != ATRIUM_OK {
            let failure: JSON = ["echotest": "event", "error_code": .int(EchoTestError.invalidSDP.rawValue), "error": "the answer could not be completed"]
            _ = host.pushEvent(to: handle, transaction: transaction, event: failure)
        }
        return .ack(hint: Self.hint)
    }

    private func apply(_ request: EchoRequest, to session: EchoSession, handle: PluginHandle) {
        if let audio = request.audio { session.audio.store(audio, ordering: .relaxed) }
        if let video = request.video {
            let wasOff = !session.video.exchange(video, ordering: .relaxed)
            // Echo restarts on a keyframe, or the peer's decoder waits for one.
            if video && wasOff { host.requestKeyframe(handle) }
        }
        if let bitrate = request.bitrate {
            session.bitrate.store(bitrate, ordering: .relaxed)
            if bitrate > 0 { host.sendREMB(handle, bitrate: bitrate) }
        }
        if request.keyframe == true { host.requestKeyframe(handle) }
    }

    static func answer(offer text: String, request: EchoRequest) throws(RequestError) -> JSON {
        let offer: SessionDescription
        do {
            offer = try SessionDescription.parse(text)
        } catch {
            throw RequestError(.invalidSDP, "Error parsing offer: \(error)")
        }
        var preferences = AnswerPreferences()
        if let codec = request.audioCodec { preferences.audioCodecs = [codec] }
        if let codec = request.videoCodec { preferences.videoCodecs = [codec] }
        let answer = offer.answer(preferences: preferences)
        return ["type": "answer", "sdp": .string(answer.serialized)]
    }

    // MARK: - Media

    func setupMedia(_ handle: PluginHandle) {
        guard let session = session(handle) else { return }
        session.hasPeerConnection.store(true, ordering: .relaxed)
        let bitrate = session.bitrate.load(ordering: .relaxed)
        if bitrate > 0 { host.sendREMB(handle, bitrate: bitrate) }
    }

    func hangupMedia(_ handle: PluginHandle, reason: Int32) {
        guard let session = session(handle) else { return }
        session.hasPeerConnection.store(false, ordering: .relaxed)
        session.audio.store(true, ordering: .relaxed)
        session.video.store(true, ordering: .relaxed)
        session.bitrate.store(0, ordering: .relaxed)
        _ = host.pushEvent(to: handle, event: ["echotest": "event", "result": "done"])
    }

    func incomingRTP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtp_packet_t>) {
        guard let session = session(handle) else { return }
        let enabled = packet.pointee.is_video != 0 ? session.video.load(ordering: .relaxed) : session.audio.load(ordering: .relaxed)
        guard enabled else { return }
        host.relayRTP(handle, packet)
    }

    func incomingRTCP(_ handle: PluginHandle, _ packet: UnsafePointer<atrium_rtcp_packet_t>) {
        // The peer decodes what it sent: its keyframe requests go back to its own encoder.
        let bytes = UnsafeRawBufferPointer(start: packet.pointee.buffer, count: Int(packet.pointee.length))
        guard let packets = try? RTCPPacket.parseCompound(bytes) else { return }
        let wantsKeyframe = packets.contains {
            switch $0 {
            case .pictureLossIndication, .fullIntraRequest: true
            default: false
            }
        }
        if wantsKeyframe { host.requestKeyframe(handle) }
    }

    func describe(_ handle: PluginHandle) -> JSONObject {
        guard let s = session(handle) else { return [:] }
        return [
            "audio_active": .bool(s.audio.load(ordering: .relaxed)),
            "video_active": .bool(s.video.load(ordering: .relaxed)),
            "bitrate": .int(Int64(s.bitrate.load(ordering: .relaxed))),
            "has_peerconnection": .bool(s.hasPeerConnection.load(ordering: .relaxed)),
        ]
    }
}

struct RequestError: Error {
    var code: EchoTestError
    var message: String
    init(_ code: EchoTestError, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// The fields of an EchoTest request, type-checked as Janus checks them (unknown keys are ignored).
struct EchoRequest {
    /// The fields whose presence makes a message one Janus's EchoTest acts on.
    static let supportedKeys = [
        "audio", "video", "bitrate", "record", "substream", "temporal", "fallback", "audiocodec", "videocodec",
        "videoprofile", "opusred", "min_delay", "max_delay",
    ]

    var audio: Bool?
    var video: Bool?
    var bitrate: UInt64?
    var keyframe: Bool?
    var audioCodec: String?
    var videoCodec: String?

    init(_ body: JSONObject) throws(RequestError) {
        func bool(_ key: String) throws(RequestError) -> Bool? {
            guard let v = body[key], !v.isNull else { return nil }
            guard case .bool(let b) = v else { throw RequestError(.invalidElement, "Invalid element type (\(key) should be a boolean)") }
            return b
        }
        func string(_ key: String) throws(RequestError) -> String? {
            guard let v = body[key], !v.isNull else { return nil }
            guard case .string(let s) = v else { throw RequestError(.invalidElement, "Invalid element type (\(key) should be a string)") }
            return s
        }
        audio = try bool("audio")
        video = try bool("video")
        keyframe = try bool("keyframe")
        if let v = body["bitrate"], !v.isNull {
            guard case .int(let i) = v, i >= 0 else {
                throw RequestError(.invalidElement, "Invalid element type (bitrate should be a positive integer)")
            }
            bitrate = UInt64(i)
        }
        audioCodec = try string("audiocodec")
        videoCodec = try string("videocodec")
        _ = try bool("record")
        _ = try string("filename")
    }
}
