import AtriumJSON
import Dispatch
import PluginAPI
import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a client's replies and events go: a WebSocket, or the long-poll queue of an HTTP session.
public protocol ClientConnection: AnyObject, Sendable {
    /// Sends one message (a reply or an event). Safe from any thread; never blocks.
    func send(_ message: JSON)
    /// The transport's name for the admin API ("websocket", "http").
    var transportName: String { get }
}

/// A random id of at most 53 bits, so it is an exact JavaScript number (never 0).
func randomJanusID() -> UInt64 { UInt64.random(in: 1...0x1F_FFFF_FFFF_FFFF) }

/// The events of a session bound to HTTP long polls: queued until a poll takes them.
final class LongPollQueue: Sendable {
    struct Waiter {
        let id: UInt64
        let maxEvents: Int
        let deliver: @Sendable ([JSON]) -> Void
    }

    private struct State {
        var events: [JSON] = []
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 1
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Queues an event, or hands it at once to a waiting poll.
    func push(_ event: JSON) {
        let handoff: (Waiter, [JSON])? = state.withLock { s in
            s.events.append(event)
            if s.events.count > capacity {
                s.events.removeFirst(s.events.count - capacity)
            }
            guard !s.waiters.isEmpty else { return nil }
            let waiter = s.waiters.removeFirst()
            let n = min(waiter.maxEvents, s.events.count)
            let batch = Array(s.events.prefix(n))
            s.events.removeFirst(n)
            return (waiter, batch)
        }
        if let (waiter, batch) = handoff { waiter.deliver(batch) }
    }

    /// Takes up to `maxEvents` queued events now, or registers a waiter and returns its id.
    func poll(maxEvents: Int, deliver: @escaping @Sendable ([JSON]) -> Void) -> UInt64? {
        let result: ([JSON]?, UInt64?) = state.withLock { s in
            if !s.events.isEmpty {
                let n = min(maxEvents, s.events.count)
                let batch = Array(s.events.prefix(n))
                s.events.removeFirst(n)
                return (batch, nil)
            }
            let id = s.nextWaiterID
            s.nextWaiterID += 1
            s.waiters.append(Waiter(id: id, maxEvents: maxEvents, deliver: deliver))
            return (nil, id)
        }
        if let batch = result.0 { deliver(batch) }
        return result.1
    }

    /// Removes a waiter that is still waiting; true if it was (so the caller answers it itself).
    func cancel(waiter id: UInt64) -> Bool {
        state.withLock { s in
            guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return false }
            s.waiters.remove(at: i)
            return true
        }
    }

    /// Ends every waiting poll (session gone): they get what is queued, or nothing.
    func drain() -> [Waiter] {
        state.withLock { s in
            let w = s.waiters
            s.waiters = []
            return w
        }
    }

    /// Takes every queued event (a claim moved the session to a WebSocket).
    func takeAll() -> [JSON] {
        state.withLock { s in
            defer { s.events.removeAll() }
            return s.events
        }
    }

    var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }
}

/// A Janus session: a client's container of handles, bound to the connection that created or
/// claimed it. Mutable state is guarded by the registry's lock.
final class Session: @unchecked Sendable {
    let id: UInt64
    let longPoll: LongPollQueue
    // Guarded by HostCore.registry.
    var lastActivity: UInt64
    var connection: (any ClientConnection)?
    var handles: [UInt64: Handle] = [:]
    var destroyed = false
    /// When the bound WebSocket closed (for the reclaim window), or nil.
    var orphanedAt: UInt64?

    init(id: UInt64, connection: (any ClientConnection)?, queueCapacity: Int) {
        self.id = id
        self.connection = connection
        self.lastActivity = monotonicNanoseconds()
        self.longPoll = LongPollQueue(capacity: queueCapacity)
    }
}

/// One client's attachment to one plugin. Owns the C `atrium_handle_t` the plugin sees.
final class Handle: @unchecked Sendable {
    enum State { case attaching, ready, detaching }

    let id: UInt64
    let session: Session
    let plugin: LoadedPlugin
    let raw: UnsafeMutablePointer<atrium_handle_t>
    let opaqueID: String
    let attachedName: String?
    let createdAt: UInt64
    private let opaqueCString: UnsafeMutablePointer<CChar>
    // Guarded by HostCore.registry.
    var state: State = .attaching
    var labels: JSON = .object([:])
    /// Set on the plugin's control context once handle_destroyed ran; control callbacks queued
    /// from the media thread after that are dropped. Touched only on that context.
    var released = false

    init(id: UInt64, session: Session, plugin: LoadedPlugin, opaqueID: String, attachedName: String?) {
        self.id = id
        self.attachedName = attachedName
        self.session = session
        self.plugin = plugin
        self.opaqueID = opaqueID
        self.createdAt = monotonicNanoseconds()
        opaqueCString = strdup(opaqueID)!
        raw = .allocate(capacity: 1)
        raw.initialize(to: atrium_handle_t(
            struct_size: UInt32(MemoryLayout<atrium_handle_t>.size),
            id: id,
            session_id: session.id,
            plugin_data: nil,
            host_data: nil,
            opaque_id: UnsafePointer(opaqueCString)
        ))
    }

    /// The raw pointer as a dictionary key, never dereferenced for lookup.
    var address: UInt { UInt(bitPattern: raw) }

    deinit {
        raw.deinitialize(count: 1)
        raw.deallocate()
        free(opaqueCString)
    }
}
