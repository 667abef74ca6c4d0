import NIOCore

extension HostCore {
    /// Counts a connection just accepted against the totals and its address's share; when over,
    /// sets it up to get a fixed 503 and close, and returns false (the caller adds nothing else,
    /// so a refused connection costs one write and no parsing).
    func admit(_ channel: any Channel, _ transport: ClientShares.Transport) -> Bool {
        let client = ClientAddress(channel.remoteAddress)
        // A socket without a peer address (reset before it was accepted) would count against no
        // address and pass for an in-process caller: it is closed unread.
        guard client.isKnown else {
            channel.close(promise: nil)
            return false
        }
        // A trusted proxy carries many clients: its connections count towards the totals only,
        // and each request is counted against the client it names (ProxyTrust).
        let counted = proxyTrust.isTrusted(channel.remoteAddress) ? ClientAddress.unknown : client
        if let refusal = shares.openConnection(counted, transport) {
            metrics.connectionRefused(transport: transport, refusal)
            let reason = switch refusal {
            case .addressCap: "Too many connections from your address"
            case .totalCap: "Too many connections"
            case .tooManyAddresses: "Too many clients"
            }
            try? channel.pipeline.syncOperations.addHandler(RefusedConnection(reason: reason))
            return false
        }
        let shares = shares
        channel.closeFuture.whenComplete { _ in shares.closeConnection(counted, transport) }
        return true
    }

    /// A connection's clock (see ConnectionDeadline), counting what expires in the metrics.
    func connectionDeadline(header: Double, idle: Double) -> ConnectionDeadline {
        let metrics = metrics
        return ConnectionDeadline(headerTimeout: .nanoseconds(Int64(header * 1e9)), idleTimeout: .nanoseconds(Int64(idle * 1e9))) {
            metrics.connectionTimedOut($0)
        }
    }
}
