import RTC
import Synchronization

/// What each client address holds of the host (sessions, handles, connections) and its request
/// budget across all its connections, so that one address at its limit costs the others nothing.
///
/// The table is bounded: an entry goes as soon as its address holds nothing and its request
/// bucket has refilled (so closing and reopening connections does not refill it early), and no
/// more than `maxAddresses` are tracked at once. Requests without an address (in-process callers)
/// are not counted. Every method takes one short lock and never calls out.
final class ClientShares: Sendable {
    enum Transport: Sendable { case http, webSocket }

    /// Why a connection was refused at accept.
    enum ConnectionRefusal: Sendable, Equatable {
        case totalCap, addressCap, tooManyAddresses
    }

    struct Limits: Sendable {
        var sessionsPerAddress: Int
        var handlesPerAddress: Int
        var httpConnectionsPerAddress: Int
        var webSocketConnectionsPerAddress: Int
        var maxHTTPConnections: Int
        var maxWebSocketConnections: Int
        var requestsPerSecond: Double
        var burst: Double
        var maxAddresses: Int

        init(_ limits: HostConfig.Limits) {
            sessionsPerAddress = limits.sessionsPerAddress
            handlesPerAddress = limits.handlesPerAddress
            httpConnectionsPerAddress = limits.httpConnectionsPerAddress
            webSocketConnectionsPerAddress = limits.webSocketConnectionsPerAddress
            maxHTTPConnections = limits.maxHTTPConnections
            maxWebSocketConnections = limits.maxWebSocketConnections
            requestsPerSecond = limits.addressRequestsPerSecond
            burst = limits.addressBurst
            maxAddresses = limits.maxAddresses
        }
    }

    struct Share {
        var sessions = 0
        var handles = 0
        var httpConnections = 0
        var webSocketConnections = 0
        var tokens: Double
        var refilledAt: UInt64

        var holdsNothing: Bool { sessions == 0 && handles == 0 && httpConnections == 0 && webSocketConnections == 0 }
    }

    private struct Table {
        var shares: [ClientAddress: Share] = [:]
        var httpConnections = 0
        var webSocketConnections = 0
    }

    let limits: Limits
    private let table = Mutex(Table())

    init(limits: Limits) { self.limits = limits }

    // MARK: - Connections

    /// Counts a connection just accepted, or says why it must be closed at once.
    func openConnection(_ client: ClientAddress, _ transport: Transport, now: UInt64 = monotonicNanoseconds()) -> ConnectionRefusal? {
        table.withLock { t in
            let (total, cap, perAddress) = transport == .http
                ? (t.httpConnections, limits.maxHTTPConnections, limits.httpConnectionsPerAddress)
                : (t.webSocketConnections, limits.maxWebSocketConnections, limits.webSocketConnectionsPerAddress)
            guard total < cap else { return .totalCap }
            guard client.isKnown else {
                if transport == .http { t.httpConnections += 1 } else { t.webSocketConnections += 1 }
                return nil
            }
            var share: Share
            if let existing = t.shares[client] {
                share = existing
            } else {
                guard t.shares.count < limits.maxAddresses else { return .tooManyAddresses }
                share = Share(tokens: limits.burst, refilledAt: now)
            }
            switch transport {
            case .http:
                guard share.httpConnections < perAddress else { return .addressCap }
                share.httpConnections += 1
                t.httpConnections += 1
            case .webSocket:
                guard share.webSocketConnections < perAddress else { return .addressCap }
                share.webSocketConnections += 1
                t.webSocketConnections += 1
            }
            t.shares[client] = share
            return nil
        }
    }

    func closeConnection(_ client: ClientAddress, _ transport: Transport, now: UInt64 = monotonicNanoseconds()) {
        table.withLock { t in
            if transport == .http { t.httpConnections -= 1 } else { t.webSocketConnections -= 1 }
            update(&t, client, now: now) { share in
                if transport == .http { share.httpConnections -= 1 } else { share.webSocketConnections -= 1 }
            }
        }
    }

