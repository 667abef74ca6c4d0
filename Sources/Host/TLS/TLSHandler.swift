import Logging
import NIOCore
import RTC

/// TLS for one accepted connection, first in its pipeline: socket bytes go through a
/// `TLSConnection` (OpenSSL over memory) and the handlers after it see plaintext only. A
/// connection whose handshake fails (plain HTTP on the https port, a scanner) is closed and
/// logged at debug level.
final class TLSHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct NotOpen: Error, CustomStringConvertible {
        var description: String { "TLS: nothing can be sent before the handshake ends or after close" }
    }

    private let connection: TLSConnection
    private let logger: Logger
    private var closing = false

    init(connection: TLSConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let plaintext = bytes.withUnsafeReadableBytes { connection.receive($0) }
        // Handshake replies, session tickets, alerts: whatever the input called for.
        sendOutput(context: context, promise: nil, flush: true)
        for piece in plaintext {
            context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: piece)))
        }
        switch connection.state {
        case .handshaking, .open:
            break
        case .closed:
            closeOnce(context: context)
        case .failed(let reason):
            logger.debug("TLS connection failed", metadata: ["peer": "\(context.channel.remoteAddress?.description ?? "?")", "reason": "\(reason)"])
            closeOnce(context: context)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        guard bytes.withUnsafeReadableBytes({ connection.send($0) }) else {
            promise?.fail(NotOpen())
            return
        }
        sendOutput(context: context, promise: promise, flush: false)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all, connection.state == .open {
            connection.close()
            sendOutput(context: context, promise: nil, flush: true)
        }
        context.close(mode: mode, promise: promise)
    }

    private func sendOutput(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?, flush: Bool) {
        let out = connection.takeOutput()
        if out.isEmpty {
            promise?.succeed()
            return
        }
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: out)), promise: promise)
        if flush { context.flush() }
    }

    private func closeOnce(context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        context.close(promise: nil)
    }
}
