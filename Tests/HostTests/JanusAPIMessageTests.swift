import AtriumJSON
import Logging
import Testing
@testable import Host

/// The Janus API's replies, one message at a time through the host core in process: no socket, no
/// process, no plugin but Chat. Each bad request gets Janus's code, and nothing else changes (the
/// session and its handle still answer afterwards). The live differential tests against Janus 1.1.2
/// (Tests/e2e/test_janus_conformance.py) stay for the wording and order only a live Janus shows.
@Suite struct JanusAPIMessageTests {
    /// A host with the Chat plugin, one session and one handle on it, answering over "WebSocket"
    /// (the ids in the body).
    final class Fixture: Sendable {
        let host: AtriumHost
        let session: Int64
        let handle: Int64

        init() async throws {
            host = try AtriumHost(config: HostTests.config(HostTests.chat), logger: Logger(label: "test"))
            let created = await Self.send(host.core, ["janus": "create", "transaction": "c"])
            session = try #require(created["data"]?["id"]?.intValue)
            let attached = await Self.send(host.core, ["janus": "attach", "session_id": .int(session), "plugin": "atrium.plugin.chat", "transaction": "a"])
            handle = try #require(attached["data"]?["id"]?.intValue)
        }

        static func send(_ core: HostCore, _ request: JSON) async -> JSON {
            await withCheckedContinuation { continuation in
                core.process(json: request, context: RequestContext(connection: Quiet())) { continuation.resume(returning: $0) }
            }
        }

        func send(_ request: JSON) async -> JSON { await Self.send(host.core, request) }

        /// `fields` plus the transaction, the session and (when `toHandle`) the handle.
        func request(_ fields: JSONObject, toHandle: Bool) -> JSON {
            var o = fields
            o["transaction"] = "t"
            if o["session_id"] == nil { o["session_id"] = .int(session) }
            if toHandle && o["handle_id"] == nil { o["handle_id"] = .int(handle) }
            return .object(o)
        }

        /// The session and the handle still work.
        func stillAnswers() async {
            #expect(await send(request(["janus": "keepalive"], toHandle: false))["janus"] == "ack")
            let listed = await send(request(["janus": "message", "body": ["request": "list"]], toHandle: true))
            #expect(listed["janus"] == "success", "\(listed)")
        }
    }

    /// A connection that drops what it is sent: these tests read replies, not events.
    final class Quiet: ClientConnection {
        var transportName: String { "test" }
        func send(_ message: JSON) {}
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let fields: JSONObject
        let toHandle: Bool
        let code: Int
        /// Janus leaves the transaction out when the request's own envelope is bad.
        var echoesTransaction = true
        var testDescription: String { name }
    }

    static let sdp = JSON.string("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")

