import AtriumJSON
import Dispatch
import Logging
import RTC
import Synchronization

/// Names the plugin that holds a thread too long. A plugin's [control] calls run one at a time
/// on its queue and every plugin's [media] calls share the media thread, so one slow callback
/// delays every request of that plugin or every packet of every meeting; the watchdog makes that
/// visible (a warning with the plugin's name, and `/health`) instead of a silent stall.
///
/// It times no call. A plugin queue gets an empty task a few times per control threshold, and a
/// probe still waiting past the threshold means the queue is held. The media thread is never
/// posted anything (that would wake it): it notes when it leaves poll and whom it is calling
/// (`MediaEngine.heldFor`, `pluginInCall`), and the watchdog reads that.
final class Watchdog: Sendable {
    /// One thread's probe and what it has seen.
    struct Probe {
        var postedAt: UInt64?
        var reported = false
        var stalls = 0
        var longestNanos: UInt64 = 0
        var lastBlamed: String?
    }

    private struct State {
        var control: [String: Probe] = [:]
        /// One per media loop.
        var media: [Probe]
    }

    private let plugins: [LoadedPlugin]
    private let loops: [MediaEngine]
    private let logger: Logger
    private let controlThreshold: UInt64
    private let mediaThreshold: UInt64
    private let state: Mutex<State>
    /// Touched only on the watchdog's own queue (the timer's handler), after `start`.
    nonisolated(unsafe) private var ticks = 0
    nonisolated(unsafe) private var controlEvery = 1
    /// Made at start (a dispatch source released while never resumed ends the process); touched
    /// only by start and stop, which the host calls in order from one task.
    nonisolated(unsafe) private var timer: (any DispatchSourceTimer)?

    init(plugins: [LoadedPlugin], loops: [MediaEngine], logger: Logger, controlMilliseconds: Int, mediaMilliseconds: Int) {
        self.plugins = plugins
        self.loops = loops
        state = Mutex(State(media: Array(repeating: Probe(), count: loops.count)))
        self.logger = logger
        controlThreshold = UInt64(controlMilliseconds) * 1_000_000
        mediaThreshold = UInt64(mediaMilliseconds) * 1_000_000
    }

    /// Starts watching: the media thread once per its threshold, the plugin queues twice per theirs,
    /// so a hold is named within twice its threshold. Each look is a wake-up of an idle host (a
    /// probe wakes its queue's thread too), hence no more often than that.
    func start() {
        let interval = max(10, Int(min(controlThreshold / 2, mediaThreshold) / 1_000_000))
        controlEvery = max(1, Int(controlThreshold / 2 / 1_000_000) / interval)
        let source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "atrium.watchdog"))
        source.schedule(deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval))
        source.setEventHandler { [weak self] in self?.tick() }
        source.resume()
        timer = source
    }

    func stop() {
        timer?.cancel()
        timer = nil
    }

    private func tick() {
        let now = monotonicNanoseconds()
        ticks &+= 1
        for loop in loops { checkMedia(loop, now: now) }
        guard ticks % controlEvery == 0 else { return }
        for plugin in plugins {
            let id = plugin.id
            if state.withLock({ Self.check(&$0.control[id, default: Probe()], now: now, threshold: controlThreshold) }) {
                state.withLock { $0.control[id]?.lastBlamed = id }
                logger.warning("plugin \(id) has held its control thread for over \(controlThreshold / 1_000_000) ms")
            }
            if state.withLock({ $0.control[id]?.postedAt == nil }) {
                state.withLock { $0.control[id]?.postedAt = now }
                plugin.queue.async { [self] in self.answered(control: id) }
            }
        }
    }

    /// A media thread is held when it has been working longer than its threshold without going
    /// back to poll; the hold ends (and is counted) when it goes back.
    private func checkMedia(_ loop: MediaEngine, now: UInt64) {
        let i = loop.index
        let held = loop.heldFor(now: now)
        if held > mediaThreshold {
            let first = state.withLock { s -> Bool in
                s.media[i].longestNanos = max(s.media[i].longestNanos, held)
                guard !s.media[i].reported else { return false }
                s.media[i].reported = true
                return true
            }
            if first {
                let blamed = loop.pluginInCall.map(\.id) ?? "the host"
                state.withLock { $0.media[i].lastBlamed = blamed }
                let which = loops.count > 1 ? "media thread \(i)" : "the media thread"
                logger.warning("\(blamed) has held \(which) for over \(mediaThreshold / 1_000_000) ms")
            }
        } else {
            state.withLock { s in
                if s.media[i].reported {
                    s.media[i].reported = false
                    s.media[i].stalls += 1
                }
            }
        }
    }

    /// Whether this probe has just gone past the threshold (true once per stall).
    private static func check(_ probe: inout Probe, now: UInt64, threshold: UInt64) -> Bool {
        guard let posted = probe.postedAt, !probe.reported, now > posted, now - posted > threshold else { return false }
        probe.reported = true
        return true
    }

    private static func answered(_ probe: inout Probe) {
        guard let posted = probe.postedAt else { return }
        if probe.reported {
            probe.stalls += 1
            let now = monotonicNanoseconds()
            probe.longestNanos = max(probe.longestNanos, now > posted ? now - posted : 0)
        }
        probe.postedAt = nil
        probe.reported = false
    }

    private func answered(control id: String) {
        state.withLock { Self.answered(&$0.control[id, default: Probe()]) }
    }


    /// What `/health` shows: per thread, whether it is held now, how often it was, the longest
    /// hold and whom it was blamed on; `ok` is false while a thread is held.
    func health() -> (ok: Bool, json: JSON) {
        state.withLock { s in
            func describe(_ p: Probe) -> JSON {
                ["stalled": .bool(p.reported), "stalls": .int(Int64(p.stalls)),
                 "longest_ms": .int(Int64(p.longestNanos / 1_000_000)), "blamed": JSON(p.lastBlamed)]
            }
            var control = JSONObject()
            for (id, probe) in s.control.sorted(by: { $0.key < $1.key }) { control[id] = describe(probe) }
            // "media" sums the loops (one loop: that loop), so a reader of one media thread reads on.
            var all = Probe()
            for p in s.media {
                all.reported = all.reported || p.reported
                all.stalls += p.stalls
                if p.longestNanos >= all.longestNanos, p.longestNanos > 0 {
                    all.longestNanos = p.longestNanos
                    all.lastBlamed = p.lastBlamed
                }
            }
            let ok = !all.reported && !s.control.values.contains { $0.reported }
            return (ok, ["media": describe(all), "media_loops": .array(s.media.map(describe)), "control": .object(control)])
        }
    }
}
