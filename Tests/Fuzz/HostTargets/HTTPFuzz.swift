@testable import Host
#if canImport(FuzzTargets)
import FuzzTargets
#endif
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// Bytes from an HTTP client, through the server pipeline the host installs (NIOHTTP1's decoder,
/// its error handling) and the host's own handler: URI splitting, percent-decoding, routing, the
/// Janus, admin, metrics and health endpoints of an in-memory host. The first byte splits the
/// input into two writes, as a stream may arrive.
public func fuzzHTTP(_ data: UnsafeRawBufferPointer) {
    guard let first = data.first else { return }
    let rest = UnsafeRawBufferPointer(rebasing: data.dropFirst())
    let split = min(Int(first), rest.count)
    let channel = EmbeddedChannel()
    defer {
        _ = try? channel.finish()
        // Drops the timers the handler left scheduled (header and idle timeouts, long polls): they
        // hold the pipeline, which holds the loop, and would keep each input's channel alive.
        try? channel.embeddedEventLoop.syncShutdownGracefully()
        InMemoryHost.destroyAllSessions()
    }
    do {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(HTTPHandler(core: InMemoryHost.core, webApp: nil))
    } catch {
        fuzzFailure("cannot build the HTTP pipeline: \(error)")
    }
    for part in [UnsafeRawBufferPointer(rebasing: rest[..<split]), UnsafeRawBufferPointer(rebasing: rest[split...])] where !part.isEmpty {
        var buffer = channel.allocator.buffer(capacity: part.count)
        buffer.writeBytes(part)
        do { try channel.writeInbound(buffer) } catch { break }
        while (try? channel.readOutbound(as: IOData.self)) ?? nil != nil {}
    }
    // The URI helpers again on the raw text, beyond what NIOHTTP1 lets through to them.
    let text = String(decoding: rest, as: UTF8.self)
    let (path, _) = splitURI(text)
    _ = components(of: path, under: "/janus")
}
