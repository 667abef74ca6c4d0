import AtriumJSON
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Testing
@testable import Host

/// The meeting web app's files on the HTTP port: which file a URL names, and that nothing outside
/// the folder can be named.
@Suite struct WebAppTests {
    @Test(arguments: [
        ("/", "index.html"),
        ("/r/k3m9x0ab", "room.html"),
        ("/r/Ab-_09", "room.html"),
        ("/s/k3m9x0ab7q", "room.html"),
        ("/js/atrium-client.js", "js/atrium-client.js"),
        ("/css/app.css", "css/app.css"),
        ("/icons/a%20b.svg", "icons/a b.svg"),
        ("/caf%C3%A9.png", "café.png"),
    ])
    func pathsMapToFilesUnderTheRoot(url: String, file: String) {
        #expect(WebApp.relativeFile(forURLPath: url) == file)
    }

    @Test(arguments: [
        "/..", "/../etc/passwd", "/js/../../secret", "/%2e%2e/etc/passwd", "/%2E%2E%2Fetc%2Fpasswd",
        "/js/%2F..%2F..%2Fx.js", "/a/./b.js", "/.git/config", "/.env", "/js//x.js", "/js/", "/x%", "/x%4",
        "/x%zz.js", "/x%00.js", "/a%5C..%5Cb.js", "/%C3.js", "/r/", "/r/a/b", "/r/a/room.html", "/r", "/r/a%2Fb", "/r/a.b", "/r/../x",
        "/s/", "/s/a/b", "/s", "/s/a.b", "/s/../x",
        "relative.js", "",
    ])
    func pathsThatCouldLeaveTheRootAreRefused(url: String) {
        #expect(WebApp.relativeFile(forURLPath: url) == nil)
    }

    @Test func contentTypes() {
        #expect(WebApp.contentType(of: "index.html") == "text/html; charset=utf-8")
        #expect(WebApp.contentType(of: "js/app.js") == "text/javascript; charset=utf-8")
        #expect(WebApp.contentType(of: "css/app.css") == "text/css; charset=utf-8")
        #expect(WebApp.contentType(of: "i.svg") == "image/svg+xml")
        #expect(WebApp.contentType(of: "i.PNG") == "image/png")
        #expect(WebApp.contentType(of: "favicon.ico") == "image/x-icon")
        #expect(WebApp.contentType(of: "a.json") == "application/json")
        #expect(WebApp.contentType(of: "notes.swp") == nil)
        #expect(WebApp.contentType(of: "Makefile") == nil)
        #expect(WebApp.contentType(of: "dir.js/file") == nil)
    }

    /// A scratch web root with a page, a script, a file of an unserved type, a folder, and links
    /// pointing inside and outside.
    static func scratchRoot() throws -> (root: String, outside: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("atrium-web-\(UUID().uuidString)").path
        let root = base + "/web"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/js/dir.js", withIntermediateDirectories: true)
        try Data("<!doctype html><title>home</title>".utf8).write(to: URL(fileURLWithPath: root + "/index.html"))
        try Data("<!doctype html><title>room</title>".utf8).write(to: URL(fileURLWithPath: root + "/room.html"))
        try Data("export const x = 1;\n".utf8).write(to: URL(fileURLWithPath: root + "/js/app.js"))
        try Data("secret".utf8).write(to: URL(fileURLWithPath: root + "/notes.swp"))
        try Data("outside".utf8).write(to: URL(fileURLWithPath: base + "/outside.js"))
        try fm.createSymbolicLink(atPath: root + "/escape.js", withDestinationPath: base + "/outside.js")
        try fm.createSymbolicLink(atPath: root + "/alias.js", withDestinationPath: root + "/js/app.js")
        return (root, base)
    }

    @Test func filesAreReadOnlyFromInsideTheRoot() throws {
        let (root, base) = try Self.scratchRoot()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let app = WebApp(root: root, janusPath: "/janus")
        #expect(app.file(forURLPath: "/").map { String(decoding: $0.bytes, as: UTF8.self) } == "<!doctype html><title>home</title>")
        #expect(app.file(forURLPath: "/r/abc")?.contentType == "text/html; charset=utf-8")
        let script = try #require(app.file(forURLPath: "/js/app.js"))
        #expect(script.contentType == "text/javascript; charset=utf-8" && script.etag.hasPrefix("\"14-"))
        #expect(app.file(forURLPath: "/alias.js") != nil, "a link to a file inside the root is served")
        #expect(app.file(forURLPath: "/escape.js") == nil, "a link out of the root is not")
        #expect(app.file(forURLPath: "/notes.swp") == nil, "a type the app does not use is not")
        #expect(app.file(forURLPath: "/js/dir.js") == nil, "a folder is not a file")
        #expect(app.file(forURLPath: "/missing.js") == nil)
        #expect(app.file(forURLPath: "/%2e%2e/outside.js") == nil)
    }

