import Foundation
import NIOCore
import NIOHTTP1

/// Who a request comes from when reverse proxies stand in front of the host. A connection from an
/// address in `trusted_proxies` carries many clients; each request names its client in
/// X-Forwarded-For, and the per-address limits and `private_from` must see that client, not the
/// proxy. From anyone else the header is ignored: a client could write any address into it.
struct ProxyTrust: Sendable {
    let proxies: [AddressPrefix]
    /// X-Forwarded-For entries read at most, from the right: a chain longer than any real one
    /// bounds the work a request can cause.
    static let maxHops = 16

    func isTrusted(_ peer: SocketAddress?) -> Bool { !proxies.isEmpty && proxies.admits(peer) }

    /// The request's client: the right-most X-Forwarded-For address that is not a trusted proxy
    /// (the one the nearest untrusted hop connected from), when the peer is a trusted proxy;
    /// otherwise the peer. A malformed entry ends the walk at the proxy itself, since nothing left
    /// of it can be believed.
    func client(peer: SocketAddress?, headers: HTTPHeaders) -> SocketAddress? {
        guard isTrusted(peer) else { return peer }
        let hops = headers[canonicalForm: "x-forwarded-for"].flatMap { $0.split(separator: ",") }
        var current = peer
        for hop in hops.reversed().prefix(Self.maxHops) {
            let text = hop.trimmingCharacters(in: .whitespaces)
            guard let address = try? SocketAddress(ipAddress: Self.bare(text), port: 0) else { return peer }
            current = address
            if !proxies.admits(address) { return address }
        }
        return current
    }

    /// An address without brackets: "[2001:db8::1]" is written that way by some proxies.
    private static func bare(_ text: String) -> String {
        text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
    }
}
