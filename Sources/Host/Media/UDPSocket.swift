import RTC
#if canImport(Glibc)
import Glibc
#endif

/// Why the media socket could not be opened, for the start-up message.
struct MediaSocketError: Error, CustomStringConvertible {
    var description: String
}

/// A non-blocking IPv4 UDP socket: the one port every peer's ICE, DTLS, SRTP and SRTCP share.
/// The corresponding C calls are socket, bind, recvfrom and sendto.
final class UDPSocket {
    let fd: Int32
    let port: UInt16

    init(bind address: String, port: Int) throws(MediaSocketError) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MediaSocketError(description: "socket: \(String(cString: strerror(errno)))") }
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, address, &sin.sin_addr)
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MediaSocketError(description: "cannot bind UDP \(address):\(port) (media.udp_port): \(reason)")
        }
        self.fd = fd
        self.port = localPort(of: fd)
    }

    deinit { close(fd) }

    /// Reads one datagram into `buffer`; nil when nothing is waiting.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> (length: Int, from: TransportAddress)? {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, buffer.baseAddress, buffer.count, 0, $0, &length) }
        }
        guard n >= 0 else { return nil }
        let address = TransportAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
        return (n, address)
    }

    /// Sends one datagram; false when the kernel refused it (buffer full, unreachable).
    @discardableResult
    func send(_ bytes: UnsafeRawBufferPointer, to address: TransportAddress) -> Bool {
        guard case .v4(let ip) = address.ip else { return false }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        sin.sin_addr.s_addr = ip.bigEndian
        let n = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return n == bytes.count
    }
}

/// The machine's IPv4 addresses that are up and not loopback. The corresponding C call is getifaddrs.
func interfaceAddresses() -> [IPAddress] {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return [] }
    defer { freeifaddrs(list) }
    var out: [IPAddress] = []
    var cursor = list
    while let entry = cursor {
        defer { cursor = entry.pointee.ifa_next }
        let flags = Int32(bitPattern: entry.pointee.ifa_flags)
        guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
            flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0
        else { continue }
        let ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
        let value = IPAddress.v4(ip)
        if !out.contains(value) { out.append(value) }
    }
    return out
}
