import Foundation
import Logging
import RTC
import Testing
@testable import Host

/// TLS on the host's listeners: the configuration keys, the certificate a listener holds and how
/// it is reloaded, and an in-process host answering the Janus API over TLS on a real socket.
@Suite struct TLSListenerTests {
    static let logger = Logger(label: "tls-test")

    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atrium-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ made: SelfSignedCertificate, certificate: String, key: String) throws {
        try Data(made.keyPEM).write(to: URL(fileURLWithPath: key))
        try Data(made.certificatePEM).write(to: URL(fileURLWithPath: certificate))
    }

    @Test func configurationKeys() throws {
        let c = try HostConfig.parse(bytes: Array(#"{"http":{"certificate_file":"/c.pem","key_file":"/k.pem"},"websocket":{"self_signed":true}}"#.utf8))
        #expect(c.http.tls == HostConfig.TLS(certificateFile: "/c.pem", keyFile: "/k.pem", selfSigned: false) && c.http.tls.enabled)
        #expect(c.webSocket.tls.selfSigned && c.webSocket.tls.enabled && c.webSocket.tls.certificateFile == nil)
        #expect(try !HostConfig.parse(bytes: Array("{}".utf8)).http.tls.enabled)
        for (text, message) in [
            (#"{"http":{"certificate_file":"/c.pem"}}"#, "http: certificate_file and key_file go together: give both or neither"),
            (#"{"websocket":{"key_file":"/k.pem"}}"#, "websocket: certificate_file and key_file go together: give both or neither"),
            (#"{"http":{"certificate_file":"","key_file":"/k.pem"}}"#, "http: certificate_file and key_file must be file paths"),
            (#"{"http":{"self_signed":"yes"}}"#, "http.self_signed: expected true or false, found a string"),
        ] {
            do {
                _ = try HostConfig.parse(bytes: Array(text.utf8))
                Issue.record("accepted: \(text)")
            } catch {
                #expect("\(error.location): \(error.message)" == message)
            }
        }
    }

    @Test func aFailedReloadKeepsTheCertificateAndAChangeIsPickedUp() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (certificate, key) = (dir + "/fullchain.pem", dir + "/privkey.pem")
        let first = try SelfSignedCertificate.generate(addresses: ["10.0.0.1"], hostNames: [])
        let second = try SelfSignedCertificate.generate(addresses: ["10.0.0.1"], hostNames: [])
        try Self.write(first, certificate: certificate, key: key)
        let settings = HostConfig.TLS(certificateFile: certificate, keyFile: key)
        let listener = try ListenerCertificate(settings: settings, listener: "http", addresses: [], hostNames: [], logger: Self.logger)
        let firstPrint = listener.context.fingerprint
        #expect(firstPrint == (try TLSServerContext.load(certificatePEM: first.certificatePEM, keyPEM: first.keyPEM)).fingerprint)

        listener.reloadIfChanged(logger: Self.logger, listener: "http")
        #expect(listener.context.fingerprint == firstPrint, "nothing changed, nothing reloaded")

        // Half a renewal: the new certificate with the old key.
        try Data(second.certificatePEM).write(to: URL(fileURLWithPath: certificate))
        #expect(listener.reload(logger: Self.logger, listener: "http", why: "test") == "\(certificate) with \(key): the key does not belong to the certificate")
        #expect(listener.context.fingerprint == firstPrint)
        // The rest of it: noticed by the files' change alone.
        try Data(second.keyPEM).write(to: URL(fileURLWithPath: key))
        listener.reloadIfChanged(logger: Self.logger, listener: "http")
        #expect(listener.context.fingerprint == (try TLSServerContext.load(certificatePEM: second.certificatePEM, keyPEM: second.keyPEM)).fingerprint)

        try FileManager.default.removeItem(atPath: key)
        #expect(listener.reload(logger: Self.logger, listener: "http", why: "test") == "\(key): cannot be read (missing or not permitted)")
        #expect(listener.context.fingerprint != firstPrint)
    }

    @Test func aSelfSignedCertificateIsKeptInItsFilesAndRenewedNearItsEnd() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (certificate, key) = (dir + "/self.pem", dir + "/self.key")
        let settings = HostConfig.TLS(certificateFile: certificate, keyFile: key, selfSigned: true)
        func make() throws -> ListenerCertificate {
            try ListenerCertificate(settings: settings, listener: "http", addresses: ["192.0.2.7"], hostNames: ["localhost"], logger: Self.logger)
        }
        let made = try make()
        let keyMode = try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        #expect(try make().context.fingerprint == made.context.fingerprint, "a restart keeps it")

        try Self.write(try SelfSignedCertificate.generate(addresses: ["192.0.2.7"], hostNames: [], days: 10), certificate: certificate, key: key)
        let ending = try TLSServerContext.load(certificateFile: certificate, keyFile: key)
        let renewed = try make()
        #expect(renewed.context.fingerprint != ending.fingerprint)
        #expect(renewed.context.notAfter.timeIntervalSinceNow > 300 * 86_400)
    }

    @Test func unreadableCertificateStopsTheStartWithTheReason() throws {
        let text = #"{"http":{"bind":"127.0.0.1","port":0,"certificate_file":"/nonexistent/fullchain.pem","key_file":"/nonexistent/privkey.pem"},"websocket":{"enabled":false},"media":{"udp_port":0}}"#
        #expect(throws: TLSSetupError(listener: "http", reason: "/nonexistent/fullchain.pem: cannot be read (missing or not permitted)")) {
            try AtriumHost(config: HostConfig.parse(bytes: Array(text.utf8)), logger: Self.logger)
        }
    }

    /// HTTPS on the HTTP port (self-signed) with a plain WebSocket port: the Janus API answers over
    /// TLS, two requests on one connection, and the web app is told to long-poll, since an https
    /// page may not open a ws:// socket.
    @Test func janusAPIOverTLS() async throws {
        let text = #"{"http":{"bind":"127.0.0.1","port":0,"self_signed":true},"websocket":{"bind":"127.0.0.1","port":0},"media":{"udp_port":0}}"#
        let host = try AtriumHost(config: HostConfig.parse(bytes: Array(text.utf8)), logger: Self.logger)
        try await host.start()
        do {
            try checkJanusAPIOverTLS(host)
        } catch {
            await host.shutdown()
            throw error
        }
        await host.shutdown()
    }

    func checkJanusAPIOverTLS(_ host: AtriumHost) throws {
        let port = try #require(host.httpPort)
        #expect(host.httpCertificate != nil && host.webSocketCertificate == nil)
        #expect(host.meetingURLs().allSatisfy { $0.hasPrefix("https://") && $0.hasSuffix(":\(port)/") })

        let client = try TLSClientSocket(port: port)
        let info = try client.request("GET /janus/info HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(info.hasPrefix("HTTP/1.1 200 OK") && info.contains("server_info"), "\(info)")
        let config = try client.request("GET /web-config.json HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(config.contains(#""websocket_port":null"#), "\(config)")
        #expect(client.fingerprint == host.httpCertificate?.context.fingerprint)
    }
}

/// A blocking TCP connection to 127.0.0.1:`port` whose reads give up after 5 s.
func connectToLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw TLSError("connect failed")
    }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    return fd
}

/// A blocking TLS client over a loopback TCP socket, for one test.
final class TLSClientSocket {
    let fd: Int32
    let tls: TLSConnection

    init(port: Int) throws {
        fd = try connectToLoopback(port: port)
        tls = try TLSConnection.client()
        while tls.state == .handshaking {
            flush()
            _ = try receive()
        }
        guard tls.state == .open else { throw TLSError("handshake: \(tls.state)") }
    }

    deinit { close(fd) }

    var fingerprint: String? { tls.peerFingerprint }

    func flush() {
        let out = tls.takeOutput()
        if !out.isEmpty { _ = out.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
    }

    func receive() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw TLSError("connection closed or timed out") }
        return buffer.prefix(n).withUnsafeBytes { tls.receive($0) }.flatMap { $0 }
    }

    /// Sends one request and reads until the answer's body (Content-Length) is complete.
    func request(_ text: String) throws -> String {
        _ = Array(text.utf8).withUnsafeBytes { tls.send($0) }
        flush()
        var answer: [UInt8] = []
        while true {
            answer += try receive()
            flush()
            let s = String(decoding: answer, as: UTF8.self)
            guard let end = s.range(of: "\r\n\r\n") else { continue }
            let head = s[..<end.lowerBound].lowercased()
            guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
            else { return s }
            if s.utf8.count - s.utf8.distance(from: s.startIndex, to: end.upperBound) >= length { return s }
        }
    }
}

/// http.redirect_port: a plain port that sends browsers to the HTTPS one, and nothing else.
@Suite struct HTTPSRedirectTests {
    @Test func hostNamesThatMayGoInALocation() {
        #expect(HTTPSRedirectHandler.hostName("meet.example.org:80") == "meet.example.org")
        #expect(HTTPSRedirectHandler.hostName("10.0.0.5") == "10.0.0.5")
        #expect(HTTPSRedirectHandler.hostName("[2001:db8::5]:80") == "[2001:db8::5]")
        for bad in [nil, "", "a b", "evil.org/x", "[2001:db8::5", "[]", "a\"b", "ex@mple.org", String(repeating: "a", count: 300)] {
            #expect(HTTPSRedirectHandler.hostName(bad) == nil, "\(String(describing: bad))")
        }
    }

    @Test func configurationNeedsTLS() throws {
        #expect(throws: ConfigError.self) { try HostConfig.parse(bytes: Array(#"{"http":{"redirect_port":80}}"#.utf8)) }
        #expect(throws: ConfigError.self) {
            try HostConfig.parse(bytes: Array(#"{"http":{"self_signed":true,"port":8443,"redirect_port":8443}}"#.utf8))
        }
        #expect(try HostConfig.parse(bytes: Array(#"{"http":{"self_signed":true,"redirect_port":80}}"#.utf8)).http.redirectPort == 80)
    }

    @Test func everyRequestIsSentToTheSamePathOverHTTPS() async throws {
        let text = #"{"http":{"bind":"127.0.0.1","port":0,"self_signed":true,"redirect_port":0},"websocket":{"enabled":false},"media":{"udp_port":0}}"#
        let host = try AtriumHost(config: HostConfig.parse(bytes: Array(text.utf8)), logger: Logger(label: "redirect-test"))
        try await host.start()
        do {
            let port = try #require(host.redirectPort)
            let https = try #require(host.httpPort)
            let get = try plainExchange(port: port, "GET /r/abc?x=1 HTTP/1.1\r\nHost: meet.example.org\r\n\r\n")
            #expect(get.hasPrefix("HTTP/1.1 301 Moved Permanently"), "\(get)")
            #expect(get.contains("location: https://meet.example.org:\(https)/r/abc?x=1\r\n") || get.contains("Location: https://meet.example.org:\(https)/r/abc?x=1\r\n"), "\(get)")
            let post = try plainExchange(port: port, "POST /janus HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 2\r\n\r\n{}")
            #expect(post.hasPrefix("HTTP/1.1 308 Permanent Redirect") && post.contains("https://[::1]:\(https)/janus"), "\(post)")
            let noHost = try plainExchange(port: port, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
            #expect(noHost.hasPrefix("HTTP/1.1 400"), "\(noHost)")
        } catch {
            await host.shutdown()
            throw error
        }
        await host.shutdown()
    }

    /// Sends `request` on a new loopback connection and reads until the server closes it.
    func plainExchange(port: Int, _ request: String) throws -> String {
        let fd = try connectToLoopback(port: port)
        defer { close(fd) }
        _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += buffer.prefix(n)
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
