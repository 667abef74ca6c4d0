public import RTC

extension IPAddress {
    /// The key under which one client's share is counted, as the host keys handles: an IPv4
    /// address itself; an IPv6 address by its /64, the block one subscriber is given (a key per
    /// address would bound nothing there); an IPv4-mapped IPv6 address as its IPv4 address.
    public var shareKey: String {
        switch self {
        case .v4:
            return description
        case .v6(let hi, let lo):
            if hi == 0, lo >> 32 == 0xFFFF { return IPAddress.v4(UInt32(truncatingIfNeeded: lo)).description }
            let groups = (0..<4).map { i in String(UInt16(truncatingIfNeeded: hi >> (48 - 16 * UInt64(i))), radix: 16) }
            return groups.joined(separator: ":") + "::/64"
        }
    }
}
