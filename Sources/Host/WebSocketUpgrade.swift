import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The upgrade to the Janus API over WebSocket (subprotocol `janus-protocol`), for the WebSocket
/// port (any path) and for `http.websocket_path` on the HTTP port. After the handshake the
/// connection gets the WebSocket idle timeout, the handler named `replacing` leaves the pipeline,
/// and a `WebSocketHandler` serves the client: the peer, or behind a trusted proxy the client its
/// upgrade request names.
func janusWebSocketUpgrader(core: HostCore, peer: SocketAddress?, deadline: NIOLoopBound<ConnectionDeadline>, path: String?,
                            replacing handlerName: String) -> NIOWebSocketServerUpgrader {
    let config = core.config.webSocket
    let maxFrame = config.maxMessageBytes
    let idle = TimeAmount.nanoseconds(Int64(config.idleTimeoutSeconds * 1e9))
    return NIOWebSocketServerUpgrader(
        maxFrameSize: maxFrame,
        automaticErrorHandling: true,
        shouldUpgrade: { channel, head in
            let onPath = path.map { splitURI(head.uri).0 == $0 } ?? true
            guard onPath, offersJanusProtocol(head) else { return channel.eventLoop.makeSucceededFuture(nil) }
            var headers = HTTPHeaders()
            headers.add(name: "Sec-WebSocket-Protocol", value: "janus-protocol")
            return channel.eventLoop.makeSucceededFuture(headers)
        },
        upgradePipelineHandler: { channel, head in
            let client = ClientAddress(core.proxyTrust.client(peer: peer, headers: head.headers))
            return channel.pipeline.removeHandler(name: handlerName).flatMap {
                channel.eventLoop.makeCompletedFuture {
                    deadline.value.upgraded(idle: idle)
                    try channel.pipeline.syncOperations.addHandler(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1024, maxAccumulatedFrameSize: maxFrame))
                    try channel.pipeline.syncOperations.addHandler(WebSocketHandler(core: core, client: client))
                }
            }
        }
    )
}
