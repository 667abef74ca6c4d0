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
    /// Set once a ConnectionBind made this an RFC 6062 client data connection: its bytes go as
    /// they are to this peer connection.
    var peer: PeerTCP?
    /// The client sent its last byte (a data connection drains towards the peer, then closes).
    var readClosed = false
    /// Reading stops until then (monotonic ns): the allocation's bandwidth cap.
    var readPausedUntil: UInt64 = 0
    /// Hung up both ways: left out of the poll set while the other side drains.
    var hungUp = false
    /// The poll events the descriptor was last registered with.
    var events: Int16 = 0

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

/// A TCP connection between a TCP allocation's relayed address and a peer (RFC 6062): connecting
/// (for a Connect), waiting for its ConnectionBind (not read, so the kernel holds what the peer
/// sends and its window closes), or bound to a client data connection.
final class PeerTCP {
    /// What may wait to be written on either side of a bound pair before the other side is no
    /// longer read (TCP's own flow control does the rest).
    static let backlogLimit = 256 * 1024

    let id: PeerSocketID
    let fd: Int32
    var connecting: Bool
    /// Bytes from the client waiting to be written to the peer.
    var pending = ByteQueue()
    var client: StreamClient?
    var readClosed = false
    var readPausedUntil: UInt64 = 0
    var hungUp = false
    var closed = false
    var events: Int16 = 0

