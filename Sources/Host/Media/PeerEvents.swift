import AtriumJSON
import Foundation
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// Events about a PeerConnection: the client's core events and the plugin's [control] callbacks.
extension MediaEngine {
    func emit(_ kind: String, _ fields: JSONObject = [:], for peer: PeerConnection) {
        core?.deliverEvent(kind, about: peer.handle, fields)
    }

    func mediaStateChanged(_ peer: PeerConnection, _ stream: MediaStream) {
        emit("media", ["mid": .string(stream.mid), "type": .string(stream.kind), "receiving": .bool(stream.receiving)], for: peer)
        let handle = peer.handle
        let mid = stream.mid
        let isVideo = stream.isVideo
        let receiving = stream.receiving
        handle.plugin.onControl(handle) { $0.mediaState(handle, mid: mid, isVideo: isVideo, receiving: receiving) }
    }

    func slowLink(_ peer: PeerConnection, _ stream: MediaStream, uplink: Bool, lost: UInt32) {
        emit("slowlink", ["mid": .string(stream.mid), "media": .string(stream.kind), "uplink": .bool(uplink), "lost": .int(Int64(lost))], for: peer)
        let handle = peer.handle
        let mid = stream.mid
        let isVideo = stream.isVideo
        handle.plugin.onControl(handle) { $0.slowLink(handle, mid: mid, isVideo: isVideo, uplink: uplink, lost: lost) }
    }
}
