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
        (fd, self.port, _) = try openMediaSocket(address, port, "cannot listen on TCP", key: "media.tcp_port") { (a, dual) throws(SocketError) in try tcpListener(a, backlog: 128, dualStack: dual) }
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
    private var pending = ByteQueue()
    weak var peer: PeerConnection?
    private(set) var isClosed = false

    init(fd: Int32, remote: TransportAddress, now: UInt64) {
        self.fd = fd
        self.remote = remote
        acceptedAt = now
    }

    deinit { closeSocket() }

    var path: IcePath { .tcp(remote) }
    var wantsWrite: Bool { !pending.isEmpty }

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
        guard !isClosed, let header = StreamFramer.header(length: payload.count) else { return false }
        if wantsWrite {
            guard pending.count + payload.count + 2 <= Self.pendingLimit else { return false }
            enqueue(header, payload, after: 0)
            return true
        }
        var h = header
        let written = withUnsafeMutableBytes(of: &h) { h -> Int in
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
        if written == payload.count + 2 { return true }
        if written < 0, errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return false }
        // Keep the unwritten tail so the stream stays framed.
        enqueue(header, payload, after: max(written, 0))
        return true
    }

    /// Queues the frame `header` + `payload` minus its first `done` bytes (already written).
    private func enqueue(_ header: (UInt8, UInt8), _ payload: UnsafeRawBufferPointer, after done: Int) {
        withUnsafeBytes(of: header) { pending.append(UnsafeRawBufferPointer(rebasing: $0[min(done, 2)...])) }
        pending.append(UnsafeRawBufferPointer(rebasing: payload[max(done - 2, 0)...]))
    }

    /// Writes what is pending. False when the connection failed.
    func flush() -> Bool {
        while wantsWrite {
            let n = pending.withBytes(0..<pending.count) { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
            pending.consume(n)
        }
        return true
    }
}
