import AtriumJSON
@testable import Host
#if canImport(FuzzTargets)
import FuzzTargets
#endif
import Synchronization

/// One Janus API request body to the dispatcher of an in-memory host. The first byte chooses what
/// the transport's path named: nothing, a live session made for this input, or a session that
/// does not exist. Every request must be answered exactly once, at once (no plugin is loaded).
public func fuzzJanusAPI(_ data: UnsafeRawBufferPointer) {
    let core = InMemoryHost.core
    defer { InMemoryHost.destroyAllSessions() }
    var input = FuzzInput(data)
    let mode = input.byte()
    var context = RequestContext(connection: nil)
    switch mode % 3 {
    case 1:
        let created = answer(core, json: ["janus": "create", "transaction": "fuzz"])
        context.pathSessionID = created.flatMap { $0["data"]?["id"]?.intValue }.map { UInt64(truncatingIfNeeded: $0) }
    case 2:
        context.pathSessionID = 0x1234_5678
    default:
        break
    }
    context.pathHasSession = context.pathSessionID != nil
    if mode & 0x80 != 0 { context.pathHandleID = 0x0BAD_CAFE }
    let body = Array(input.take(Int.max))
    let replies = Mutex<[JSON]>([])
    core.process(bytes: body, context: context) { reply in replies.withLock { $0.append(reply) } }
    let count = replies.withLock { $0.count }
    guard count == 1 else { fuzzFailure("a request was answered \(count) times") }
}

/// The one reply to a core request.
private func answer(_ core: HostCore, json: JSON) -> JSON? {
    let reply = Mutex<JSON?>(nil)
    core.process(json: json, context: RequestContext(connection: nil)) { r in reply.withLock { $0 = r } }
    return reply.withLock { $0 }
}
