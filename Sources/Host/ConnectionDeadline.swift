import NIOCore

/// The clock of one client connection, first in its pipeline (it sees raw bytes): a request must
/// arrive whole within the header timeout of its first byte (else 408 and close), a keep-alive
/// connection with no request in progress is closed after the idle timeout, and an upgraded
/// WebSocket after its own idle timeout without a byte from the client.
///
/// A request in progress (a long poll waiting for events) is never idle: the HTTP handler says
/// when a request is complete (`requestReceived`) and when its response is written
/// (`responseSent`). A fresh connection gets the header timeout to send its first request, so
/// sockets that never speak cost one timer each and only that long.
final class ConnectionDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase {
        /// Between requests (or before the first): no byte of a request yet.
        case awaitingRequest
        /// Bytes of a request have arrived, not all of it.
        case receiving
        /// A whole request is being answered.
        case handling
        /// Upgraded to WebSocket: idle when the client sends nothing.
        case webSocket
    }

    /// What the deadline did, for the metrics.
    enum Expiry: String, Sendable { case header, idle, webSocketIdle = "websocket_idle" }

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let onExpiry: @Sendable (Expiry) -> Void
    private var webSocketIdle: TimeAmount = .zero
    private(set) var phase = Phase.awaitingRequest
    private var firstRequest = true
    /// Bytes of a next request came while one was being answered (pipelining).
    private var readWhileHandling = false
    private var lastRead = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(headerTimeout: TimeAmount, idleTimeout: TimeAmount, onExpiry: @escaping @Sendable (Expiry) -> Void) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.onExpiry = onExpiry
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { arm(headerTimeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if timer == nil { arm(headerTimeout) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .awaitingRequest:
            phase = .receiving
            // A fresh connection's timer already counts from accept.
            if !firstRequest { arm(headerTimeout) }
        case .receiving:
            break
        case .handling:
            readWhileHandling = true
        case .webSocket:
            // Read often: the timer is not moved, it checks this when it fires.
            lastRead = .now()
        }
        context.fireChannelRead(data)
    }

    // MARK: - Told by the handlers behind

    /// A whole request arrived: it is being answered, with no deadline of its own.
    func requestReceived() {
        guard phase != .webSocket else { return }
        phase = .handling
        firstRequest = false
        readWhileHandling = false
        timer?.cancel()
        timer = nil
    }

    /// A response was written on a connection that stays open.
    func responseSent() {
        guard phase == .handling else { return }
        if readWhileHandling {
            phase = .receiving
            arm(headerTimeout)
        } else {
            phase = .awaitingRequest
            arm(idleTimeout)
        }
    }

    /// The connection became a WebSocket; `idle` zero: no idle timeout.
    func upgraded(idle: TimeAmount) {
        phase = .webSocket
        webSocketIdle = idle
        lastRead = .now()
        timer?.cancel()
        timer = nil
        if idle > .zero { arm(idle) }
    }

    // MARK: - Expiry

    private func arm(_ delay: TimeAmount) {
        guard let context else { return }
        timer?.cancel()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) { bound.value.expire() }
    }

    private func expire() {
        guard let context, context.channel.isActive else { return }
        timer = nil
        switch phase {
        case .handling:
            return
        case .webSocket:
            let quiet = NIODeadline.now() - lastRead
            if quiet < webSocketIdle {
                arm(webSocketIdle - quiet)
                return
            }
            onExpiry(.webSocketIdle)
            // Close frame 1001 (going away), unmasked as a server's frames are.
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: [0x88, 0x02, 0x03, 0xE9])), promise: nil)
            context.close(promise: nil)
        case .receiving:
            onExpiry(.header)
            let text = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).whenComplete { _ in
                channel.close(promise: nil)
            }
        case .awaitingRequest:
            // Nothing was asked, so nothing is answered (RFC 9112 §9.5 lets a server close an
            // idle connection); a fresh socket that never spoke counts as a header timeout.
            onExpiry(firstRequest ? .header : .idle)
            context.close(promise: nil)
        }
    }
}

/// Answers a connection refused at accept with a fixed 503 and closes it, reading nothing.
final class RefusedConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let reason: String

    init(reason: String) { self.reason = reason }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    private func refuse(_ context: ChannelHandlerContext) {
        let body = reason + "\n"
        let text = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}
