import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address prefix (`127.0.0.0/8`, `::1/128`, or a bare address for one host),
/// used to say which clients may read the host's private endpoints. An IPv4-mapped IPv6 peer
/// (`::ffff:127.0.0.1`, what a dual-stack socket reports) matches IPv4 prefixes.
public struct AddressPrefix: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]
    let length: Int

    /// Reads `address/length` or a bare address (the whole address); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let address = String(parts[0])
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            bytes = withUnsafeBytes(of: v4) { Array($0) }
        } else if inet_pton(AF_INET6, address, &v6) == 1 {
            bytes = withUnsafeBytes(of: v6) { Array($0) }
        } else {
            return nil
        }
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bytes.count * 8).contains(n) else { return nil }
            length = n
        } else {
            length = bytes.count * 8
        }
    }

    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, raw.baseAddress, &text, socklen_t(text.count))
        }
        let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(address)/\(length)"
    }

    /// Whether a peer's address falls inside the prefix.
    func contains(_ address: SocketAddress?) -> Bool {
        guard var peer = Self.addressBytes(address) else { return false }
        if peer.count == 16, bytes.count == 4, peer[0..<10].allSatisfy({ $0 == 0 }), peer[10] == 0xFF, peer[11] == 0xFF {
            peer = Array(peer[12..<16])
        }
        guard peer.count == bytes.count else { return false }
        var remaining = length
        for i in 0..<bytes.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            guard peer[i] & mask == bytes[i] & mask else { return false }
            remaining -= bits
        }
        return true
    }

    private static func addressBytes(_ address: SocketAddress?) -> [UInt8]? {
        switch address {
        case .v4(let a): return withUnsafeBytes(of: a.address.sin_addr) { Array($0) }
        case .v6(let a): return withUnsafeBytes(of: a.address.sin6_addr) { Array($0) }
        default: return nil
        }
    }
}

extension [AddressPrefix] {
    /// Whether any prefix of the list holds the peer's address.
    func admits(_ address: SocketAddress?) -> Bool {
        contains { $0.contains(address) }
    }
}
