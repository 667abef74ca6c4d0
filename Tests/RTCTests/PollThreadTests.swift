import Dispatch
import RTC
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The thread every poll loop of ours runs on: posted work, waking its poll, and stopping.
@Suite struct PollThreadTests {
    final class Record: @unchecked Sendable {
        let lock = Mutex<[Int]>([])
        let onThread = Atomic<Int>(0)
        let iterations = Atomic<Int>(0)
        /// The loop's thread, as its `setUp` saw it.
        let thread = Mutex<pthread_t?>(nil)

        var isLoopThread: Bool { thread.withLock { $0.map { pthread_equal($0, pthread_self()) != 0 } ?? false } }
    }

    /// A loop as its owners write it: poll the wake pipe (here with a long timeout, so only a wake
    /// ends the wait), run what was posted.
    static func start(_ thread: PollThread, _ record: Record) {
        thread.start(name: "poll-test", setUp: { record.thread.withLock { $0 = pthread_self() } }) {
            record.iterations.wrappingAdd(1, ordering: .relaxed)
            var fds = [pollfd(fd: thread.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, 10_000) > 0 { thread.runPosted() }
        }
    }

    @Test func postedWorkRunsOnTheThreadInOrderAndStopWaitsForTheLast() throws {
        let thread = try PollThread()
        let record = Record()
        Self.start(thread, record)
        #expect(thread.isRunning)
        for i in 0..<1_000 {
            thread.post {
                if record.isLoopThread { record.onThread.wrappingAdd(1, ordering: .relaxed) }
                record.lock.withLock { $0.append(i) }
            }
        }
        thread.stop { record.lock.withLock { $0.append(-1) } }
        #expect(!thread.isRunning)
        let seen = record.lock.withLock { $0 }
        #expect(seen == Array(0..<1_000) + [-1], "in posting order, the stop's work last")
        #expect(record.onThread.load(ordering: .relaxed) == 1_000)
        #expect(!record.isLoopThread)
    }

    @Test func aPostWakesAPollThatWouldWaitTenSeconds() throws {
        let thread = try PollThread()
        let record = Record()
        Self.start(thread, record)
        defer { thread.stop() }
        // Let the thread enter its 10 s poll, then post: only the wake pipe can end that wait soon.
        while record.iterations.load(ordering: .relaxed) == 0 { usleep(1_000) }
        usleep(50_000)
        let ran = DispatchSemaphore(value: 0)
        thread.post { ran.signal() }
        #expect(ran.wait(timeout: .now() + 2) == .success)
    }

    @Test func stopBeforeStartAndTwiceIsHarmless() throws {
        let thread = try PollThread()
        thread.stop()
        let record = Record()
        Self.start(thread, record)
        thread.stop()
        thread.stop()
        #expect(!thread.isRunning)
    }
}