    // MARK: - Requests

    /// Takes one request from the address's bucket; false when the address is over its rate.
    func takeRequest(_ client: ClientAddress, now: UInt64 = monotonicNanoseconds()) -> Bool {
        guard client.isKnown else { return true }
        return table.withLock { t in
            // A request only comes on an open connection, which holds the entry; a missing one is
            // a race with a close, answered generously.
            guard var share = t.shares[client] else { return true }
            refill(&share, now: now)
            guard share.tokens >= 1 else {
                t.shares[client] = share
                return false
            }
            share.tokens -= 1
            t.shares[client] = share
            return true
        }
    }

    // MARK: - Sessions and handles

    /// Counts a new session against its address; false when the address already has its share.
    func reserveSession(_ client: ClientAddress, now: UInt64 = monotonicNanoseconds()) -> Bool {
        reserve(client, now: now, limit: limits.sessionsPerAddress, count: \.sessions)
    }

    func releaseSession(_ client: ClientAddress, now: UInt64 = monotonicNanoseconds()) {
        guard client.isKnown else { return }
        table.withLock { t in update(&t, client, now: now) { $0.sessions -= 1 } }
    }

    func reserveHandle(_ client: ClientAddress, now: UInt64 = monotonicNanoseconds()) -> Bool {
        reserve(client, now: now, limit: limits.handlesPerAddress, count: \.handles)
    }

    func releaseHandle(_ client: ClientAddress, now: UInt64 = monotonicNanoseconds()) {
        guard client.isKnown else { return }
        table.withLock { t in update(&t, client, now: now) { $0.handles -= 1 } }
    }

    private func reserve(_ client: ClientAddress, now: UInt64, limit: Int, count: WritableKeyPath<Share, Int>) -> Bool {
        guard client.isKnown else { return true }
        return table.withLock { t in
            var share: Share
            if let existing = t.shares[client] {
                share = existing
            } else {
                // Sessions outlive their HTTP connections, so an address may come back with none open.
                guard t.shares.count < limits.maxAddresses else { return false }
                share = Share(tokens: limits.burst, refilledAt: now)
            }
            guard share[keyPath: count] < limit else { return false }
            share[keyPath: count] += 1
            t.shares[client] = share
            return true
        }
    }

    // MARK: - Upkeep

    /// Drops the entries of addresses that hold nothing and whose bucket has refilled since
    /// (called by the host's periodic sweep).
    func sweep(now: UInt64 = monotonicNanoseconds()) {
        table.withLock { t in
            t.shares = t.shares.filter { _, share in
                var share = share
                refill(&share, now: now)
                return !(share.holdsNothing && share.tokens >= limits.burst)
            }
        }
    }

    private func update(_ t: inout Table, _ client: ClientAddress, now: UInt64, _ change: (inout Share) -> Void) {
        guard client.isKnown, var share = t.shares[client] else { return }
        change(&share)
        refill(&share, now: now)
        if share.holdsNothing && share.tokens >= limits.burst {
            t.shares.removeValue(forKey: client)
        } else {
            t.shares[client] = share
        }
    }

    private func refill(_ share: inout Share, now: UInt64) {
        guard now > share.refilledAt else { return }
        share.tokens = min(limits.burst, share.tokens + Double(now - share.refilledAt) / 1e9 * limits.requestsPerSecond)
        share.refilledAt = now
    }

    // MARK: - Snapshot

    struct Snapshot: Sendable {
        var addresses: Int
        var httpConnections: Int
        var webSocketConnections: Int
    }

    var snapshot: Snapshot {
        table.withLock { t in Snapshot(addresses: t.shares.count, httpConnections: t.httpConnections, webSocketConnections: t.webSocketConnections) }
    }

    /// One address's share, for tests and the admin API.
    func share(of client: ClientAddress) -> Share? {
        table.withLock { $0.shares[client] }
    }
}
