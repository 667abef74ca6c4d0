import NIOCore
import NIOHTTP1

/// The plain-HTTP port that sends browsers to the HTTPS one (`http.redirect_port`): every request
/// gets a permanent redirect to the same path on `https://<its host>:<https port>`, and nothing
/// else. People type a bare address; without this they would meet a connection closed on them.
final class HTTPSRedirectHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let httpsPort: Int
    private var head: HTTPRequestHead?

    init(httpsPort: Int) {
        self.httpsPort = httpsPort
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, to: head)
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        let status: HTTPResponseStatus
        if let host = Self.hostName(head.headers.first(name: "host")), head.uri.hasPrefix("/"),
            head.uri.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            // 308 keeps the method and body; browsers treat it as 301 for a GET.
            status = head.method == .GET || head.method == .HEAD ? .movedPermanently : .permanentRedirect
            headers.add(name: "Location", value: "https://\(host):\(httpsPort)\(head.uri)")
        } else {
            status = .badRequest
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The host of a Host header without its port: a name or IPv4 address of letters, digits, dots
    /// and dashes, or a bracketed IPv6 address. Anything else (nothing a browser sends) is refused,
    /// so no header value reaches the Location header unchecked.
    static func hostName(_ header: String?) -> String? {
        guard let header, !header.isEmpty, header.utf8.count <= 255 else { return nil }
        if header.hasPrefix("[") {
            guard let end = header.firstIndex(of: "]") else { return nil }
            let inside = header[header.index(after: header.startIndex)..<end]
            guard !inside.isEmpty, inside.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
            return "[\(inside)]"
        }
        let name = header.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) else { return nil }
        return String(name)
    }
}
