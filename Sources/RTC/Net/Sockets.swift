#if canImport(Glibc)
import Glibc
#endif

/// A socket call that failed, for the start-up message.
public struct SocketError: Error, CustomStringConvertible {
    public var description: String
    /// The errno of the call that failed (0 when the error is not a call's).
    public var code: Int32 = 0
    /// `what` failed with the current errno.
    public init(_ what: String) {
        code = errno
        description = "\(what): \(String(cString: strerror(code)))"
    }
    public init(message: String, code: Int32 = 0) {
        description = message
        self.code = code
    }
}

/// IPv4 and IPv6 socket addresses, to and from `TransportAddress`. The corresponding C types are
/// sockaddr_in, sockaddr_in6 and sockaddr_storage.
public enum SocketAddress {
    public static func with<R>(_ address: TransportAddress, mapIPv4: Bool = false, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var storage = sockaddr_storage()
        let length = write(address, into: &storage, mapIPv4: mapIPv4)
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }

    /// Writes `address` as a sockaddr_in or sockaddr_in6; returns its length. No closure, so
    /// the send path can fill a batch's address slot directly. `mapIPv4` writes an IPv4 address
    /// as IPv4-mapped IPv6 (::ffff:a.b.c.d), the form a dual-stack IPv6 socket sends to.
    public static func write(_ address: TransportAddress, into storage: UnsafeMutablePointer<sockaddr_storage>, mapIPv4: Bool = false) -> socklen_t {
        switch address.ip {
        case .v4(let ip) where mapIPv4:
            return write(TransportAddress(ip: .v6(0, 0xFFFF_0000_0000 | UInt64(ip)), port: address.port), into: storage)
        case .v4(let ip):
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                sin.pointee = sockaddr_in()
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = address.port.bigEndian
                sin.pointee.sin_addr.s_addr = ip.bigEndian
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
        case .v6(let hi, let lo):
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                sin6.pointee = sockaddr_in6()
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = address.port.bigEndian
                withUnsafeMutableBytes(of: &sin6.pointee.sin6_addr) { raw in
                    raw.storeBytes(of: hi.bigEndian, toByteOffset: 0, as: UInt64.self)
                    raw.storeBytes(of: lo.bigEndian, toByteOffset: 8, as: UInt64.self)
                }
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        }
    }

    public static func read(_ storage: UnsafePointer<sockaddr_storage>) -> TransportAddress? {
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            return storage.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                TransportAddress(ip: .v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)), port: UInt16(bigEndian: $0.pointee.sin_port))
            }
        case AF_INET6:
            return storage.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                let bytes = withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
                // An IPv4 peer of a dual-stack socket arrives IPv4-mapped: it is that IPv4
                // address, the one its candidates and STUN name.
                return IPAddress(bytes: bytes).map { TransportAddress(ip: $0.unmapped, port: UInt16(bigEndian: p.pointee.sin6_port)) }
            }
        default:
            return nil
        }
    }
}

/// Opens a non-blocking socket of `type` bound to `address` (port 0: the kernel picks).
/// IPv6 sockets are IPv6-only, so "::" and "0.0.0.0" can both be bound on one port, unless
/// `dualStack`: then an IPv6 socket takes IPv4 too (its peers IPv4-mapped).
public func boundSocket(_ address: TransportAddress, type: Int32, reuseAddress: Bool = false, dualStack: Bool = false) throws(SocketError) -> Int32 {
    let family = address.ip.isIPv4 ? AF_INET : AF_INET6
    let fd = socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SocketError("socket") }
    var one: Int32 = 1
    var v6Only: Int32 = dualStack ? 0 : 1
    if family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6Only, socklen_t(MemoryLayout<Int32>.size)) }
    if reuseAddress { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) }
    let bound = SocketAddress.with(address) { Glibc.bind(fd, $0, $1) }
    guard bound == 0 else {
        let e = SocketError("bind \(address)")
        close(fd)
        throw e
    }
    return fd
}

public func udpSocket(_ address: TransportAddress, bufferBytes: Int32 = 1 << 20, dualStack: Bool = false) throws(SocketError) -> Int32 {
    let fd = try boundSocket(address, type: Int32(SOCK_DGRAM.rawValue), dualStack: dualStack)
    var size = bufferBytes
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

public func tcpListener(_ address: TransportAddress, backlog: Int32 = 256, dualStack: Bool = false) throws(SocketError) -> Int32 {
    let fd = try boundSocket(address, type: Int32(SOCK_STREAM.rawValue), reuseAddress: true, dualStack: dualStack)
    guard listen(fd, backlog) == 0 else {
        let e = SocketError("listen \(address)")
        close(fd)
        throw e
    }
    return fd
}

/// The address a socket is bound to.
public func localAddress(_ fd: Int32) -> TransportAddress? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    guard ok == 0 else { return nil }
    return withUnsafePointer(to: &storage) { SocketAddress.read($0) }
}

/// One datagram into `buffer`; nil when none waits.
public func receiveDatagram(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> (Int, TransportAddress)? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let n = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
    }
    guard n >= 0, let from = withUnsafePointer(to: &storage, { SocketAddress.read($0) }) else { return nil }
    return (n, from)
}

@discardableResult
public func sendDatagram(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, to address: TransportAddress) -> Bool {
    let n = SocketAddress.with(address) { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, $1) }
    return n == bytes.count
}

/// One waiting connection, non-blocking, with its peer's address.
public func acceptConnection(_ listener: Int32) -> (Int32, TransportAddress)? {
    var storage = sockaddr_storage()
    var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let fd = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) } }
    guard fd >= 0 else { return nil }
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    guard let remote = withUnsafePointer(to: &storage, { SocketAddress.read($0) }) else {
        close(fd)
        return nil
    }
    return (fd, remote)
}

/// Every address of the machine's interfaces that are up, loopback excepted. The corresponding C
/// call is getifaddrs.
public func machineAddresses() -> [IPAddress] {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return [] }
    defer { freeifaddrs(list) }
    var out: [IPAddress] = []
    var cursor = list
    while let entry = cursor {
        defer { cursor = entry.pointee.ifa_next }
        let flags = Int32(bitPattern: entry.pointee.ifa_flags)
        guard let address = entry.pointee.ifa_addr, flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0 else { continue }
        let family = Int32(address.pointee.sa_family)
        guard family == AF_INET || family == AF_INET6 else { continue }
        var storage = sockaddr_storage()
        let size = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size)) }
        if let ip = withUnsafePointer(to: &storage, { SocketAddress.read($0) })?.ip, !out.contains(ip) { out.append(ip) }
    }
    return out
}
