import AtriumJSON
import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One Janus session over the HTTP transport: requests are POSTs, asynchronous events come from a
/// long-poll thread and wait in a queue per handle until `awaitEvent` takes them. The same calls
/// work on Atrium and on Janus 1.1.2.
final class JanusSession: @unchecked Sendable {
    let http: HTTPClient
    let id: Int64
    private let events = Mutex<[Int64: [JSON]]>([:])
    private let polling = Atomic<Bool>(true)
    private var poller: pthread_t?

    init(http: HTTPClient) throws(BenchError) {
        self.http = http
        let reply = try http.post("", ["janus": "create", "transaction": .string(Self.transaction())])
        guard let id = reply["data"]?["id"]?.intValue else { throw BenchError("create: \(reply.serialized)") }
        self.id = id
        poller = startThread(name: "bench-poll") { [self] in poll() }
    }

    static func transaction() -> String {
        String((0..<12).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }

    /// Attaches a handle to `plugin`.
    func attach(_ plugin: String) throws(BenchError) -> Int64 {
        let reply = try http.post("\(id)", ["janus": "attach", "plugin": .string(plugin), "transaction": .string(Self.transaction())])
        guard let handle = reply["data"]?["id"]?.intValue else { throw BenchError("attach: \(reply.serialized)") }
        return handle
    }

    /// Sends a plugin message; a synchronous answer (`success`) is returned as it is, an `ack`
    /// means the answer comes as an event: the first event on this handle that is not a plain
    /// notification is returned (with its jsep, when it has one).
    func message(_ handle: Int64, _ body: JSON, jsep: JSON? = nil, timeoutSeconds: Double = 20) throws(BenchError) -> JSON {
        var request: JSONObject = ["janus": "message", "body": body, "transaction": .string(Self.transaction())]
        if let jsep { request = JSONObject(request.entries + [(key: "jsep", value: jsep)]) }
        let reply = try http.post("\(id)/\(handle)", .object(request))
        switch reply["janus"]?.stringValue {
        case "success":
            if let error = reply["plugindata"]?["data"]?["error"]?.stringValue { throw BenchError("\(body["request"]?.stringValue ?? "?"): \(error)") }
            return reply
        case "ack":
            return try awaitEvent(handle, timeoutSeconds: timeoutSeconds) { event in
                event["jsep"] != nil || event["plugindata"]?["data"]?["error"] != nil
                    || ["joined", "attached", "started", "success"].contains(event["plugindata"]?["data"]?["videoroom"]?.stringValue ?? "")
                    || event["plugindata"]?["data"]?["started"] != nil || event["plugindata"]?["data"]?["configured"] != nil
            }
        default:
            throw BenchError("\(body["request"]?.stringValue ?? "?"): \(reply.serialized)")
        }
    }

    /// Waits for the first queued event on `handle` that `matches` (older non-matching ones are dropped).
    func awaitEvent(_ handle: Int64, timeoutSeconds: Double, matches: (JSON) -> Bool) throws(BenchError) -> JSON {
        let deadline = monotonicSeconds() + timeoutSeconds
        while monotonicSeconds() < deadline {
            let found: JSON? = events.withLock { queues in
                var queue = queues[handle] ?? []
                defer { queues[handle] = queue }
                while !queue.isEmpty {
                    let event = queue.removeFirst()
                    if matches(event) { return event }
                }
                return nil
            }
            if let found {
                if let error = found["plugindata"]?["data"]?["error"]?.stringValue { throw BenchError(error) }
                return found
            }
            usleep(2_000)
        }
        throw BenchError("no answer on handle \(handle) within \(timeoutSeconds) s")
    }

    /// Sends the end of our candidates (they are all in the SDP already).
    func trickleCompleted(_ handle: Int64) throws(BenchError) {
        _ = try http.post("\(id)/\(handle)", ["janus": "trickle", "candidate": ["completed": true], "transaction": .string(Self.transaction())])
    }

    func detach(_ handle: Int64) {
        _ = try? http.post("\(id)/\(handle)", ["janus": "detach", "transaction": .string(Self.transaction())])
    }

    func destroy() {
        polling.store(false, ordering: .relaxed)
        _ = try? http.post("\(id)", ["janus": "destroy", "transaction": .string(Self.transaction())])
        // A poll waiting on a destroyed session is held until the server's own timer (30 s, in
        // Janus as in Atrium), so the poller is not waited for: it ends when that poll returns, or
        // with the process. Joining it made every run 30 s longer than its measurements.
        if let poller { pthread_detach(poller) }
    }

    private func poll() {
        while polling.load(ordering: .relaxed) {
            guard let event = try? http.get("\(id)?rid=\(Int(monotonicSeconds() * 1000))", timeoutSeconds: 40) else {
                if polling.load(ordering: .relaxed) { usleep(100_000) }
                continue
            }
            let list = event.arrayValue ?? [event]
            for e in list {
                guard let sender = e["sender"]?.intValue else { continue }
                events.withLock { $0[sender, default: []].append(e) }
            }
        }
    }
}

/// Seconds on CLOCK_MONOTONIC.
func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// Sleeps until `nanoseconds` on CLOCK_MONOTONIC (the pacing of publishers and of the floor).
func sleep(untilMonotonic nanoseconds: UInt64) {
    var ts = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil)
}

/// CPU time of the calling thread, in nanoseconds.
func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Starts a joinable pthread running `body` (`name` says what it is for, in the code).
/// Makes the calling thread, and the threads it starts afterwards, SCHED_BATCH: a woken batch
/// thread does not preempt the running one. The load generator's receivers share this machine
/// with the server under test, and every datagram the server sends wakes one; as ordinary threads
/// they preempted the server mid-send hundreds of times a second, and those context switches were
/// counted as the server's CPU. Remote clients cost a server nothing of the kind.
func yieldToServers() {
    var parameters = sched_param()
    parameters.sched_priority = 0
    let batch: Int32 = 3  // SCHED_BATCH (linux/sched.h), which Glibc's module does not export
    if sched_setscheduler(0, batch, &parameters) != 0 {
        writeError("atrium-bench: cannot switch to SCHED_BATCH (errno \(errno)); the server's figures include preemptions by the load generator\n")
    }
}

func startThread(name: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { arg in
        let box = Unmanaged<AnyObject>.fromOpaque(arg!).takeRetainedValue() as! Box
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed")
    return thread
}