    init(id: PeerSocketID, fd: Int32, connecting: Bool) {
        self.id = id
        self.fd = fd
        self.connecting = connecting
    }
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
        case tcpRelay(RelayID)
        case peer(UInt64)
    }

    private var udpListeners: [Int32] = []
    private var streamListeners: [(fd: Int32, tls: Bool)] = []
    private var clients: [UInt64: StreamClient] = [:]
    /// Relay sockets: UDP, or the listening socket of a TCP allocation (`tcp`).
    private var relays: [RelayID: (fd: Int32, address: TransportAddress, tcp: Bool)] = [:]
    private var peers: [UInt64: PeerTCP] = [:]
    /// The earliest time a paused reader of a data connection resumes (0: none paused).
    private var nextResume: UInt64 = 0
    private var usedPorts: Set<TransportAddress> = []
    private var nextID: UInt64 = 1
    private var tlsContext: OpaquePointer?
    private var pollSet: [pollfd] = []
    private var owners: [Owner] = []
    private var pollSetStale = true
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536 + 64, alignment: 16)
    /// The thread and its wake pipe.
    private let pollThread: PollThread
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
        pollThread = try PollThread()
    }

    deinit {
        buffer.deallocate()
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
        pollThread.start(name: "atrium-turn") { [self] in iterate() }
    }

    func stop() {
        guard pollThread.isRunning else { return }
        pollThread.stop()
        server.closeAll()
        for client in Array(clients.values) { dropClient(client) }
        for peer in Array(peers.values) { closePeer(peer, notify: false) }
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

    /// One turn of the loop: wait for any socket or the next timer, then serve what is ready.
    private func iterate() {
        if pollSetStale { rebuildPollSet() }
        _ = poll(&pollSet, nfds_t(pollSet.count), 50)
        var acceptOn: [(Int32, Bool)] = []
        var acceptPeersOn: [RelayID] = []
        for i in 0..<pollSet.count where pollSet[i].revents != 0 {
            let events = pollSet[i].revents
            switch owners[i] {
            case .wake:
                pollThread.runPosted()
            case .udp(let index):
                readUDP(index)
            case .listener(let tls):
                acceptOn.append((pollSet[i].fd, tls))
            case .client(let id):
                if let client = clients[id] { serve(client, events: events) }
            case .relay(let id):
                readRelay(id)
            case .tcpRelay(let id):
                acceptPeersOn.append(id)
            case .peer(let id):
                if let peer = peers[id] { serve(peer, events: events) }
            }
        }
        // Accepted last, so a descriptor freed above and reused now never gets an old event.
        for (fd, tls) in acceptOn { accept(fd, tls: tls) }
        for id in acceptPeersOn { acceptPeers(on: id) }
        let now = monotonicNanoseconds()
        if nextResume != 0, now >= nextResume {
            // Paused readers resume; a TLS one may hold decrypted bytes that poll cannot see.
            nextResume = 0
            pollSetStale = true
            for client in Array(clients.values) where client.tls != nil {
                if let peer = client.peer { finishIfDrained(client, peer) }
            }
        }
        server.tick(now: now)
    }

    private func rebuildPollSet() {
        pollSet = [pollfd(fd: pollThread.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        owners = [.wake]
        for (i, fd) in udpListeners.enumerated() {
            pollSet.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
            owners.append(.udp(i))
        }
        for l in streamListeners {
            pollSet.append(pollfd(fd: l.fd, events: Int16(POLLIN), revents: 0))
            owners.append(.listener(tls: l.tls))
        }
        let now = monotonicNanoseconds()
        for (id, client) in clients {
            client.events = events(of: client, now: now)
            pollSet.append(pollfd(fd: client.hungUp ? -1 : client.fd, events: client.events, revents: 0))
            owners.append(.client(id))
        }
        for (id, relay) in relays {
            pollSet.append(pollfd(fd: relay.fd, events: Int16(POLLIN), revents: 0))
            owners.append(relay.tcp ? .tcpRelay(id) : .relay(id))
        }
        for (id, peer) in peers {
            peer.events = events(of: peer, now: now)
            pollSet.append(pollfd(fd: peer.hungUp ? -1 : peer.fd, events: peer.events, revents: 0))
            owners.append(.peer(id))
        }
        pollSetStale = false
    }

    /// What a client connection waits for: always input, except on a data connection whose peer
    /// has enough waiting, that was paused by the bandwidth cap or that has finished; output when
    /// something waits to be written.
    private func events(of client: StreamClient, now: UInt64) -> Int16 {
        var events = client.wantsWrite ? Int16(POLLOUT) : 0
        if let peer = client.peer {
            if !client.readClosed, peer.pending.count < PeerTCP.backlogLimit, !paused(client.readPausedUntil, now) { events |= Int16(POLLIN) }
        } else {
            events |= Int16(POLLIN)
        }
        return events
    }

    /// A peer connection: output while connecting (that is how the outcome shows); nothing while
    /// it waits for its ConnectionBind (errors and hang-ups are reported anyway); once bound, as a
    /// data connection.
    private func events(of peer: PeerTCP, now: UInt64) -> Int16 {
        if peer.connecting { return Int16(POLLOUT) }
        guard let client = peer.client else { return 0 }
        var events = peer.pending.isEmpty ? 0 : Int16(POLLOUT)
        if !peer.readClosed, client.pending.count < PeerTCP.backlogLimit, !paused(peer.readPausedUntil, now) { events |= Int16(POLLIN) }
        return events
    }

    /// Whether a reader paused until `until` still is; if so, the loop wakes up for it.
    private func paused(_ until: UInt64, _ now: UInt64) -> Bool {
        guard until > now else { return false }
        nextResume = nextResume == 0 ? until : min(nextResume, until)
        return true
    }

    /// Marks the poll set for rebuilding when a data connection's interest changed.
    private func refreshInterest(_ client: StreamClient?, _ peer: PeerTCP?) {
        let now = monotonicNanoseconds()
        if let client, !client.closed, events(of: client, now: now) != client.events { pollSetStale = true }
        if let peer, !peer.closed, events(of: peer, now: now) != peer.events { pollSetStale = true }
    }

    private func readUDP(_ index: Int) {
        let fd = udpListeners[index]
        for _ in 0..<256 {
            guard let (n, from) = receiveDatagram(fd, into: buffer) else { return }
            server.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), from: ClientKey(.udp(listener: index), from),
                           now: monotonicNanoseconds(), unixNow: unixSeconds())
        }
    }

    private func readRelay(_ id: RelayID) {
        guard let relay = relays[id] else { return }
        for _ in 0..<256 {
            guard let (n, from) = receiveDatagram(relay.fd, into: buffer) else { return }
            server.receiveFromPeer(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), relay: id, peer: from, now: monotonicNanoseconds())
            guard relays[id] != nil else { return }
        }
    }

    // MARK: - Stream clients

    private func accept(_ listener: Int32, tls: Bool) {
        for _ in 0..<64 {
            guard let (fd, remote) = acceptConnection(listener) else { return }
            guard clients.count < config.maxAllocations * 2 + peers.count else {
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
        if client.peer != nil { return serveData(client, events: events) }
        if events & Int16(POLLOUT) != 0 || client.tls != nil {
            guard flush(client) else { return dropClient(client) }
        }
        guard events & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { return }
        for _ in 0..<16 {
            let n: Int
            switch receive(from: client) {
            case .bytes(let count):
                n = count
            case .wouldBlock:
                // A TLS read may have produced handshake bytes to send.
                if client.tls != nil, !flush(client) { dropClient(client) }
                return
            case .ended, .failed:
                return dropClient(client)
            }
            client.framer.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            while !client.closed {
                switch client.framer.next() {
                case .needMore:
                    break
                case .invalid:
                    return dropClient(client)
                case .message(let message):
                    message.withUnsafeBytes { server.receive($0, from: client.key, now: monotonicNanoseconds(), unixNow: unixSeconds()) }
                    // A ConnectionBind made it a data connection: no more framing.
                    if client.peer != nil { return }
                    continue
                }
                break
            }
            if client.closed { return }
        }
    }

    /// What one read of a client connection gave.
    private enum StreamRead {
        case bytes(Int)
        case wouldBlock
        /// The other side closed (FIN, or TLS close_notify).
        case ended
        case failed
    }

    /// Reads what a client sent into `buffer`, decrypted when the connection is TLS.
    private func receive(from client: StreamClient) -> StreamRead {
        if let tls = client.tls {
            // OpenSSL's error queue is per thread: clear it, or another connection's failed
            // handshake would read as this one's error.
            ERR_clear_error()
            let r = SSL_read(tls, buffer.baseAddress, Int32(buffer.count))
            if r > 0 { return .bytes(Int(r)) }
            switch SSL_get_error(tls, r) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wouldBlock
            case SSL_ERROR_ZERO_RETURN: return .ended
            default: return .failed
            }
        }
        let n = Glibc.read(client.fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .ended }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? .wouldBlock : .failed
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
        if let peer = client.peer {
            client.peer = nil
            peer.client = nil
            closePeer(peer, notify: true)
        }
    }

    // MARK: - RFC 6062 data connections

    /// A client data connection: bytes out to the client, bytes in to the peer.
    private func serveData(_ client: StreamClient, events: Int16) {
        guard let peer = client.peer else { return }
        if events & Int16(POLLERR) != 0 { return dropClient(client) }
        if events & Int16(POLLOUT) != 0 || client.tls != nil {
            guard flush(client) else { return dropClient(client) }
        }
        if events & Int16(POLLIN | POLLHUP) != 0 { readData(from: client, to: peer) }
        if events & Int16(POLLHUP) != 0 { hangUp(client) }
        finishIfDrained(client, peer)
    }

    /// A data connection hung up both ways: nothing more comes from it, and it leaves the poll set
    /// (poll would report the hang-up again and again) while what it sent drains to the other side.
    private func hangUp(_ client: StreamClient) {
        client.readClosed = true
        client.hungUp = true
        pollSetStale = true
    }

    private func readData(from client: StreamClient, to peer: PeerTCP) {
        let now = monotonicNanoseconds()
        reading: while !client.closed, !client.readClosed, peer.pending.count < PeerTCP.backlogLimit, client.readPausedUntil <= now {
            let n: Int
            switch receive(from: client) {
            case .bytes(let count):
                n = count
            case .wouldBlock:
                break reading
            case .ended:
                client.readClosed = true
                break reading
            case .failed:
                return dropClient(client)
            }
            peer.pending.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            let pause = server.tcpRelayed(peer.id, bytes: n, towardsPeer: true, now: now)
            if pause > 0 { client.readPausedUntil = now + pause }
        }
        guard flushPeer(peer) else { return closePeer(peer, notify: true) }
        refreshInterest(client, peer)
    }

    /// A peer connection: the outcome of a connect, bytes in to the client, bytes out to the peer.
    private func serve(_ peer: PeerTCP, events: Int16) {
        if peer.connecting {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(peer.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            peer.connecting = false
            pollSetStale = true
            if error != 0 {
                closePeer(peer, notify: false)
                server.peerConnectFinished(peer.id, connected: false, now: monotonicNanoseconds())
            } else {
                server.peerConnectFinished(peer.id, connected: true, now: monotonicNanoseconds())
            }
            return
        }
        guard let client = peer.client else {
            // Waiting for its ConnectionBind and not read: only a failure or hang-up shows.
            if events & Int16(POLLERR | POLLHUP) != 0 { closePeer(peer, notify: true) }
            return
        }
        if events & Int16(POLLERR) != 0 { return closePeer(peer, notify: true) }
        if events & Int16(POLLOUT) != 0 {
            guard flushPeer(peer) else { return closePeer(peer, notify: true) }
        }
        if events & Int16(POLLIN | POLLHUP) != 0 {
            let now = monotonicNanoseconds()
            while !peer.closed, !peer.readClosed, client.pending.count < PeerTCP.backlogLimit, peer.readPausedUntil <= now {
                let n = read(peer.fd, buffer.baseAddress, buffer.count)
                if n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                if n < 0 { return closePeer(peer, notify: true) }
                if n == 0 {
                    peer.readClosed = true
                    break
                }
                client.pending.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                let pause = server.tcpRelayed(peer.id, bytes: n, towardsPeer: false, now: now)
                if pause > 0 { peer.readPausedUntil = now + pause }
            }
            guard flush(client) else { return dropClient(client) }
        }
        if events & Int16(POLLHUP) != 0 {
            peer.readClosed = true
            peer.hungUp = true
            pollSetStale = true
        }
        finishIfDrained(client, peer)
    }

    /// One side sent its last byte and everything it sent has been written to the other: both
    /// close (RFC 6062 §5.5: when one connection of a pair closes, so does the other). Otherwise
    /// the pair's interest is brought up to date; a TLS client whose peer drained may hold
    /// decrypted bytes that poll cannot see, so it is read at once.
    private func finishIfDrained(_ client: StreamClient, _ peer: PeerTCP) {
        guard !client.closed, !peer.closed else { return }
        if (client.readClosed && peer.pending.isEmpty) || (peer.readClosed && client.pending.isEmpty) {
            return closePeer(peer, notify: true)
        }
        if client.tls != nil, !client.readClosed, peer.pending.count < PeerTCP.backlogLimit, SSL_pending(client.tls) > 0 {
            readData(from: client, to: peer)
        }
        refreshInterest(client, peer)
    }

    /// Writes what waits for the peer; false when the connection failed.
    private func flushPeer(_ peer: PeerTCP) -> Bool {
        while !peer.pending.isEmpty {
            let n = peer.pending.withBytes(0..<peer.pending.count) { Glibc.send(peer.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR }
            peer.pending.consume(n)
        }
        return true
    }

    /// Closes a peer connection and the client data connection bound to it; `notify` tells the
    /// server (not when the server asked for it).
    private func closePeer(_ peer: PeerTCP, notify: Bool) {
        guard !peer.closed else { return }
        peer.closed = true
        peers.removeValue(forKey: peer.id.raw)
        Glibc.close(peer.fd)
        pollSetStale = true
        if let client = peer.client {
            peer.client = nil
            client.peer = nil
            dropClient(client)
        }
        if notify { server.peerConnectionClosed(peer.id) }
    }

    /// Connections to a TCP allocation's relayed address.
    private func acceptPeers(on relay: RelayID) {
        guard let listener = relays[relay]?.fd else { return }
        for _ in 0..<16 {
            guard let (fd, remote) = acceptConnection(listener) else { return }
            let peer = PeerTCP(id: PeerSocketID(nextID), fd: fd, connecting: false)
            nextID += 1
            peers[peer.id.raw] = peer
            pollSetStale = true
            if !server.peerConnectionAccepted(on: relay, socket: peer.id, peer: remote, now: monotonicNanoseconds()) {
                closePeer(peer, notify: false)
            }
            guard relays[relay] != nil else { return }
        }
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

    private func register(_ fd: Int32, _ address: TransportAddress, tcp: Bool = false) -> RelayID {
        let id = RelayID(nextID)
        nextID += 1
        relays[id] = (fd, address, tcp)
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
        guard let r = relays[relay], !r.tcp else { return false }
        return sendDatagram(r.fd, bytes, to: peer)
    }

    func openTCPRelay(family: AddressFamily) -> (relay: RelayID, address: TransportAddress)? {
        guard let ip = relayAddresses.first(where: { ($0.isIPv4 ? AddressFamily.v4 : .v6) == family }) else { return nil }
        let span = config.maxPort - config.minPort + 1
        for _ in 0..<64 {
            let address = TransportAddress(ip: ip, port: UInt16(config.minPort + Int.random(in: 0..<span)))
            guard !usedPorts.contains(address), let fd = try? tcpRelaySocket(address) else { continue }
            guard listen(fd, 64) == 0 else {
                Glibc.close(fd)
                continue
            }
            return (register(fd, address, tcp: true), address)
        }
        return nil
    }

    func connectPeer(from relay: RelayID, to peer: TransportAddress) -> PeerSocketID? {
        guard let r = relays[relay], r.tcp, let fd = try? tcpRelaySocket(r.address) else { return nil }
        let rc = SocketAddress.with(peer) { Glibc.connect(fd, $0, $1) }
        guard rc == 0 || errno == EINPROGRESS else {
            Glibc.close(fd)
            return nil
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let connection = PeerTCP(id: PeerSocketID(nextID), fd: fd, connecting: true)
        nextID += 1
        peers[connection.id.raw] = connection
        pollSetStale = true
        return connection.id
    }

    func closePeerConnection(_ socket: PeerSocketID) {
        if let peer = peers[socket.raw] { closePeer(peer, notify: false) }
    }

    func bindDataConnection(_ socket: PeerSocketID, to client: ClientKey) {
        guard case .stream(let id) = client.transport, let c = clients[id], let peer = peers[socket.raw] else { return }
        c.peer = peer
        peer.client = c
        // Bytes the client sent right behind its ConnectionBind are already its data.
        let rest = c.framer.takeRemaining()
        if !rest.isEmpty {
            rest.withUnsafeBytes { peer.pending.append($0) }
            _ = server.tcpRelayed(socket, bytes: rest.count, towardsPeer: true, now: monotonicNanoseconds())
        }
        pollSetStale = true
    }
}

/// A TCP socket on a TCP relay's address: its listener, or a connection from it to a peer. Both
/// share the address (RFC 6062 §5.2: a Connect's local end is the relayed address), which Linux
/// allows when every socket on it sets SO_REUSEPORT; they are all this process's. The
/// corresponding C calls are socket, setsockopt and bind.
func tcpRelaySocket(_ address: TransportAddress) throws(SocketError) -> Int32 {
    let family = address.ip.isIPv4 ? AF_INET : AF_INET6
    let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SocketError("socket") }
    var one: Int32 = 1
    let size = socklen_t(MemoryLayout<Int32>.size)
    if family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size)
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, size)
    guard SocketAddress.with(address, { Glibc.bind(fd, $0, $1) }) == 0 else {
        let e = SocketError("bind \(address)")
        Glibc.close(fd)
        throw e
    }
    return fd
}

/// The machine's first non-loopback IPv4 address and first global IPv6 address.
func defaultRelayAddresses() -> [IPAddress] {
    let all = machineAddresses()
    let v4 = all.first { $0.isIPv4 }
    let v6 = all.first { if case .v6(let hi, _) = $0 { hi >> 61 == 1 } else { false } }  // 2000::/3, global unicast
    return [v4, v6].compactMap { $0 }
}

func unixSeconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec)
}
