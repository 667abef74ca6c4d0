import NIOCore

/// The key under which the host counts what one client takes: an IPv4 address, or the /64 of an
/// IPv6 address (what one subscriber is given, so a key per address would bound nothing). An
/// IPv4-mapped IPv6 address counts as its IPv4 address. "" when there is no address (in-process
/// requests, Unix sockets).
public struct ClientAddress: Hashable, Sendable, CustomStringConvertible {
    public let key: String

    public init(key: String) { self.key = key }

    public static let unknown = ClientAddress(key: "")

    public init(_ address: SocketAddress?) {
        switch address {
        case .v4(let a):
            key = Self.dotted(withUnsafeBytes(of: a.address.sin_addr.s_addr) { Array($0) })
        case .v6(let a):
            let bytes = withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
            guard bytes.count == 16 else { key = ""; return }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                key = Self.dotted(Array(bytes[12..<16]))
            } else {
                let groups = stride(from: 0, to: 8, by: 2).map { i in
                    String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16)
                }
                key = groups.joined(separator: ":") + "::/64"
            }
        default:
            key = ""
        }
    }

    private static func dotted(_ bytes: [UInt8]) -> String {
        bytes.map(String.init).joined(separator: ".")
    }

    public var isKnown: Bool { !key.isEmpty }
    public var description: String { key.isEmpty ? "(unknown)" : key }
}
