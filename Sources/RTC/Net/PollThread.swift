import CSockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The part every poll(2) loop of ours shares (the host's media loops, the TURN plugin's relay
/// loop, atrium-bench's client loop): a thread of its own, a pipe that wakes its poll, work other
/// threads post to it, and a stop that waits for the thread to end. The owner keeps its own
/// descriptors and polls them together with `wakeDescriptor`.
///
/// Why a pipe and a locked list rather than a lock-free queue: posts are rare next to packets
/// (control requests, relays from other loops), and a pipe is what poll can wait on.
public final class PollThread: @unchecked Sendable {
    /// The read end of the wake pipe: poll it for POLLIN, and call `runPosted` when it is readable.
    public let wakeDescriptor: Int32
    private let wakeWrite: Int32
    private var tasks: [() -> Void] = []
    private var tasksLock = pthread_mutex_t()
    private let running = Atomic<Bool>(false)
    /// Set by `start`, for `stop` to join.
    private var thread: pthread_t?

    public init() throws(SocketError) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SocketError("pipe") }
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeDescriptor = ends[0]
        wakeWrite = ends[1]
        pthread_mutex_init(&tasksLock, nil)
    }

    deinit {
        close(wakeDescriptor)
        close(wakeWrite)
        pthread_mutex_destroy(&tasksLock)
    }

    /// True from `start` until the thread is told to stop.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Starts the thread (named `name`, of which 15 bytes show), which calls `setUp` once, then
    /// `iteration` until `stop`: one poll and what follows from it per call.
    public func start(name: String, setUp: @escaping () -> Void = {}, _ iteration: @escaping () -> Void) {
        running.store(true, ordering: .releasing)
        final class Body {
            let run: () -> Void
            init(_ run: @escaping () -> Void) { self.run = run }
        }
        let body = Body { [self] in
            setUp()
            while isRunning { iteration() }
        }
        var created = pthread_t()
        let rc = pthread_create(&created, nil, { argument in
            guard let argument else { return nil }
            Unmanaged<Body>.fromOpaque(argument).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(body).toOpaque())
        precondition(rc == 0, "pthread_create failed: the process has no thread left")
        _ = atrium_pthread_setname_np(created, String(decoding: name.utf8.prefix(15), as: UTF8.self))
        thread = created
    }

    /// Runs `task` on the thread, soon (after the poll it is in returns).
    public func post(_ task: @escaping () -> Void) {
        pthread_mutex_lock(&tasksLock)
        tasks.append(task)
        pthread_mutex_unlock(&tasksLock)
        wake()
    }

    /// Makes the thread's poll return.
    public func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    /// On the thread, when `wakeDescriptor` is readable: empties the pipe and runs what was posted,
    /// in the order it was posted.
    public func runPosted() {
        var drain = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        _ = withUnsafeMutableBytes(of: &drain) { read(wakeDescriptor, $0.baseAddress, $0.count) }
        pthread_mutex_lock(&tasksLock)
        let pending = tasks
        tasks.removeAll()
        pthread_mutex_unlock(&tasksLock)
        for task in pending { task() }
    }

    /// Stops the thread after `last` has run on it (so the owner closes what the thread owns on
    /// the thread), and waits for it to end. Nothing posted afterwards runs.
    public func stop(after last: @escaping () -> Void = {}) {
        guard let thread, isRunning else { return }
        post { [self] in
            last()
            running.store(false, ordering: .releasing)
        }
        pthread_join(thread, nil)
    }
}
