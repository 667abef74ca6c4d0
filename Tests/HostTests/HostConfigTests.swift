import AtriumJSON
import Testing
@testable import Host

@Suite struct HostConfigTests {
    func parse(_ text: String) throws(ConfigError) -> HostConfig {
        try HostConfig.parse(bytes: Array(text.utf8), source: "test.json")
    }

    @Test func emptyObjectGivesTheDocumentedDefaults() throws {
        let c = try parse("{}")
        #expect(c.http.port == 8088 && c.webSocket.port == 8188 && c.http.basePath == "/janus")
        #expect(c.sessions.timeoutSeconds == 60 && c.sessions.reclaimSeconds == 0)
        #expect(c.admin.secret == nil && c.plugins.isEmpty)
    }

    @Test func pluginEntriesAreRead() throws {
        let c = try parse(#"{"plugins":[{"library":"libatrium_chat.so","aliases":["a","b"],"optional":true,"config":{"x":1}}]}"#)
        #expect(c.plugins.count == 1)
        #expect(c.plugins[0].aliases == ["a", "b"] && c.plugins[0].optional && c.plugins[0].enabled)
        #expect(c.plugins[0].config["x"] == 1)
    }

    @Test(arguments: [
        (#"{"http":{"port":70000}}"#, "http.port"),
        (#"{"http":{"port":"80"}}"#, "http.port"),
        (#"{"websocket":{"bnd":"x"}}"#, "websocket.bnd"),
        (#"{"plugins":{}}"#, "plugins"),
        (#"{"plugins":[{"aliases":[]}]}"#, "plugins[0].library"),
        (#"{"plugins":[{"library":"a.so","aliases":[5]}]}"#, "plugins[0].aliases[0]"),
        (#"{"plugins":[{"library":"a.so","aliases":["x"]},{"library":"b.so","aliases":["x"]}]}"#, "plugins[1].aliases[0]"),
        (#"{"plugins":[{"library":"a.so","config":[]}]}"#, "plugins[0].config"),
        (#"{"http":{"base_path":"janus/"}}"#, "http.base_path"),
        (#"{"log_level":"loud"}"#, "log_level"),
        (#"{"admin":{"secret":""}}"#, "admin.secret"),
    ])
    func wrongValuesNameTheirKeyPath(text: String, path: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.location == path, "\(error)")
        }
    }

    @Test func malformedJSONGivesLineAndColumn() {
        do {
            _ = try parse("{\n  \"http\": {\n    \"port\": 80,\n  }\n}")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("test.json: line 4, column 3:"), "\(error)")
        }
    }
}
