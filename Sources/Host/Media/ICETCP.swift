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
        guard let local = TransportAddress(address, port) else {
            throw MediaSocketError(description: "media.bind: \"\(address)\" is not an IP address")
        }
        do {
            fd = try tcpListener(local, backlog: 128)
        } catch {
            throw MediaSocketError(description: "cannot listen on TCP \(address):\(port) (media.tcp_port): \(error)")
        }
        self.port = localAddress(fd)?.port ?? UInt16(port)
    }

    deinit { close(fd) }

    /// One waiting connection, made non-blocking, with its peer's address; nil when none waits.
    func accept() -> (fd: Int32, remote: TransportAddress)? {
        acceptConnection(fd)
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
