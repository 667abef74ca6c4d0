import COpenSSL
import Foundation
import RTC
import Synchronization
import TURNCore
#if canImport(Glibc)
import Glibc
#endif

/// A TCP or TLS client connection: TURN messages in, framed by `TURNStreamFramer`; what waits to
/// be written, bounded (a client that does not read loses packets, not server memory).
final class StreamClient {
    static let pendingLimit = 512 * 1024

    let id: UInt64
    let fd: Int32
    let key: ClientKey
    var framer = TURNStreamFramer()
    var pending = ByteQueue()
    var tls: OpaquePointer?
    var closed = false

    init(id: UInt64, fd: Int32, remote: TransportAddress, tls: OpaquePointer?) {
        self.id = id
        self.fd = fd
        key = ClientKey(.stream(connection: id), remote)
        self.tls = tls
    }

    deinit {
        if let tls { SSL_free(tls) }
        if !closed { Glibc.close(fd) }
    }

    var wantsWrite: Bool { !pending.isEmpty }
}

/// The TURN plugin's thread: every listener, client connection and relay socket in one poll set,
/// driving `TURNServer`. Nothing else touches the server or the sockets.
final class TURNLoop: TURNIO, @unchecked Sendable {
    let config: TURNConfig
    let log: (String) -> Void
    private(set) var server: TURNServer!
    let relayAddresses: [IPAddress]
    let relayFamilies: Set<AddressFamily>

    private enum Owner {
        case wake
        case udp(Int)
        case listener(tls: Bool)
        case client(UInt64)
        case relay(RelayID)
    }

