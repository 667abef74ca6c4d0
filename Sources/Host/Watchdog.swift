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
/// It probes rather than timing each call: every `interval` it posts an empty task to each
/// plugin queue and to the media thread, and a probe still waiting past the threshold means the
/// thread is held. That costs the callbacks nothing; the media thread only records which plugin
/// it is calling (`MediaEngine.pluginInCall`) so the stall can be blamed on it.
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
        var media = Probe()
    }

    private let plugins: [LoadedPlugin]
    private let media: MediaEngine
    private let logger: Logger
    private let controlThreshold: UInt64
    private let mediaThreshold: UInt64
    private let state = Mutex(State())
    /// Made at start (a dispatch source released while never resumed ends the process); touched
    /// only by start and stop, which the host calls in order from one task.
    nonisolated(unsafe) private var timer: (any DispatchSourceTimer)?

    init(plugins: [LoadedPlugin], media: MediaEngine, logger: Logger, controlMilliseconds: Int, mediaMilliseconds: Int) {
        self.plugins = plugins
        self.media = media
        self.logger = logger
        controlThreshold = UInt64(controlMilliseconds) * 1_000_000
        mediaThreshold = UInt64(mediaMilliseconds) * 1_000_000
    }

    /// Starts probing, a few times per threshold so a stall is named soon after it passes it.
    func start() {
        let interval = max(10, Int(min(controlThreshold, mediaThreshold) / 4_000_000))
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
        if state.withLock({ Self.check(&$0.media, now: now, threshold: mediaThreshold) }) {
            let blamed = media.pluginInCall.map(\.id) ?? "the host"
            state.withLock { $0.media.lastBlamed = blamed }
            logger.warning("\(blamed) has held the media thread for over \(mediaThreshold / 1_000_000) ms")
        }
        if media.isRunning, state.withLock({ $0.media.postedAt == nil }) {
            state.withLock { $0.media.postedAt = now }
            media.post { [self] in self.answeredMedia() }
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

    private func answeredMedia() {
        state.withLock { Self.answered(&$0.media) }
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
            let ok = !s.media.reported && !s.control.values.contains { $0.reported }
            return (ok, ["media": describe(s.media), "control": .object(control)])
        }
    }
}
