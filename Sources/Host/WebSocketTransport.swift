import AtriumJSON
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// One WebSocket client (subprotocol `janus-protocol`): one JSON object per text frame.
///
/// What it has been sent but its socket has not yet taken is bounded (`maxPendingBytes`): a
/// client that stops reading is closed instead of growing the host's memory without end.
final class WebSocketConnection: ClientConnection {
    let channel: any Channel
    var transportName: String { "websocket" }
    private let maxPendingBytes: Int
    private let pending = Atomic<Int>(0)
    private let overflowed = Atomic<Bool>(false)
    /// Every connection's pending bytes together, for /metrics.
    private let totalPending: PendingBytes
    private let onOverflow: @Sendable () -> Void

    init(channel: any Channel, maxPendingBytes: Int = .max, totalPending: PendingBytes = PendingBytes(), onOverflow: @escaping @Sendable () -> Void = {}) {
        self.channel = channel
        self.maxPendingBytes = maxPendingBytes
        self.totalPending = totalPending
        self.onOverflow = onOverflow
    }

    func send(_ message: JSON) {
        let bytes = Array(message.prettyPrinted(indent: 3).utf8)
        let size = bytes.count
        guard !overflowed.load(ordering: .relaxed) else { return }
        guard pending.add(size, ordering: .relaxed).newValue <= maxPendingBytes else {
            pending.subtract(size, ordering: .relaxed)
            if !overflowed.exchange(true, ordering: .relaxed) {
                onOverflow()
                channel.close(promise: nil)
            }
            return
        }
        totalPending.add(size)
        let buffer = channel.allocator.buffer(bytes: bytes)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { _ in
            self.pending.subtract(size, ordering: .relaxed)
            self.totalPending.add(-size)
        }
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: buffer), promise: written)
    }

    /// Bytes sent to this client that its socket has not taken yet.
    var pendingBytes: Int { pending.load(ordering: .relaxed) }
}

/// A sum of bytes kept by many connections.
final class PendingBytes: Sendable {
    private let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var bytes: Int { value.load(ordering: .relaxed) }
}

/// Reads frames of an upgraded connection and hands each request to the core.
final class WebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let core: HostCore
    private let client: ClientAddress
    private var connection: WebSocketConnection?
    private var budget: RequestBudget
    private var closing = false

    init(core: HostCore, client: ClientAddress) {
        self.core = core
        self.client = client
        budget = RequestBudget(rate: core.config.limits.requestsPerSecond, burst: core.config.limits.burst)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let core = core
        let client = client
        connection = WebSocketConnection(channel: context.channel, maxPendingBytes: core.config.webSocket.maxPendingBytes,
                                         totalPending: core.webSocketPending) {
            core.metrics.slowReaderClosed()
            core.logger.info("websocket closed: the client does not read what it is sent", metadata: ["client": "\(client)"])
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            guard let connection, !closing else { return }
            var data = frame.unmaskedData
            let bytes = data.readBytes(length: data.readableBytes) ?? []
            guard budget.take() else {
                connection.send(core.rateLimited(bytes: bytes, by: .connection))
                return
            }
            guard core.shares.takeRequest(client) else {
                connection.send(core.rateLimited(bytes: bytes, by: .address))
                return
            }
            core.process(bytes: bytes, context: RequestContext(connection: connection, client: client)) { reply in
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