    static let cases: [Case] = [
        Case(name: "unknown verb", fields: ["janus": "fly"], toHandle: false, code: 453),
        Case(name: "no verb", fields: ["body": [:]], toHandle: false, code: 456, echoesTransaction: false),
        Case(name: "verb not a string", fields: ["janus": 7], toHandle: false, code: 467, echoesTransaction: false),
        Case(name: "no such session", fields: ["janus": "keepalive", "session_id": 987_654_321], toHandle: false, code: 458),
        Case(name: "no such handle", fields: ["janus": "hangup", "handle_id": 987_654_321], toHandle: true, code: 459),
        Case(name: "attach without plugin", fields: ["janus": "attach"], toHandle: false, code: 456),
        Case(name: "attach to a plugin not loaded", fields: ["janus": "attach", "plugin": "janus.plugin.nothere"], toHandle: false, code: 460),
        Case(name: "attach with a plugin that is not a string", fields: ["janus": "attach", "plugin": 3], toHandle: false, code: 467),
        Case(name: "detach at the session", fields: ["janus": "detach"], toHandle: false, code: 457),
        Case(name: "attach at a handle", fields: ["janus": "attach", "plugin": "atrium.plugin.chat"], toHandle: true, code: 457),
        Case(name: "message without body", fields: ["janus": "message"], toHandle: true, code: 456),
        Case(name: "message with a body that is not an object", fields: ["janus": "message", "body": "hi"], toHandle: true, code: 467),
        Case(name: "jsep not an object", fields: ["janus": "message", "body": [:], "jsep": "offer"], toHandle: true, code: 455),
        Case(name: "jsep without type", fields: ["janus": "message", "body": [:], "jsep": ["sdp": sdp]], toHandle: true, code: 456),
        Case(name: "jsep without sdp", fields: ["janus": "message", "body": [:], "jsep": ["type": "offer"]], toHandle: true, code: 456),
        Case(name: "jsep sdp not a string", fields: ["janus": "message", "body": [:], "jsep": ["type": "offer", "sdp": 1]], toHandle: true, code: 467),
        Case(name: "jsep of an unknown type", fields: ["janus": "message", "body": [:], "jsep": ["type": "pranswer", "sdp": sdp]], toHandle: true, code: 464),
        Case(name: "jsep sdp not starting with v=", fields: ["janus": "message", "body": [:], "jsep": ["type": "offer", "sdp": "o=- 1 1 IN IP4 0.0.0.0"]], toHandle: true, code: 465),
        Case(name: "trickle without a candidate", fields: ["janus": "trickle"], toHandle: true, code: 456),
        Case(name: "trickle with candidate and candidates", fields: ["janus": "trickle", "candidate": ["completed": true], "candidates": []], toHandle: true, code: 454),
    ]

    @Test(arguments: cases) func aBadRequestGetsJanussCodeAndChangesNothing(_ c: Case) async throws {
        let fixture = try await Fixture()
        let reply = await fixture.send(fixture.request(c.fields, toHandle: c.toHandle))
        #expect(reply["janus"] == "error", "\(reply)")
        #expect(reply["error"]?["code"]?.intValue == Int64(c.code), "\(reply)")
        #expect(reply["transaction"] == (c.echoesTransaction ? "t" : nil), "\(reply)")
        await fixture.stillAnswers()
        #expect(fixture.host.counts == (1, 1))
        await fixture.host.shutdown()
    }

    @Test func theLifeOfASessionInMessages() async throws {
        let fixture = try await Fixture()
        #expect(await fixture.send(["janus": "ping", "transaction": "p"])["janus"] == "pong")
        #expect(await fixture.send(["janus": "info", "transaction": "i"])["janus"] == "server_info")
        let joined = await fixture.send(fixture.request(["janus": "message", "body": ["request": "join", "room": "r1", "display": "Ada"]], toHandle: true))
        #expect(joined["janus"] == "success" && joined["sender"] == .int(fixture.handle), "\(joined)")
        #expect(joined["plugindata"]?["data"]?["chat"] == "joined", "\(joined)")
        // A trickle is always acknowledged, even without a PeerConnection.
        #expect(await fixture.send(fixture.request(["janus": "trickle", "candidate": ["completed": true]], toHandle: true))["janus"] == "ack")
        // Without a PeerConnection, hangup is a bare success.
        #expect(await fixture.send(fixture.request(["janus": "hangup"], toHandle: true))["janus"] == "success")
        #expect(await fixture.send(fixture.request(["janus": "detach"], toHandle: true))["janus"] == "success")
        #expect(fixture.host.counts == (1, 0))
        let gone = await fixture.send(fixture.request(["janus": "hangup"], toHandle: true))
        #expect(gone["error"]?["code"] == 459, "\(gone)")
        #expect(await fixture.send(fixture.request(["janus": "destroy"], toHandle: false))["janus"] == "success")
        #expect(fixture.host.counts == (0, 0))
        let ended = await fixture.send(fixture.request(["janus": "keepalive"], toHandle: false))
        #expect(ended["error"]?["code"] == 458, "\(ended)")
        await fixture.host.shutdown()
    }
}
