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

/// The events of a session bound to HTTP long polls: queued until a poll takes them, bounded
/// both in count and in bytes (the size of each event's compact JSON text), the oldest going
/// first. The newest event is always kept, even alone over the byte bound, so a poll still sees
/// the latest state.
final class LongPollQueue: Sendable {
    struct Waiter {
        let id: UInt64
        let maxEvents: Int
        let deliver: @Sendable ([JSON]) -> Void
    }

    private struct State {
        var events: [JSON] = []
        /// The size of each queued event, in step with `events`.
        var sizes: [Int] = []
        var bytes = 0
        var dropped: UInt64 = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 1

        mutating func removeFirst(_ n: Int) {
            bytes -= sizes.prefix(n).reduce(0, +)
            events.removeFirst(n)
            sizes.removeFirst(n)
        }
    }

    private let state = Mutex(State())
    let capacity: Int
    let byteCapacity: Int

    init(capacity: Int, byteCapacity: Int = .max) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    /// Queues an event, or hands it at once to a waiting poll.
    func push(_ event: JSON) {
        // Measured only when no poll is waiting: an event handed over at once is never held. A poll
        // that went away meanwhile is the rare case measured under the lock.
        let measured = hasWaiters ? nil : event.serialized.utf8.count
        let handoff: (Waiter, [JSON])? = state.withLock { s in
            let size = measured ?? (s.waiters.isEmpty ? event.serialized.utf8.count : 0)
            s.events.append(event)
            s.sizes.append(size)
            s.bytes += size
            var excess = max(0, s.events.count - capacity)
            var held = s.bytes - s.sizes.prefix(excess).reduce(0, +)
            while held > byteCapacity, excess < s.events.count - 1 {
                held -= s.sizes[excess]
                excess += 1
            }
            if excess > 0 {
                s.removeFirst(excess)
                s.dropped += UInt64(excess)
            }
            guard !s.waiters.isEmpty else { return nil }
            let waiter = s.waiters.removeFirst()
            let n = min(waiter.maxEvents, s.events.count)
            let batch = Array(s.events.prefix(n))
            s.removeFirst(n)
            return (waiter, batch)
        }
        if let (waiter, batch) = handoff { waiter.deliver(batch) }
    }

    /// The bytes held now and the events dropped so far for being over a bound.
    var usage: (bytes: Int, dropped: UInt64) { state.withLock { ($0.bytes, $0.dropped) } }

    /// Takes up to `maxEvents` queued events now, or registers a waiter and returns its id.
    func poll(maxEvents: Int, deliver: @escaping @Sendable ([JSON]) -> Void) -> UInt64? {
        let result: ([JSON]?, UInt64?) = state.withLock { s in
            if !s.events.isEmpty {
                let n = min(maxEvents, s.events.count)
                let batch = Array(s.events.prefix(n))
                s.removeFirst(n)
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
            defer { s.removeFirst(s.events.count) }
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
    /// The address that created it, whose share of sessions it counts against.
    let client: ClientAddress

    init(id: UInt64, connection: (any ClientConnection)?, queueCapacity: Int, queueByteCapacity: Int = .max, client: ClientAddress) {
        self.id = id
        self.client = client
        self.connection = connection
        self.lastActivity = monotonicNanoseconds()
        self.longPoll = LongPollQueue(capacity: queueCapacity, byteCapacity: queueByteCapacity)
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
    let client: ClientAddress
    private let opaqueCString: UnsafeMutablePointer<CChar>
    private let clientCString: UnsafeMutablePointer<CChar>
    // Guarded by HostCore.registry.
    var state: State = .attaching
    var labels: JSON = .object([:])
    /// Set on the plugin's control context once handle_destroyed ran; control callbacks queued
    /// from the media thread after that are dropped. Touched only on that context.
    var released = false
    /// The send-side bandwidth estimate of its PeerConnection, bits/s (0: none), written by its
    /// media loop and read by plugins from any thread.
    let bandwidthEstimate = Atomic<UInt64>(0)

    init(id: UInt64, session: Session, plugin: LoadedPlugin, opaqueID: String, attachedName: String?, client: ClientAddress) {
        self.id = id
        self.attachedName = attachedName
        self.session = session
        self.plugin = plugin
        self.opaqueID = opaqueID
        self.client = client
        self.createdAt = monotonicNanoseconds()
        opaqueCString = Self.copy(opaqueID)
        clientCString = Self.copy(client.key)
        raw = .allocate(capacity: 1)
        raw.initialize(to: atrium_handle_t(
            struct_size: UInt32(MemoryLayout<atrium_handle_t>.size),
            id: id,
            session_id: session.id,
            plugin_data: nil,
            host_data: nil,
            opaque_id: UnsafePointer(opaqueCString),
            client_address: UnsafePointer(clientCString)
        ))
    }

    /// A NUL-terminated copy the plugin may borrow (strdup, which only fails without memory).
    private static func copy(_ text: String) -> UnsafeMutablePointer<CChar> {
        guard let copy = strdup(text) else { fatalError("out of memory") }
        return copy
    }

    /// The raw pointer as a dictionary key, never dereferenced for lookup.
    var address: UInt { UInt(bitPattern: raw) }

    deinit {
        raw.deinitialize(count: 1)
        raw.deallocate()
        free(opaqueCString)
        free(clientCString)
    }
}