    private var udpListeners: [Int32] = []
    private var streamListeners: [(fd: Int32, tls: Bool)] = []
    private var clients: [UInt64: StreamClient] = [:]
    private var relays: [RelayID: (fd: Int32, address: TransportAddress)] = [:]
    private var usedPorts: Set<TransportAddress> = []
    private var nextID: UInt64 = 1
    private var tlsContext: OpaquePointer?
    private var pollSet: [pollfd] = []
    private var owners: [Owner] = []
    private var pollSetStale = true
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536 + 64, alignment: 16)
    private let running = Atomic<Bool>(false)
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)
    /// Every address a listener is bound to, for the start-up log and the credentials URLs.
    private(set) var listening: [String] = []
    private var ports: [ListenerKind: UInt16] = [:]

    enum ListenerKind: Hashable { case udp, tcp, tls }

    /// The port a kind of listener got (the kernel's choice when 0 was configured).
    func boundPort(_ kind: ListenerKind) -> UInt16? { ports[kind] }

    private func note(_ kind: ListenerKind, _ fd: Int32) {
        let address = localAddress(fd)
        if ports[kind] == nil { ports[kind] = address?.port }
        listening.append("\(kind) \(address.map(\.description) ?? "?")")
    }

    init(config: TURNConfig, log: @escaping (String) -> Void) throws(SocketError) {
        self.config = config
        self.log = log
        relayAddresses = config.relayAddresses.isEmpty ? defaultRelayAddresses() : config.relayAddresses
        guard !relayAddresses.isEmpty else {
            throw SocketError(message: "no relay address: the machine has no non-loopback address; set config.relay_addresses")
        }
        relayFamilies = Set(relayAddresses.map { $0.isIPv4 ? AddressFamily.v4 : .v6 })
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SocketError("pipe") }
        for fd in ends { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        buffer.deallocate()
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        if let tlsContext { SSL_CTX_free(tlsContext) }
    }

    /// Binds every listener (an error names the one that failed), lets `prepare` see the bound
    /// ports, and starts the thread.
    func start(server: TURNServer, beforeRunning prepare: (TURNLoop) -> Void = { _ in }) throws(SocketError) {
        self.server = server
        do {
            for ip in config.listen {
                if let port = config.udpPort {
                    let fd = try udpSocket(TransportAddress(ip: ip, port: UInt16(port)))
                    udpListeners.append(fd)
                    note(.udp, fd)
                }
                if let port = config.tcpPort {
                    let fd = try tcpListener(TransportAddress(ip: ip, port: UInt16(port)))
                    streamListeners.append((fd, false))
                    note(.tcp, fd)
                }
                if let port = config.tlsPort, config.certificateFile != nil {
                    if tlsContext == nil { tlsContext = try makeTLSContext() }
                    let fd = try tcpListener(TransportAddress(ip: ip, port: UInt16(port)))
                    streamListeners.append((fd, true))
                    note(.tls, fd)
                }
            }
        } catch {
            closeListeners()
            throw error
        }
        prepare(self)
        running.store(true, ordering: .sequentiallyConsistent)
        let t = Thread { [self] in
            run()
            stopped.signal()
        }
        t.name = "atrium-turn"
        thread = t
        t.start()
    }

    func stop() {
        guard running.exchange(false, ordering: .sequentiallyConsistent) else { return }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
        stopped.wait()
        server.closeAll()
        for client in clients.values { dropClient(client) }
        closeListeners()
    }

    private func closeListeners() {
        for fd in udpListeners { Glibc.close(fd) }
        for l in streamListeners { Glibc.close(l.fd) }
        udpListeners.removeAll()
        streamListeners.removeAll()
    }

    private func makeTLSContext() throws(SocketError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw SocketError(message: "TLS: SSL_CTX_new failed") }
        let ok = SSL_CTX_use_certificate_chain_file(ctx, config.certificateFile) == 1
            && SSL_CTX_use_PrivateKey_file(ctx, config.keyFile, SSL_FILETYPE_PEM) == 1
            && SSL_CTX_check_private_key(ctx) == 1
            && SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil) == 1
        guard ok else {
            SSL_CTX_free(ctx)
            throw SocketError(message: "TLS: cannot use certificate_file \(config.certificateFile ?? "") with key_file \(config.keyFile ?? "")")
        }
        // Writes may be retried with a moved buffer and may complete in part.
        _ = SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), nil)
        return ctx
    }

    // MARK: - The loop

    private func run() {
        while running.load(ordering: .relaxed) {
            if pollSetStale { rebuildPollSet() }
            _ = poll(&pollSet, nfds_t(pollSet.count), 50)
            var acceptOn: [(Int32, Bool)] = []
            for i in 0..<pollSet.count where pollSet[i].revents != 0 {
                let events = pollSet[i].revents
                switch owners[i] {
                case .wake:
                    var drain = (UInt64(0), UInt64(0))
                    _ = withUnsafeMutableBytes(of: &drain) { read(wakeRead, $0.baseAddress, $0.count) }
                case .udp(let index):
                    readUDP(index)
                case .listener(let tls):
                    acceptOn.append((pollSet[i].fd, tls))
                case .client(let id):
                    if let client = clients[id] { serve(client, events: events) }
                case .relay(let id):
                    readRelay(id)
                }
            }
            // Accepted last, so a descriptor freed above and reused now never gets an old event.
            for (fd, tls) in acceptOn { accept(fd, tls: tls) }
            server.tick(now: monotonicNanos())
        }
    }

    private func rebuildPollSet() {
        pollSet = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        owners = [.wake]
        for (i, fd) in udpListeners.enumerated() {
            pollSet.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            owners.append(.udp(i))
        }
        for l in streamListeners {
            pollSet.append(pollfd(fd: l.fd, events: Int16(POLLIN), revents: 0))
            owners.append(.listener(tls: l.tls))
        }
        for (id, client) in clients {
            pollSet.append(pollfd(fd: client.fd, events: Int16(POLLIN) | (client.wantsWrite ? Int16(POLLOUT) : 0), revents: 0))
            owners.append(.client(id))
        }
        for (id, relay) in relays {
            pollSet.append(pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0))
            owners.append(.relay(id))
        }
        pollSetStale = false
    }

    private func readUDP(_ index: Int) {
        let fd = udpListeners[index]
        for _ in 0..<256 {
            guard let (n, from) = receiveDatagram(fd, into: buffer) else { return }
            server.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), from: ClientKey(.udp(listener: index), from),
                           now: monotonicNanos(), unixNow: unixSeconds())
        }
    }

    private func readRelay(_ id: RelayID) {
        guard let relay = relays[id] else { return }
        for _ in 0..<256 {
            guard let (n, from) = receiveDatagram(relay.fd, into: buffer) else { return }
            server.receiveFromPeer(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), relay: id, peer: from, now: monotonicNanos())
            guard relays[id] != nil else { return }
        }
    }

    // MARK: - Stream clients

    private func accept(_ listener: Int32, tls: Bool) {
        for _ in 0..<64 {
            guard let (fd, remote) = acceptConnection(listener) else { return }
            guard clients.count < config.maxAllocations * 2 else {
                Glibc.close(fd)
                continue
            }
            var session: OpaquePointer?
            if tls, let tlsContext {
                guard let s = SSL_new(tlsContext) else {
                    Glibc.close(fd)
                    continue
                }
                SSL_set_fd(s, fd)
                SSL_set_accept_state(s)
                session = s
            }
            let id = nextID
            nextID += 1
            clients[id] = StreamClient(id: id, fd: fd, remote: remote, tls: session)
            pollSetStale = true
        }
    }

    private func serve(_ client: StreamClient, events: Int16) {
        if events & Int16(POLLOUT) != 0 || client.tls != nil {
            guard flush(client) else { return dropClient(client) }
        }
        guard events & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { return }
        for _ in 0..<16 {
            let n: Int
            if let tls = client.tls {
                // OpenSSL's error queue is per thread: clear it, or another connection's failed
                // handshake would read as this one's error.
                ERR_clear_error()
                let r = SSL_read(tls, buffer.baseAddress, Int32(buffer.count))
                if r <= 0 {
                    let e = SSL_get_error(tls, r)
                    if e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE {
                        if !flush(client) { dropClient(client) }  // handshake bytes
                        return
                    }
                    return dropClient(client)
                }
                n = Int(r)
            } else {
                n = read(client.fd, buffer.baseAddress, buffer.count)
                if n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
                if n <= 0 { return dropClient(client) }
            }
            client.framer.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            while !client.closed {
                switch client.framer.next() {
                case .needMore:
                    break
                case .invalid:
                    return dropClient(client)
                case .message(let message):
                    message.withUnsafeBytes { server.receive($0, from: client.key, now: monotonicNanos(), unixNow: unixSeconds()) }
                    continue
                }
                break
            }
            if client.closed { return }
        }
    }

    /// Writes what waits; false when the connection failed.
    private func flush(_ client: StreamClient) -> Bool {
        let waited = client.wantsWrite
        defer { if client.wantsWrite != waited { pollSetStale = true } }
        if let tls = client.tls {
            while !client.pending.isEmpty {
                ERR_clear_error()
                let r = client.pending.withBytes(0..<client.pending.count) { SSL_write(tls, $0.baseAddress, Int32($0.count)) }
                if r <= 0 {
                    let e = SSL_get_error(tls, r)
                    if e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE { break }
                    return false
                }
                client.pending.consume(Int(r))
            }
        } else {
            while !client.pending.isEmpty {
                let n = client.pending.withBytes(0..<client.pending.count) { Glibc.send(client.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
                client.pending.consume(n)
            }
        }
        return true
    }

    private func dropClient(_ client: StreamClient) {
        guard !client.closed else { return }
        client.closed = true
        clients.removeValue(forKey: client.id)
        if let tls = client.tls {
            ERR_clear_error()
            SSL_shutdown(tls)
        }
        Glibc.close(client.fd)
        server.clientClosed(client.key)
        pollSetStale = true
    }

    // MARK: - TURNIO

    func sendToClient(_ bytes: [UInt8], _ client: ClientKey) {
        switch client.transport {
        case .udp(let index):
            bytes.withUnsafeBytes { _ = sendDatagram(udpListeners[index], $0, to: client.address) }
        case .stream(let id):
            guard let c = clients[id], c.pending.count + bytes.count <= StreamClient.pendingLimit else { return }
            bytes.withUnsafeBytes { c.pending.append($0) }
            if !flush(c) { dropClient(c) }
        }
    }

    func openRelay(family: AddressFamily, evenPort: Bool, reserveNext: Bool) -> (relay: RelayID, address: TransportAddress, reserved: (RelayID, TransportAddress)?)? {
        guard let ip = relayAddresses.first(where: { ($0.isIPv4 ? AddressFamily.v4 : .v6) == family }) else { return nil }
        let span = config.maxPort - config.minPort + 1
        for _ in 0..<64 {
            var port = config.minPort + Int.random(in: 0..<span)
            if evenPort { port &= ~1 }
            if port < config.minPort || (reserveNext && port + 1 > config.maxPort) { continue }
            let address = TransportAddress(ip: ip, port: UInt16(port))
            guard !usedPorts.contains(address), let fd = try? udpSocket(address) else { continue }
            var reserved: (RelayID, TransportAddress)?
            if reserveNext {
                let next = TransportAddress(ip: ip, port: UInt16(port + 1))
                guard !usedPorts.contains(next), let second = try? udpSocket(next) else {
                    Glibc.close(fd)
                    continue
                }
                reserved = (register(second, next), next)
            }
            return (register(fd, address), address, reserved)
        }
        return nil
    }

    private func register(_ fd: Int32, _ address: TransportAddress) -> RelayID {
        let id = RelayID(nextID)
        nextID += 1
        relays[id] = (fd, address)
        usedPorts.insert(address)
        pollSetStale = true
        return id
    }

    func isRelay(_ address: TransportAddress) -> Bool { usedPorts.contains(address) }

    func closeRelay(_ id: RelayID) {
        guard let relay = relays.removeValue(forKey: id) else { return }
        Glibc.close(relay.fd)
        usedPorts.remove(relay.address)
        pollSetStale = true
    }

    func sendToPeer(_ bytes: UnsafeRawBufferPointer, from relay: RelayID, to peer: TransportAddress) -> Bool {
        guard let r = relays[relay] else { return false }
        return sendDatagram(r.fd, bytes, to: peer)
    }
}

/// The machine's first non-loopback IPv4 address and first global IPv6 address.
func defaultRelayAddresses() -> [IPAddress] {
    let all = machineAddresses()
    let v4 = all.first { $0.isIPv4 }
    let v6 = all.first { if case .v6(let hi, _) = $0 { hi >> 61 == 1 } else { false } }  // 2000::/3, global unicast
    return [v4, v6].compactMap { $0 }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func unixSeconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec)
}
