import AtriumJSON
import Foundation
import Logging
import Testing
@testable import Host

/// A plugin callback that holds a thread is named in `/health` while it holds it, and counted after.
@Suite struct WatchdogTests {
    static func host() throws -> AtriumHost {
        let dir = try PluginPaths.directory()
        let text = #"""
        {"http":{"bind":"127.0.0.1","port":0},"websocket":{"bind":"127.0.0.1","port":0},
         "media":{"bind":"127.0.0.1","udp_port":0,"threads":2},"watchdog":{"control_ms":50,"media_ms":50},
         "plugins_dir":"\#(dir)","plugins":\#(HostTests.chat)}
        """#
        return try AtriumHost(config: HostConfig.parse(bytes: Array(text.utf8)), logger: Logger(label: "test"))
    }

    /// Polls `condition` every 10 ms for up to 5 s.
    static func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func namesAPluginHoldingItsControlThread() async throws {
        let host = try Self.host()
        try await host.start()
        let core = host.core
        let plugin = try #require(core.plugins.first)
        let release = DispatchSemaphore(value: 0)
        // What a plugin's slow handle_message does to its queue.
        plugin.queue.async { release.wait() }
        let stalled = await Self.eventually { core.health()["threads"]?["control"]?[plugin.id]?["stalled"] == true }
        #expect(stalled)
        #expect(core.health()["ok"] == false)
        #expect(core.health()["threads"]?["control"]?[plugin.id]?["blamed"] == .string(plugin.id))
        release.signal()
        // At least one: on a loaded machine (tests run in parallel) the scheduler alone may hold a
        // thread past 50 ms now and then, and that is a hold too.
        let counted = await Self.eventually {
            let probe = core.health()["threads"]?["control"]?[plugin.id]
            return probe?["stalled"] == false && (probe?["stalls"]?.intValue ?? 0) >= 1
        }
        #expect(counted)
        await host.shutdown()
    }

    @Test func namesThePluginHoldingAMediaThread() async throws {
        let host = try Self.host()
        try await host.start()
        let core = host.core
        let plugin = try #require(core.plugins.first)
        let release = DispatchSemaphore(value: 0)
        // What a slow incoming_rtp does: the second loop's thread is inside the plugin's callback.
        let loop = core.loops.engines[1]
        loop.post { loop.calling(plugin) { release.wait() } }
        let stalled = await Self.eventually { core.health()["threads"]?["media"]?["stalled"] == true }
        #expect(stalled)
        #expect(core.health()["threads"]?["media"]?["blamed"] == .string(plugin.id))
        let loops = core.health()["threads"]?["media_loops"]?.arrayValue ?? []
        #expect(loops.count == 2)
        #expect(loops.last?["stalled"] == true)
        #expect(loops.first?["stalled"] == false, "the other loop goes on")
        release.signal()
        let counted = await Self.eventually {
            let probe = core.health()["threads"]?["media"]
            return probe?["stalled"] == false && (probe?["stalls"]?.intValue ?? 0) >= 1
        }
        #expect(counted)
        await host.shutdown()
    }
}
