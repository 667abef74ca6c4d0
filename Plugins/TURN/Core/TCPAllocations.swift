public import RTC

/// A TCP connection between a TCP allocation's relayed address and a peer (RFC 6062 §2): opened
/// by a Connect request or accepted from the peer, then bound to a client data connection.
final class PeerConnection {
    enum State {
        /// Opened for a Connect request, which is answered when the connection is up or failed
        /// (447), or at `deadline`.
        case connecting(request: STUNMessage, sign: STUNIntegrity, deadline: UInt64)
        /// Up, announced to the client (Connect success or ConnectionAttempt); closed unless a
        /// ConnectionBind comes before `deadline`.
        case pending(deadline: UInt64)
        /// Relaying bytes as they are to and from `client`, a client data connection.
        case bound(client: ClientKey)
    }

    /// The CONNECTION-ID: random, so another client cannot guess a pending one.
    let id: UInt32
    let socket: PeerSocketID
    let peer: TransportAddress
    unowned let allocation: Allocation
    var state: State

    init(id: UInt32, socket: PeerSocketID, peer: TransportAddress, allocation: Allocation, state: State) {
        self.id = id
        self.socket = socket
        self.peer = peer
        self.allocation = allocation
        self.state = state
    }
}

/// RFC 6062: Connect, ConnectionAttempt, ConnectionBind, and the lifetimes of peer connections.
/// The bytes themselves never pass through here: once a connection is bound, the I/O side copies
/// them between the two sockets and only reports how many (`tcpRelayed`), for the bandwidth cap
/// and the metrics.
extension TURNServer {
    // MARK: - Connect (RFC 6062 §5.2)

    func connect(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        guard let allocation = ownAllocation(message, client: client, credential: credential) else { return }
        let sign = credential.integrity
        guard allocation.transport == .tcp else { return error(400, to: message, client: client, sign: sign) }
        // One peer, through the same policy as every UDP relay path (400, 403, 443).
        guard let peers = peers(message, allocation: allocation, client: client, credential: credential) else { return }
        guard peers.count == 1, let peer = peers.first, peer.port != 0 else { return error(400, to: message, client: client, sign: sign) }
        // The server's own TURN listeners are never peers (the relay would be its own client).
        // Another TCP relay of this server is: that is how two clients of one server reach each other.
        if ownAddresses.contains(peer.ip), ownPorts.contains(peer.port) {
            metrics.deniedPeers.add(1, ordering: .relaxed)
            return error(403, to: message, client: client, sign: sign)
        }
        if allocation.connections.contains(where: { peerConnections[$0]?.peer == peer }) {
            return error(446, to: message, client: client, sign: sign)
        }
        guard allocation.connections.count < config.maxTCPConnectionsPerAllocation else {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return error(508, to: message, client: client, sign: sign)
        }
        guard let relay = allocation.relay(for: AddressFamily(peer.ip)), let socket = io.connectPeer(from: relay, to: peer) else {
            return error(447, to: message, client: client, sign: sign)
        }
        add(PeerConnection(id: newConnectionID(), socket: socket, peer: peer, allocation: allocation,
                           state: .connecting(request: message, sign: sign, deadline: now + Self.connectionTimeout)))
    }

    /// The I/O side's answer to `connectPeer`: the Connect request is answered with the
    /// CONNECTION-ID, or 447.
    public func peerConnectFinished(_ socket: PeerSocketID, connected: Bool, now: UInt64) {
        guard let connection = peerConnectionsBySocket[socket], case .connecting(let request, let sign, _) = connection.state else { return }
        guard connected else { return close(connection) }
        connection.state = .pending(deadline: now + Self.connectionTimeout)
        respond(to: request, client: connection.allocation.client, attributes: [.uint32(.connectionID, connection.id)], sign: sign)
    }

    // MARK: - Connections from peers (RFC 6062 §5.3)

    /// A peer connected to the relayed address of `relay`. True: it is announced to the client
    /// with a ConnectionAttempt indication and waits for a ConnectionBind. False: the I/O side
    /// closes it at once (no permission for the peer's IP, or the allocation's quota is full).
    public func peerConnectionAccepted(on relay: RelayID, socket: PeerSocketID, peer: TransportAddress, now: UInt64) -> Bool {
        guard let allocation = allocationsByRelay[relay], allocation.transport == .tcp, allocation.hasPermission(peer.ip, now: now) else {
            drop()
            return false
        }
        guard allocation.connections.count < config.maxTCPConnectionsPerAllocation else {
            metrics.quotaRefusals.add(1, ordering: .relaxed)
            return false
        }
        let connection = PeerConnection(id: newConnectionID(), socket: socket, peer: peer, allocation: allocation,
                                        state: .pending(deadline: now + Self.connectionTimeout))
        add(connection)
        let id = STUNTransactionID.random()
        let indication = STUNMessage(method: .connectionAttempt, messageClass: .indication, transactionID: id, attributes: [
            .xorAddress(.xorPeerAddress, peer, transactionID: id), .uint32(.connectionID, connection.id),
        ])
        io.sendToClient(indication.encode(integrity: nil, fingerprint: true), allocation.client)
        return true
    }

