import AtriumJSON
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// One WebSocket client (subprotocol `janus-protocol`): one JSON object per text frame.
final class WebSocketConnection: ClientConnection {
    let channel: any Channel
    var transportName: String { "websocket" }

    init(channel: any Channel) { self.channel = channel }

    func send(_ message: JSON) {
        let bytes = message.prettyPrinted(indent: 3).utf8
        let buffer = channel.allocator.buffer(bytes: Array(bytes))
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: nil)
    }
}

/// Reads frames of an upgraded connection and hands each request to the core.
final class WebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let core: HostCore
    private var connection: WebSocketConnection?
    private var budget: RequestBudget
    private var closing = false

    init(core: HostCore) {
        self.core = core
        budget = RequestBudget(rate: core.config.limits.requestsPerSecond, burst: core.config.limits.burst)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection = WebSocketConnection(channel: context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            guard let connection, !closing else { return }
            var data = frame.unmaskedData
            let bytes = data.readBytes(length: data.readableBytes) ?? []
            guard budget.take() else {
                connection.send(core.rateLimited(bytes: bytes))
                return
            }
            core.process(bytes: bytes, context: RequestContext(connection: connection)) { reply in
                connection.send(reply)
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            guard !closing else {
                context.close(promise: nil)
                return
            }
            closing = true
            var data = frame.unmaskedData
            let code = data.readSlice(length: 2) ?? context.channel.allocator.buffer(capacity: 0)
            let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(close)).whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection { core.connectionClosed(connection) }
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.logger.debug("websocket error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}

/// Answers plain HTTP on the WebSocket port: only upgrades with `janus-protocol` are served.
final class UpgradeRequiredHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    static let name = "atrium.ws.upgrade-required"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let body = "This port speaks the Janus API over WebSocket: connect with the subprotocol janus-protocol.\n"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// Whether a handshake offers the Janus subprotocol.
func offersJanusProtocol(_ head: HTTPRequestHead) -> Bool {
    head.headers[canonicalForm: "sec-websocket-protocol"].contains { $0.lowercased() == "janus-protocol" }
}
