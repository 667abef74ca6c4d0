import AtriumJSON
import Foundation
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
        #expect(c.media.udpPort == 10_000 && c.media.bind == "::" && c.media.advertisedAddresses.isEmpty)
        #expect(c.media.consentTimeoutSeconds == 30 && c.media.slowlinkThreshold == 0 && c.media.tcpPort == nil)
    }

    @Test func mediaTakesIPv6AddressesToo() throws {
        let c = try parse(#"{"media":{"bind":"2001:db8::5","advertised_addresses":["2001:db8::5","198.51.100.4"]}}"#)
        #expect(c.media.bind == "2001:db8::5" && c.media.advertisedAddresses == ["2001:db8::5", "198.51.100.4"])
        #expect(try parse(#"{"media":{"bind":"0.0.0.0"}}"#).media.bind == "0.0.0.0")
    }

    @Test func hostileClientLimitsHaveTheDocumentedDefaults() throws {
        let c = try parse("{}")
        #expect(c.limits.sessionsPerAddress == 100 && c.limits.handlesPerAddress == 1_000)
        #expect(c.limits.httpConnectionsPerAddress == 512 && c.limits.webSocketConnectionsPerAddress == 128)
        #expect(c.limits.maxHTTPConnections == 10_000 && c.limits.maxWebSocketConnections == 10_000)
        #expect(c.limits.addressRequestsPerSecond == 400 && c.limits.addressBurst == 800 && c.limits.maxAddresses == 100_000)
        #expect(c.http.headerTimeoutSeconds == 10 && c.http.idleTimeoutSeconds == 60)
        #expect(c.http.privateFrom.map(\.description) == ["127.0.0.0/8", "::1/128"])
        #expect(c.webSocket.handshakeTimeoutSeconds == 10 && c.webSocket.idleTimeoutSeconds == 150 && c.webSocket.maxPendingBytes == 8 << 20)
        #expect(c.sessions.maxQueuedEventBytes == 4 << 20)
    }

    @Test func hostileClientLimitsAreRead() throws {
        let c = try parse(#"{"limits":{"sessions_per_address":5,"address_requests_per_second":7.5,"max_http_connections":20,"http_connections_per_address":20},"http":{"private_from":["10.0.0.0/8"],"header_timeout_seconds":2},"websocket":{"idle_timeout_seconds":0,"max_pending_bytes":65536},"sessions":{"max_queued_event_bytes":8192}}"#)
        #expect(c.limits.sessionsPerAddress == 5 && c.limits.addressRequestsPerSecond == 7.5 && c.limits.maxHTTPConnections == 20)
        #expect(c.http.privateFrom.map(\.description) == ["10.0.0.0/8"] && c.http.headerTimeoutSeconds == 2)
        #expect(c.webSocket.idleTimeoutSeconds == 0 && c.webSocket.maxPendingBytes == 65536 && c.sessions.maxQueuedEventBytes == 8192)
        #expect(try parse(#"{"http":{"private_from":[]}}"#).http.privateFrom.isEmpty)
    }

    @Test func mediaSectionIsRead() throws {
        let c = try parse(#"{"media":{"udp_port":0,"tcp_port":10001,"advertised_addresses":["203.0.113.7"],"consent_timeout_seconds":12.5,"slowlink_threshold":4}}"#)
        #expect(c.media.udpPort == 0 && c.media.tcpPort == 10001 && c.media.advertisedAddresses == ["203.0.113.7"])
        #expect(c.media.consentTimeoutSeconds == 12.5 && c.media.slowlinkThreshold == 4)
    }

    @Test func mediaThreadsDefaultToTheCoresAndEachTakesTheNextPort() throws {
        #expect(try parse("{}").media.threads == min(ProcessInfo.processInfo.activeProcessorCount, 64))
        let c = try parse(#"{"media":{"threads":3,"udp_port":20000,"tcp_port":30000}}"#)
        #expect(c.media.threads == 3)
        #expect((0..<3).map { c.media.udpPort(loop: $0) } == [20000, 20001, 20002])
        #expect((0..<3).map { c.media.tcpPort(loop: $0) } == [30000, 30001, 30002])
        let ephemeral = try parse(#"{"media":{"threads":2,"udp_port":0}}"#)
        #expect(ephemeral.media.udpPort(loop: 1) == 0 && ephemeral.media.tcpPort(loop: 1) == nil)
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
        (#"{"http":{"websocket_path":"/janus"}}"#, "http.websocket_path"),
        (#"{"http":{"websocket_path":"/janus/ws"}}"#, "http.websocket_path"),
        (#"{"http":{"websocket_path":"ws"}}"#, "http.websocket_path"),
        (#"{"trusted_proxies":["127.0.0.1/33"]}"#, "trusted_proxies[0]"),
        (#"{"trusted_proxies":"127.0.0.1"}"#, "trusted_proxies"),
        (#"{"log_level":"loud"}"#, "log_level"),
        (#"{"admin":{"secret":""}}"#, "admin.secret"),
        (#"{"media":{"udp_port":-1}}"#, "media.udp_port"),
        (#"{"media":{"bind":"localhost"}}"#, "media.bind"),
        (#"{"media":{"advertised_addresses":["198.51.100.4","not-an-ip"]}}"#, "media.advertised_addresses[1]"),
        (#"{"media":{"advertised_addresses":"198.51.100.4"}}"#, "media.advertised_addresses"),
        (#"{"media":{"advertised_addresses":["2001:db8::7","::"]}}"#, "media.advertised_addresses[1]"),
        (#"{"media":{"advertised_addresses":["0.0.0.0"]}}"#, "media.advertised_addresses[0]"),
        (#"{"media":{"consent_timeout_seconds":0}}"#, "media.consent_timeout_seconds"),
        (#"{"media":{"certificate_file":"c.pem"}}"#, "media"),
        (#"{"media":{"tcp_port":"10001"}}"#, "media.tcp_port"),
        (#"{"media":{"udp":1}}"#, "media.udp"),
        (#"{"media":{"threads":0}}"#, "media.threads"),
        (#"{"media":{"threads":65}}"#, "media.threads"),
        (#"{"media":{"threads":4,"udp_port":65534}}"#, "media.udp_port"),
        (#"{"media":{"threads":2,"tcp_port":65535}}"#, "media.tcp_port"),
        (#"{"limits":{"sessions_per_address":0}}"#, "limits.sessions_per_address"),
        (#"{"limits":{"max_adresses":5}}"#, "limits.max_adresses"),
        (#"{"limits":{"http_connections_per_address":50,"max_http_connections":10}}"#, "limits.http_connections_per_address"),
        (#"{"limits":{"websocket_connections_per_address":50,"max_websocket_connections":10}}"#, "limits.websocket_connections_per_address"),
        (#"{"http":{"private_from":"127.0.0.1"}}"#, "http.private_from"),
        (#"{"http":{"private_from":["127.0.0.1","localhost"]}}"#, "http.private_from[1]"),
        (#"{"http":{"header_timeout_seconds":0}}"#, "http.header_timeout_seconds"),
        (#"{"websocket":{"idle_timeout_seconds":30}}"#, "websocket.idle_timeout_seconds"),
        (#"{"websocket":{"max_pending_bytes":10}}"#, "websocket.max_pending_bytes"),
        (#"{"sessions":{"max_queued_event_bytes":-1}}"#, "sessions.max_queued_event_bytes"),
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

    @Test func aLongSessionTimeoutLiftsTheUnsetWebSocketIdleTimeout() throws {
        // Configurations written before websocket.idle_timeout_seconds existed still load.
        let c = try parse(#"{"sessions":{"timeout_seconds":300}}"#)
        #expect(c.webSocket.idleTimeoutSeconds == 750)
        #expect(try parse("{}").webSocket.idleTimeoutSeconds == 150)
        #expect(throws: ConfigError.self) { try parse(#"{"sessions":{"timeout_seconds":300},"websocket":{"idle_timeout_seconds":200}}"#) }
    }
}