    // MARK: - ConnectionBind (RFC 6062 §5.4)

    func connectionBind(_ message: STUNMessage, client: ClientKey, credential: Credential, now: UInt64) {
        let sign = credential.integrity
        // A new TCP or TLS connection, not the control connection of an allocation.
        guard client.isStream, allocations[client] == nil else { return error(400, to: message, client: client, sign: sign) }
        guard let id = message.attribute(.connectionID)?.uint32Value, let connection = peerConnections[id],
            case .pending = connection.state
        else { return error(400, to: message, client: client, sign: sign) }
        // The allocation's own user only: a CONNECTION-ID is hard to guess, not a credential.
        guard connection.allocation.username == credential.username else {
            metrics.authFailures.add(1, ordering: .relaxed)
            return error(441, to: message, client: client, sign: sign)
        }
        connection.state = .bound(client: client)
        respond(to: message, client: client, attributes: [], sign: sign)
        io.bindDataConnection(connection.socket, to: client)
    }

    // MARK: - Data, ends and time

    /// `bytes` went through a bound connection, towards the peer or towards the client. The
    /// nanoseconds the I/O side should stop reading that way: the allocation's bandwidth cap
    /// (`bandwidth_bytes_per_second`) slows a TCP relay down instead of dropping bytes.
    public func tcpRelayed(_ socket: PeerSocketID, bytes: Int, towardsPeer: Bool, now: UInt64) -> UInt64 {
        guard let allocation = peerConnectionsBySocket[socket]?.allocation else { return 0 }
        metrics.relayedPackets.add(1, ordering: .relaxed)
        metrics.relayedBytes.add(bytes, ordering: .relaxed)
        return towardsPeer ? allocation.toPeers.charge(bytes, now: now) : allocation.toClient.charge(bytes, now: now)
    }

    /// The I/O side closed a peer connection because one end of it closed or failed (for a bound
    /// one it closed the client data connection too). The connection is forgotten; a Connect
    /// still waiting gets 447.
    public func peerConnectionClosed(_ socket: PeerSocketID) {
        guard let connection = peerConnectionsBySocket[socket] else { return }
        if case .connecting(let request, let sign, _) = connection.state {
            error(447, to: request, client: connection.allocation.client, sign: sign)
        }
        forget(connection)
    }

    /// Connect attempts and unbound connections that outlived RFC 6062's 30 seconds.
    func expireConnections(now: UInt64) {
        for connection in Array(peerConnections.values) {
            switch connection.state {
            case .connecting(_, _, let deadline) where deadline <= now:
                close(connection)
            case .pending(let deadline) where deadline <= now:
                close(connection)
            default:
                break
            }
        }
    }

    public var tcpConnectionCount: Int { peerConnections.count }

    private func newConnectionID() -> UInt32 {
        while true {
            let id = randomBytes(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            if id != 0, peerConnections[id] == nil { return id }
        }
    }

    private func add(_ connection: PeerConnection) {
        peerConnections[connection.id] = connection
        peerConnectionsBySocket[connection.socket] = connection
        connection.allocation.connections.insert(connection.id)
        metrics.tcpConnections.store(peerConnections.count, ordering: .relaxed)
    }

    /// Closes the sockets (the I/O side's part) and forgets the connection; a Connect still
    /// waiting for it is answered 447.
    func close(_ connection: PeerConnection) {
        forget(connection)
        io.closePeerConnection(connection.socket)
        if case .connecting(let request, let sign, _) = connection.state {
            error(447, to: request, client: connection.allocation.client, sign: sign)
        }
    }

    private func forget(_ connection: PeerConnection) {
        guard peerConnections.removeValue(forKey: connection.id) != nil else { return }
        peerConnectionsBySocket.removeValue(forKey: connection.socket)
        connection.allocation.connections.remove(connection.id)
        metrics.tcpConnections.store(peerConnections.count, ordering: .relaxed)
    }
}
