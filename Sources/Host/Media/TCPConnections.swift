import AtriumJSON
import Foundation
import PluginAPI
import RTC
#if canImport(Glibc)
import Glibc
#endif

/// A media loop's ICE-TCP side (RFC 6544, passive): accepting connections, reading their frames
/// into the loop's receive buffer, and closing those that are not, or are no longer, a peer's path.
extension MediaEngine {
    /// Connections open at most; past this, new ones are closed at once.
    static let maximumTCPConnections = 2_048
    /// How long a connection may stay without a valid binding request.
    static let unboundTCPTimeout: UInt64 = 10_000_000_000

    func accept(from listener: TCPListener, now: UInt64) {
        for _ in 0..<64 {
            guard let (fd, remote) = listener.accept() else { return }
            guard connections.count < Self.maximumTCPConnections else {
                Glibc.close(fd)
                metrics.dropped.add(1, ordering: .relaxed)
                continue
            }
            connections[fd] = TCPConnection(fd: fd, remote: remote, now: now)
            metrics.tcpConnections.store(connections.count, ordering: .relaxed)
            pollSetStale = true
        }
    }

    /// Reads a connection's frames (a bounded number of reads, so one sender cannot hold the
    /// thread) and writes what waited for room.
    func serve(_ connection: TCPConnection, events: Int16) {
        if events & Int16(POLLOUT) != 0 {
            guard connection.flush() else { return drop(connection) }
            if !connection.wantsWrite { pollSetStale = true }
        }
        guard events & Int16(POLLIN | POLLHUP | POLLERR) != 0 else { return }
        for _ in 0..<8 {
            let result = connection.read(into: tcpScratch)
            while !connection.isClosed, let length = connection.framer.nextFrame({ frame -> Int in
                guard frame.count <= receiveBuffer.count else { return -1 }
                UnsafeMutableRawBufferPointer(rebasing: receiveBuffer[0..<frame.count]).copyMemory(from: frame)
                return frame.count
            }) {
                metrics.received.add(1, ordering: .relaxed)
                if length < 0 {
                    // Larger than any packet we take: skipped, and the end of a connection
                    // that has not passed a check yet.
                    metrics.dropped.add(1, ordering: .relaxed)
                    if connection.peer == nil { drop(connection) }
                } else {
                    packet(length: length, path: connection.path, peer: connection.peer, connection: connection, now: monotonicNanoseconds())
                }
            }
            switch result {
            case .more: continue
            case .drained: return
            case .closed: return drop(connection)
            }
        }
    }

    /// Closes a connection and forgets it (its PeerConnection keeps any other path).
    func drop(_ connection: TCPConnection) {
        guard !connection.isClosed else { return }
        connections.removeValue(forKey: connection.fd)
        connection.closeSocket()
        if let peer = connection.peer {
            peer.connections.removeValue(forKey: connection.remote)
            peer.paths.remove(connection.path)
        }
        metrics.tcpConnections.store(connections.count, ordering: .relaxed)
        pollSetStale = true
    }
}
