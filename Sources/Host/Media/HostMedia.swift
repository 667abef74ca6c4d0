import AtriumJSON
import Dispatch
import PluginAPI
import RTC

extension HostCore {
    /// A plugin's jsep ({type, sdp} with the media part only), completed with the host's transport.
    func completeJSEP(_ jsep: JSON, handle: Handle) -> Result<JSON, NegotiationError> {
        guard let o = jsep.objectValue, let type = o["type"]?.stringValue, type == "offer" || type == "answer",
            let text = o["sdp"]?.stringValue
        else {
            return .failure(.invalid("a jsep is {\"type\": \"offer\" or \"answer\", \"sdp\"}"))
        }
        let parsed: SessionDescription
        do {
            parsed = try SessionDescription.parse(text, limits: config.media.sdpLimits)
        } catch {
            return .failure(.invalid("the plugin's SDP does not parse: \(error)"))
        }
        let media = loops.place(handle)
        let outcome: Result<SessionDescription, NegotiationError> = media.sync {
            Result { () throws(NegotiationError) in try media.completeLocal(type: type, parsed, handle: handle) }
        }
        return outcome.map { completed in
            var out = o
            out["sdp"] = .string(completed.serialized)
            return .object(out)
        }
    }

    /// A client's jsep on a message: an offer sets up (or renegotiates) the PeerConnection, an
    /// answer completes one a plugin offered. Janus's error codes: 465 for SDP the host cannot use,
    /// 469 for an answer nobody asked for.
    func acceptClientJSEP(type: String, sdp text: String, handle: Handle) -> JanusError? {
        let parsed: SessionDescription
        do {
            parsed = try SessionDescription.parse(text, limits: config.media.sdpLimits)
        } catch {
            return JanusError(.jsepInvalidSDP, "JSEP error: invalid SDP (\(error))")
        }
        let media = loops.place(handle)
        let failure: NegotiationError? = media.sync {
            do throws(NegotiationError) {
                if type == "offer" {
                    try media.acceptRemoteOffer(parsed, handle: handle)
                } else {
                    try media.acceptRemoteAnswer(parsed, handle: handle)
                }
                return nil
            } catch {
                return error
            }
        }
        guard let failure else { return nil }
        switch failure.kind {
        case .unexpectedAnswer: return JanusError(.unexpectedAnswer, failure.description)
        case .invalidSDP, .state: return JanusError(.jsepInvalidSDP, "JSEP error: \(failure.description)")
        }
    }

    /// The client's `hangup` request: whether there was a PeerConnection to close. The plugin hears
    /// hangup_media; the caller sends the client's event.
    func hangupRequested(_ handle: Handle) -> Bool {
        guard let media = loops.engine(of: handle) else { return false }
        return media.sync { media.hangup(handle, reason: .client, notifyClient: false, notifyPlugin: true) }
    }
}

extension LoadedPlugin {
    /// Runs a [control] callback about `handle` from the media thread, unless the plugin has let the
    /// handle go by the time it runs.
    func onControl(_ handle: Handle, _ body: @escaping @Sendable (LoadedPlugin) -> Void) {
        queue.async { [self] in
            guard !handle.released else { return }
            body(self)
        }
    }

    func setupMedia(_ handle: Handle) {
        dispatchPrecondition(condition: .onQueue(queue))
        table.setup_media?(pluginPointer, handle.raw)
    }

    func mediaState(_ handle: Handle, mid: String, isVideo: Bool, receiving: Bool) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let callback = table.media_state else { return }
        mid.withCString { callback(pluginPointer, handle.raw, $0, isVideo ? 1 : 0, receiving ? 1 : 0) }
    }

    func slowLink(_ handle: Handle, mid: String, isVideo: Bool, uplink: Bool, lost: UInt32) {
        dispatchPrecondition(condition: .onQueue(queue))
        guard let callback = table.slow_link else { return }
        mid.withCString { callback(pluginPointer, handle.raw, $0, isVideo ? 1 : 0, uplink ? 1 : 0, lost) }
    }
}