    @Test func webRootComesFromTheEnvironmentTheConfigOrTheWorkingDirectory() throws {
        var config = try HostConfig.parse(bytes: Array(#"{"http":{"web_root":"../web"}}"#.utf8), source: "/etc/atrium/config.json")
        if ProcessInfo.processInfo.environment["ATRIUM_WEB_ROOT"] == nil {
            #expect(AtriumHost.webRoot(for: config) == "/etc/atrium/../web")
            config.http.webRoot = "/srv/web"
            #expect(AtriumHost.webRoot(for: config) == "/srv/web")
            config.http.webRoot = nil
            #expect(AtriumHost.webRoot(for: config) == "web")
        }
        #expect(throws: ConfigError.self) { try HostConfig.parse(bytes: Array(#"{"http":{"web_root":""}}"#.utf8)) }
        #expect(throws: ConfigError.self) { try HostConfig.parse(bytes: Array(#"{"http":{"web_root":7}}"#.utf8)) }
    }

    /// Over a real socket: the pages, their headers, HEAD, revalidation, /web-config.json with the
    /// bound WebSocket port, and the Janus API and /health unchanged beside them.
    @Test func servedOnTheHTTPPort() async throws {
        let (root, base) = try Self.scratchRoot()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let text = #"{"http":{"bind":"127.0.0.1","port":0,"web_root":"\#(root)"},"websocket":{"bind":"127.0.0.1","port":0},"media":{"udp_port":0}}"#
        let host = try AtriumHost(config: HostConfig.parse(bytes: Array(text.utf8)), logger: Logger(label: "test"))
        try await host.start()
        do {
            try await checkServed(host: host)
        } catch {
            await host.shutdown()
            throw error
        }
        await host.shutdown()
    }

    func checkServed(host: AtriumHost) async throws {
        let port = try #require(host.httpPort)
        let session = URLSession(configuration: .ephemeral)
        func get(_ path: String, method: String = "GET", headers: [String: String] = [:]) async throws -> (String, HTTPURLResponse) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.httpMethod = method
            request.cachePolicy = .reloadIgnoringLocalAndRemoteCacheData
            for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
            let (data, response) = try await session.data(for: request)
            return (String(decoding: data, as: UTF8.self), response as! HTTPURLResponse)
        }

        let (home, homeResponse) = try await get("/")
        #expect(home.contains("home") && homeResponse.statusCode == 200)
        #expect(homeResponse.value(forHTTPHeaderField: "Content-Type") == "text/html; charset=utf-8")
        #expect(homeResponse.value(forHTTPHeaderField: "Cache-Control") == "no-cache")
        #expect(homeResponse.value(forHTTPHeaderField: "Content-Security-Policy")?.contains("script-src 'self'") == true)
        #expect(homeResponse.value(forHTTPHeaderField: "Referrer-Policy") == "no-referrer")
        let (room, _) = try await get("/r/q7w2e9")
        #expect(room.contains("room"))

        let (script, scriptResponse) = try await get("/js/app.js")
        #expect(script == "export const x = 1;\n")
        let etag = try #require(scriptResponse.value(forHTTPHeaderField: "ETag"))
        let (_, revalidated) = try await get("/js/app.js", headers: ["If-None-Match": etag])
        #expect(revalidated.statusCode == 304)
        let (headBody, head) = try await get("/js/app.js", method: "HEAD")
        #expect(head.statusCode == 200 && headBody.isEmpty && head.value(forHTTPHeaderField: "Content-Length") == "20")

        for missing in ["/missing.js", "/notes.swp", "/escape.js", "/%2e%2e/outside.js", "/r/"] {
            let (_, response) = try await get(missing)
            #expect(response.statusCode == 404, "\(missing)")
        }

        let (config, configResponse) = try await get("/web-config.json")
        #expect(configResponse.value(forHTTPHeaderField: "Content-Type") == "application/json")
        let json = try JSON.parse(bytes: Array(config.utf8))
        #expect(json["janus_path"] == "/janus")
        #expect(json["websocket_port"]?.intValue == Int64(try #require(host.webSocketPort)))

        let (info, _) = try await get("/janus/info")
        #expect(try JSON.parse(bytes: Array(info.utf8))["janus"] == "server_info")
        let (health, _) = try await get("/health")
        #expect(try JSON.parse(bytes: Array(health.utf8))["ok"] == true)
    }
}
