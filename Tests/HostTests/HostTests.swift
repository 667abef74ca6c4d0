import AtriumJSON
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Synchronization
import Testing
@testable import Host

/// The host built from in-memory configuration, driven in-process (no sockets) and on port 0.
@Suite struct HostTests {
    static func config(_ plugins: String) throws -> HostConfig {
        let dir = try PluginPaths.directory()
        let text = #"{"http":{"bind":"127.0.0.1","port":0},"websocket":{"bind":"127.0.0.1","port":0},"plugins_dir":"\#(dir)","plugins":\#(plugins)}"#
        return try HostConfig.parse(bytes: Array(text.utf8))
    }

    static let chat = #"[{"library":"libatrium_chat.so","aliases":["janus.plugin.chatroom"],"config":{"rooms":[{"id":"r1"}]}}]"#

    func call(_ core: HostCore, _ request: JSON, session: UInt64? = nil, handle: UInt64? = nil) async -> JSON {
        await withCheckedContinuation { continuation in
            var context = RequestContext(connection: nil, pathSessionID: session, pathHandleID: handle)
            context.pathHasSession = session != nil
            core.process(json: request, context: context) { continuation.resume(returning: $0) }
        }
    }

    @Test func loadsTheChatPluginAndAnswersInProcess() async throws {
        let host = try AtriumHost(config: Self.config(Self.chat), logger: Logger(label: "test"))
        let core = host.core
        #expect(core.plugins.map(\.id) == ["atrium.plugin.chat"])
        let created = await call(core, ["janus": "create", "transaction": "t"])
        let session = try #require(created["data"]?["id"]?.intValue).magnitude
        let attached = await call(core, ["janus": "attach", "plugin": "janus.plugin.chatroom", "transaction": "a"], session: session)
        let handle = try #require(attached["data"]?["id"]?.intValue).magnitude
        let joined = await call(core, ["janus": "message", "transaction": "m", "body": ["request": "join", "room": "r1", "display": "Ada"]], session: session, handle: handle)
        #expect(joined["plugindata"]?["plugin"] == "janus.plugin.chatroom")
        #expect(joined["plugindata"]?["data"]?["chat"] == "joined")
        #expect(host.counts == (1, 1))
        let detached = await call(core, ["janus": "detach", "transaction": "d"], session: session, handle: handle)
        #expect(detached["janus"] == "success")
        await host.shutdown()
        #expect(host.counts == (0, 0))
    }

    @Test func bindsPortZeroAndStopsCleanly() async throws {
        let host = try AtriumHost(config: Self.config(Self.chat), logger: Logger(label: "test"))
        try await host.start()
        let http = try #require(host.httpPort)
        let ws = try #require(host.webSocketPort)
        #expect(http > 0 && ws > 0 && http != ws)
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(http)/janus/info")!)
        #expect(try JSON.parse(bytes: Array(data))["janus"] == "server_info")
        await host.shutdown()
    }

    @Test func aMissingLibraryStopsStartupNamingThePlugin() throws {
        do {
            _ = try AtriumHost(config: Self.config(#"[{"library":"libatrium_nothere.so"}]"#), logger: Logger(label: "test"))
            Issue.record("loaded a missing library")
        } catch let error as PluginLoadError {
            #expect(error.code == .open)
            #expect(error.description.contains("plugins[0] (libatrium_nothere.so)"))
        }
    }

    @Test func anOptionalPluginThatFailsIsSkipped() throws {
        let host = try AtriumHost(config: Self.config(#"[{"library":"libatrium_nothere.so","optional":true},"# + Self.chat.dropFirst()), logger: Logger(label: "test"))
        #expect(host.core.plugins.map(\.id) == ["atrium.plugin.chat"])
    }

    @Test func aPluginThatRefusesItsConfigStopsStartup() throws {
        do {
            _ = try AtriumHost(config: Self.config(#"[{"library":"libatrium_chat.so","config":{"rooms":"many"}}]"#), logger: Logger(label: "test"))
            Issue.record("accepted a bad plugin config")
        } catch let error as PluginLoadError {
            #expect(error.code == .initFailed)
            #expect(error.reason.contains("config.rooms"))
        }
    }

    @Test func eventsFollowTheirAck() async throws {
        // A chat join pushes events to the others from inside handle_message: they must arrive
        // after the reply to the request that caused them. Recorded through a fake connection.
        final class Recorder: ClientConnection {
            let log = Mutex<[JSON]>([])
            var transportName: String { "test" }
            func send(_ message: JSON) { log.withLock { $0.append(message) } }
        }
        let host = try AtriumHost(config: Self.config(Self.chat), logger: Logger(label: "test"))
        let core = host.core
        let recorder = Recorder()
        func send(_ request: JSON) async -> JSON {
            await withCheckedContinuation { c in
                core.process(json: request, context: RequestContext(connection: recorder)) { reply in
                    recorder.send(reply)
                    c.resume(returning: reply)
                }
            }
        }
        let s = try #require(await send(["janus": "create", "transaction": "c"])["data"]?["id"]?.intValue)
        let h1 = try #require(await send(["janus": "attach", "session_id": .int(s), "plugin": "atrium.plugin.chat", "transaction": "a1"])["data"]?["id"]?.intValue)
        let h2 = try #require(await send(["janus": "attach", "session_id": .int(s), "plugin": "atrium.plugin.chat", "transaction": "a2"])["data"]?["id"]?.intValue)
        _ = await send(["janus": "message", "session_id": .int(s), "handle_id": .int(h1), "transaction": "j1", "body": ["request": "join", "room": "r1", "display": "A"]])
        _ = await send(["janus": "message", "session_id": .int(s), "handle_id": .int(h2), "transaction": "j2", "body": ["request": "join", "room": "r1", "display": "B"]])
        // The notice goes out after the reply, maybe from another thread: wait for it to arrive.
        var log = recorder.log.withLock { $0 }
        for _ in 0..<200 where !log.contains(where: { $0["janus"] == "event" && $0["sender"] == .int(h1) }) {
            try await Task.sleep(for: .milliseconds(10))
            log = recorder.log.withLock { $0 }
        }
        let reply = try #require(log.firstIndex { $0["transaction"] == "j2" })
        let notice = try #require(log.firstIndex { $0["janus"] == "event" && $0["sender"] == .int(h1) })
        #expect(reply < notice)
        await host.shutdown()
    }
}
