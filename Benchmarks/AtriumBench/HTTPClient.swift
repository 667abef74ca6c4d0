#if canImport(Glibc)
import Glibc
#endif
import AtriumJSON
import RTC

/// Why a request to the server failed: no connection, a malformed answer, or a Janus error.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A blocking HTTP/1.1 client for the Janus HTTP transport on this machine: one connection per
/// request (`Connection: close`), bodies framed by Content-Length or chunked encoding. Enough for
/// JSON requests and long polls; nothing else.
struct HTTPClient {
    let host: String
    let port: UInt16
    let basePath: String

    /// Parses `http://host:port/path` (the path without a trailing slash).
    init(url: String) throws(BenchError) {
        guard url.hasPrefix("http://") else { throw BenchError("only http:// URLs: \(url)") }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
        if let colon = authority.lastIndex(of: ":"), let p = UInt16(authority[authority.index(after: colon)...]) {
            host = String(authority[..<colon])
            port = p
        } else {
            host = String(authority)
            port = 80
        }
    }

    /// POSTs `body` to `basePath + path` and returns the JSON answer.
    func post(_ path: String, _ body: JSON) throws(BenchError) -> JSON {
        try exchange(method: "POST", path: path, body: body.serializedBytes, timeoutSeconds: 30)
    }

    /// GETs `basePath + path` (a long poll waits up to `timeoutSeconds`).
    func get(_ path: String, timeoutSeconds: Int = 60) throws(BenchError) -> JSON {
        try exchange(method: "GET", path: path, body: nil, timeoutSeconds: timeoutSeconds)
    }

    private func exchange(method: String, path: String, body: [UInt8]?, timeoutSeconds: Int) throws(BenchError) -> JSON {
        guard let address = TransportAddress(host, Int(port)) else { throw BenchError("bad address \(host):\(port)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = SocketAddress.with(address) { connect(fd, $0, $1) }
        guard connected == 0 else { throw BenchError("connect \(address): \(String(cString: strerror(errno)))") }
        var request = "\(method) \(joined(path)) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        request += "\r\n"
        var bytes = Array(request.utf8)
        if let body { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw BenchError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw BenchError("\(method) \(path): \(String(cString: strerror(errno)))") }
            response += chunk[0..<n]
        }
        return try Self.parse(response, what: "\(method) \(path)")
    }

    /// `basePath/path`: the paths used are "", "<session>", "<session>/<handle>", "<session>?…".
    private func joined(_ path: String) -> String {
        path.isEmpty ? (basePath.isEmpty ? "/" : basePath) : basePath + "/" + path
    }

    /// The JSON body of a complete HTTP response.
    static func parse(_ response: [UInt8], what: String) throws(BenchError) -> JSON {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = response.indices.dropLast(3).first(where: { response[$0..<$0 + 4].elementsEqual(separator) }) else {
            throw BenchError("\(what): no complete HTTP answer")
        }
        let head = String(decoding: response[..<end], as: UTF8.self).lowercased()
        let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        var body = Array(response[(end + 4)...])
        if head.contains("transfer-encoding: chunked") { body = dechunk(body) }
        guard status == 200 else { throw BenchError("\(what): HTTP \(status) \(String(decoding: body.prefix(200), as: UTF8.self))") }
        do {
            return try JSON.parse(bytes: body)
        } catch {
            throw BenchError("\(what): \(error)")
        }
    }

    private static func dechunk(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < body.count {
            guard let lineEnd = body[i...].firstIndex(of: 13) else { break }
            let size = Int(String(decoding: body[i..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
            if size == 0 { break }
            let start = lineEnd + 2
            out += body[start..<min(start + size, body.count)]
            i = start + size + 2
        }
        return out
    }
}
