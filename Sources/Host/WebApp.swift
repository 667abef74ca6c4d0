import AtriumJSON
import Foundation
import Synchronization

/// The meeting web app as the HTTP port serves it: static files from one folder (`http.web_root`),
/// `/` → index.html, `/r/<room>` and `/s/<stream>` (the watch page: the same page, which reads
/// the path) → room.html, and `/web-config.json`, which tells the pages where
/// the Janus API is (the WebSocket port is only known once it is bound).
final class WebApp: Sendable {
    /// The folder, absolute and with symbolic links resolved, so containment checks compare real paths.
    let root: String
    /// The Janus API's HTTP path, for `/web-config.json`.
    let janusPath: String
    private let webSocketPort = Mutex<Int?>(nil)

    /// `http.websocket_path`: the Janus WebSocket API on the page's own host and port.
    let webSocketPath: String?

    init(root: String, janusPath: String, webSocketPath: String? = nil) {
        self.webSocketPath = webSocketPath
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = URL(fileURLWithPath: absolute).resolvingSymlinksInPath().standardizedFileURL.path
        self.janusPath = janusPath
    }

    func setWebSocketPort(_ port: Int?) { webSocketPort.withLock { $0 = port } }

    /// What `/web-config.json` answers: the pages reach the Janus API at the same host.
    var pageConfig: JSON {
        let port = webSocketPort.withLock { $0 }
        return ["janus_path": .string(janusPath), "websocket_port": port.map { JSON($0) } ?? .null,
                "websocket_path": webSocketPath.map { .string($0) } ?? .null]
    }

    /// The URL path the pages fetch their configuration from; answered by the host, never a file.
    static let configPath = "/web-config.json"

    /// The file (relative to the root) that answers a URL path, or nil when none may:
    /// `/` is index.html, `/r/<room>` and `/s/<stream>` are room.html for an id of letters, digits,
    /// `-` and `_` (nothing else under `/r/` or `/s/`);
    /// any other path is percent-decoded (a malformed escape, an encoded `/`, NUL or backslash is
    /// refused) and must be made of plain names: no empty, `.` or `..` segment and no name starting
    /// with a dot, so nothing outside the root (and no hidden file) can be named.
    static func relativeFile(forURLPath path: String) -> String? {
        if path == "/" { return "index.html" }
        guard path.hasPrefix("/") else { return nil }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if segments[0] == "r" || segments[0] == "s" {
            return segments.count == 2 && isRoomID(segments[1]) ? "room.html" : nil
        }
        var names: [String] = []
        for segment in segments {
            guard let name = percentDecoded(segment), !name.isEmpty, !name.hasPrefix("."),
                  !name.contains("/"), !name.contains("\\"), !name.utf8.contains(0) else { return nil }
            names.append(name)
        }
        return names.joined(separator: "/")
    }

    static func isRoomID(_ s: Substring) -> Bool {
        !s.isEmpty && s.utf8.count <= 128 && s.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
        }
    }

    /// Strict percent-decoding of one path segment: nil for a malformed escape or bytes that are
    /// not UTF-8 (no `+` → space, which is a query convention, not a path one).
    static func percentDecoded(_ segment: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(segment.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else {
                out.append(b)
                continue
            }
            guard bytes.count >= 2, let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            bytes = bytes.dropFirst(2)
        }
        return String(validating: out, as: UTF8.self)
    }

    /// The Content-Type of the file types the app is made of; other files are not served.
    static func contentType(of file: String) -> String? {
        guard let dot = file.lastIndex(of: "."), !file[dot...].contains("/") else { return nil }
        switch file[file.index(after: dot)...].lowercased() {
        case "html": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "json": return "application/json"
        case "webmanifest": return "application/manifest+json"
        case "txt": return "text/plain; charset=utf-8"
        default: return nil
        }
    }

    /// A file ready to send: its bytes, type and validator.
    struct File {
        var bytes: [UInt8]
        var contentType: String
        /// Size and modification time: changes whenever the file does, without hashing it.
        var etag: String
    }

    /// Reads the file for a URL path, or nil (404) when the path maps to nothing, the type is not
    /// one the app uses, the file is missing or not a regular file, or its real path (links
    /// resolved) leaves the root. The files are small, so they are read whole on the calling loop.
    func file(forURLPath path: String) -> File? {
        guard let relative = Self.relativeFile(forURLPath: path), let type = Self.contentType(of: relative) else { return nil }
        let real = URL(fileURLWithPath: root + "/" + relative).resolvingSymlinksInPath().standardizedFileURL.path
        guard real.hasPrefix(root + "/") else { return nil }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: real),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let data = FileManager.default.contents(atPath: real) else { return nil }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let etag = "\"\(String(data.count, radix: 16))-\(String(UInt64(modified * 1000), radix: 16))\""
        return File(bytes: Array(data), contentType: type, etag: etag)
    }
}

extension AtriumHost {
    /// Where the web app's files are: `ATRIUM_WEB_ROOT`, then `http.web_root` (a relative path is
    /// relative to the configuration file's folder), then `web` in the working directory.
    public static func webRoot(for config: HostConfig) -> String {
        if let env = ProcessInfo.processInfo.environment["ATRIUM_WEB_ROOT"], !env.isEmpty { return env }
        if let dir = config.http.webRoot {
            if dir.hasPrefix("/") || config.source == "<memory>" { return dir }
            let base = (config.source as NSString).deletingLastPathComponent
            return ((base.isEmpty ? "." : base) as NSString).appendingPathComponent(dir)
        }
        return "web"
    }
}
