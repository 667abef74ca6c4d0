#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address, kept as host-order integers: `.v4` holds the 32-bit address and `.v6`
/// its high and low 64 bits, so `.v4(0x7F00_0001)` is 127.0.0.1 and comparisons and masks are plain
/// arithmetic. `bytes` and `init?(bytes:)` convert to and from network order.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// Parses dotted-quad or RFC 4291 text. The corresponding C function is `inet_pton`.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        self.init(bytes: bytes)
    }

    /// From 4 or 16 network-order bytes.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let hi = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(hi, lo)
        default:
            return nil
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let a): return (0..<4).map { UInt8((a >> (24 - 8 * $0)) & 0xFF) }
        case .v6(let hi, let lo):
            return (0..<8).map { UInt8((hi >> (56 - 8 * UInt64($0))) & 0xFF) } + (0..<8).map { UInt8((lo >> (56 - 8 * UInt64($0))) & 0xFF) }
        }
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    /// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it stands for; any
    /// other address as it is.
    public var unmapped: IPAddress {
        if case .v6(0, let lo) = self, lo >> 32 == 0xFFFF { return .v4(UInt32(truncatingIfNeeded: lo)) }
        return self
    }

    /// Addresses a host candidate may name: not unspecified, loopback, IPv4-mapped or IPv6
    /// link-local (which needs a zone no candidate carries).
    public var isRoutableHostAddress: Bool {
        switch self {
        case .v4(let a): return a != 0 && a >> 24 != 127
        case .v6(let hi, let lo):
            if hi == 0 && (lo == 0 || lo == 1 || lo >> 32 == 0xFFFF) { return false }
            return hi >> 54 != 0x3FA  // fe80::/10
        }
    }

    /// Text form. The corresponding C function is `inet_ntop`.
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let b = bytes
        let ok = b.withUnsafeBytes { raw in
            inet_ntop(isIPv4 ? AF_INET : AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An IP address and port: one end of a UDP or TCP flow.
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    public init?(_ host: String, _ port: Int) {
        guard let ip = IPAddress(host), (0...65535).contains(port) else { return nil }
        self.init(ip: ip, port: UInt16(port))
    }

    public var description: String { ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)" }
}
