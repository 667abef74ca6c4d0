import RTC
#if canImport(Glibc)
import Glibc
#endif

/// The passive ICE-TCP port (RFC 6544): a non-blocking IPv4 listener on `media.tcp_port`. Peers
/// connect to it; every packet then travels as an RFC 4571 frame on that connection. The
/// corresponding C calls are socket, bind, listen and accept.
final class TCPListener {
    let fd: Int32
    let port: UInt16

    init(bind address: String, port: Int) throws(MediaSocketError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MediaSocketError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, address, &sin.sin_addr)
        let bound = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MediaSocketError(description: "cannot listen on TCP \(address):\(port) (media.tcp_port): \(reason)")
        }
        self.fd = fd
        self.port = localPort(of: fd)
    }

    deinit { close(fd) }

    /// One waiting connection, made non-blocking, with its peer's address; nil when none waits.
    func accept() -> (fd: Int32, remote: TransportAddress)? {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let client = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.accept(fd, $0, &length)
            }
        }
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return (client, TransportAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port)))
    }
}

/// One peer's ICE-TCP connection. It carries nothing until its first frame is a binding request
/// that names a ufrag the host issued and verifies; then it belongs to that PeerConnection.
/// Frames the kernel cannot take at once wait in `pending`, up to a bound past which media is
/// dropped (late media is worthless) rather than buffered.
final class TCPConnection {
    /// What waits to be written, at most: about a second of a 2 Mbit/s video.
    static let pendingLimit = 256 * 1024

    let fd: Int32
    let remote: TransportAddress
    let acceptedAt: UInt64
    var framer = StreamFramer()
    private(set) var pending: [UInt8] = []
    private var pendingStart = 0
    weak var peer: PeerConnection?
    private(set) var isClosed = false

    init(fd: Int32, remote: TransportAddress, now: UInt64) {
        self.fd = fd
        self.remote = remote
        acceptedAt = now
    }

    deinit { closeSocket() }

    var path: IcePath { .tcp(remote) }
    var wantsWrite: Bool { pending.count > pendingStart }

    func closeSocket() {
        guard !isClosed else { return }
        isClosed = true
        close(fd)
    }

    enum ReadResult { case more, drained, closed }

    /// One read into the framer: `more` if the read filled `scratch` (more may wait), `drained`
    /// when the socket is empty, `closed` when the peer closed or the read failed.
    func read(into scratch: UnsafeMutableRawBufferPointer) -> ReadResult {
        let n = Glibc.read(fd, scratch.baseAddress, scratch.count)
        if n > 0 {
            framer.append(UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
            return n == scratch.count ? .more : .drained
        }
        if n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return .drained }
        return .closed
    }

    /// Sends one packet as a frame. False if it was dropped: too large, the backlog is full, or
    /// the connection failed.
    func send(_ payload: UnsafeRawBufferPointer) -> Bool {
        guard !isClosed, let (high, low) = StreamFramer.header(length: payload.count) else { return false }
        if wantsWrite {
            guard pending.count - pendingStart + payload.count + 2 <= Self.pendingLimit else { return false }
            pending.append(high)
            pending.append(low)
            pending.append(contentsOf: payload)
            return true
        }
        var header = (high, low)
        let written = withUnsafeMutableBytes(of: &header) { h -> Int in
            var vectors = [iovec(iov_base: h.baseAddress, iov_len: 2),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)]
            return vectors.withUnsafeMutableBufferPointer { v in
                var message = msghdr()
                message.msg_iov = v.baseAddress
                message.msg_iovlen = 2
                // MSG_NOSIGNAL: a peer that went away is an error here, never a SIGPIPE.
                return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            }
        }
        let total = payload.count + 2
        if written == total { return true }
        if written < 0, errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return false }
        // Keep the unwritten tail so the stream stays framed.
        let done = max(written, 0)
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        if done < 2 { pending.append(contentsOf: [high, low].dropFirst(done)) }
        pending.append(contentsOf: payload.dropFirst(max(done - 2, 0)))
        return true
    }

    /// Writes what is pending. False when the connection failed.
    func flush() -> Bool {
        while wantsWrite {
            let n = pending.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + pendingStart, pending.count - pendingStart, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
            pendingStart += n
        }
        pending.removeAll(keepingCapacity: true)
        pendingStart = 0
        return true
    }
}

/// The port a socket was bound to (the kernel's choice when 0 was asked). The corresponding C
/// call is getsockname.
func localPort(of fd: Int32) -> UInt16 {
    var actual = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: actual.sin_port)
}
