public import RTC

/// Who a client is, as RFC 8656 sees it: the 5-tuple its requests arrive on. Over UDP that is the
/// listener (the server address) plus the client's address; over TCP or TLS, the connection.
public struct ClientKey: Hashable, Sendable, CustomStringConvertible {
    public enum Transport: Hashable, Sendable {
        case udp(listener: Int)
        case stream(connection: UInt64)
    }

    public var transport: Transport
    public var address: TransportAddress

    public init(_ transport: Transport, _ address: TransportAddress) {
        self.transport = transport
        self.address = address
    }

    public var isStream: Bool { if case .stream = transport { true } else { false } }

    public var description: String {
        switch transport {
        case .udp(let l): "udp#\(l) \(address)"
        case .stream(let c): "stream#\(c) \(address)"
        }
    }
}

/// A relay socket the I/O side opened, by its number: a UDP socket, or the listening TCP socket
/// of an RFC 6062 allocation.
public struct RelayID: Hashable, Sendable {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
}

/// A TCP connection between a relayed address and a peer (RFC 6062 peer data connection), by the
/// number the I/O side gave it.
public struct PeerSocketID: Hashable, Sendable {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
}

/// What an allocation relays: UDP datagrams (RFC 8656) or TCP connections (RFC 6062).
public enum RelayTransport: Sendable {
    case udp, tcp
}

public enum AddressFamily: Sendable, Hashable {
    case v4, v6

    init(_ ip: IPAddress) { self = ip.isIPv4 ? .v4 : .v6 }

    /// REQUESTED-/ADDITIONAL-ADDRESS-FAMILY values (RFC 8656 §18.1).
    init?(attribute value: [UInt8]) {
        guard value.count == 4 else { return nil }
        switch value[0] {
        case 0x01: self = .v4
        case 0x02: self = .v6
        default: return nil
        }
    }
}

/// A token bucket over bytes: `rate` per second, a second's worth of burst.
struct ByteBucket {
    let rate: UInt64
    private var tokens: UInt64
    private var last: UInt64

    init(rate: UInt64, now: UInt64) {
        self.rate = rate
        tokens = rate
        last = now
    }

    /// Takes `n` bytes if the bucket holds them; a cap of 0 lets everything through.
    mutating func take(_ n: Int, now: UInt64) -> Bool {
        guard rate > 0 else { return true }
        refill(now)
        guard tokens >= UInt64(n) else { return false }
        tokens -= UInt64(n)
        return true
    }

    /// Takes `n` bytes that were already relayed (a TCP stream cannot drop them), going into debt
    /// if need be; the nanoseconds until the bucket is out of debt, which is how long the reader
    /// should pause. 0 when there is no cap.
    mutating func charge(_ n: Int, now: UInt64) -> UInt64 {
        guard rate > 0 else { return 0 }
        refill(now)
        if tokens >= UInt64(n) {
            tokens -= UInt64(n)
            return 0
        }
        let debt = UInt64(n) - tokens
        tokens = 0
        // Paying the debt back moves `last` forward: the refill after the pause starts from zero.
        let pause = debt * 1_000_000_000 / rate
        last = now + pause
        return pause
    }

    private mutating func refill(_ now: UInt64) {
        guard now > last else { return }
        // A second refills the whole burst. Scaling a longer idle time by the rate overflowed 64
        // bits: an allocation kept alive by Refreshes for five hours at 1 MB/s, then one packet.
        let elapsed = now - last
        tokens = elapsed >= 1_000_000_000 ? rate : min(rate, tokens &+ elapsed * rate / 1_000_000_000)
        last = now
    }
}

/// One allocation (RFC 8656 §2.2): the client's 5-tuple, the relayed addresses (one, or one per
/// family for a dual allocation), who made it, and its permissions and channels.
final class Allocation {
    let client: ClientKey
    let username: String
    let identity: String
    let transport: RelayTransport
    var relays: [(id: RelayID, address: TransportAddress)]
    /// Each relayed address lasts until its own time: a Refresh with REQUESTED-ADDRESS-FAMILY
    /// refreshes or deletes one half of a dual allocation only (RFC 8656 §7.4). The allocation
    /// lasts as long as its last relayed address.
    var relayExpiry: [RelayID: UInt64]
    var expiry: UInt64 { relayExpiry.values.max() ?? 0 }
    /// Peer IP → expiry (RFC 8656 §9: permissions are per IP, ports ignored).
    var permissions: [IPAddress: UInt64] = [:]
    var channelPeers: [UInt16: TransportAddress] = [:]
    var channelNumbers: [TransportAddress: UInt16] = [:]
    var channelExpiry: [UInt16: UInt64] = [:]
    /// CONNECTION-IDs of its TCP connections to peers (RFC 6062), whatever their state.
    var connections: Set<UInt32> = []
    /// The Allocate that made it, so a retransmission gets the same answer (RFC 8656 §7.2).
    let allocateTransaction: STUNTransactionID
    let allocateResponse: [UInt8]
    var toPeers: ByteBucket
    var toClient: ByteBucket

    init(client: ClientKey, username: String, transport: RelayTransport, relays: [(id: RelayID, address: TransportAddress)], expiry: UInt64,
         transaction: STUNTransactionID, response: [UInt8], bandwidth: UInt64, now: UInt64)
    {
        self.client = client
        self.username = username
        identity = Authenticator.quotaIdentity(username)
        self.transport = transport
        self.relays = relays
        relayExpiry = Dictionary(uniqueKeysWithValues: relays.map { ($0.id, expiry) })
        allocateTransaction = transaction
        allocateResponse = response
        toPeers = ByteBucket(rate: bandwidth, now: now)
        toClient = ByteBucket(rate: bandwidth, now: now)
    }

    func relay(for family: AddressFamily) -> RelayID? {
        relays.first { AddressFamily($0.address.ip) == family }?.id
    }

    func hasPermission(_ ip: IPAddress, now: UInt64) -> Bool {
        guard let until = permissions[ip] else { return false }
        return until > now
    }
}
