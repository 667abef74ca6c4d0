import AtriumJSON
import Dispatch
import Foundation
import Logging
import PluginAPI
import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One media loop (`MediaLoops` runs `media.threads` of them): a thread that owns its UDP port, its
/// ICE-TCP port and connections, and the PeerConnections placed on it. Packets are read,
/// demultiplexed, decrypted in the one receive buffer and handed to plugins on this thread; what
/// plugins relay is encrypted in the one send buffer. Control threads reach the PeerConnections
/// only through `post`/`sync`, so the state below is the thread's alone and takes no lock.
///
/// This file is the loop itself (thread, tasks, poll) and the PeerConnection registry; the rest is
/// by job: TCPConnections (ICE-TCP), IncomingPackets, OutgoingPackets (the plugin media bridge),
/// MediaTimers (DTLS, consent, RTCP reports), PeerEvents, Taps and Negotiation.
final class MediaEngine: @unchecked Sendable {
    /// Which of the host's media loops this is (`MediaLoops.engines[index]`).
    let index: Int
    let config: HostConfig.Media
    let logger: Logger
    let certificate: DTLSCertificate
    let fingerprint: Fingerprint
    let addresses: [IPAddress]
    /// Opened by `start` (so `check-config` binds nothing); read-only afterwards.
    private(set) var socket: UDPSocket!
    /// The ICE-TCP listener, if `media.tcp_port` is set; opened by `start` like the socket.
    private(set) var listener: TCPListener?
    let metrics = MediaMetrics()
    weak var core: HostCore?

    /// The thread, its wake pipe and the tasks posted to it.
    private let pollThread: PollThread

    // Owned by the media thread.
    var peersByHandle: [UInt: PeerConnection] = [:]
    var peersByUfrag: [String: PeerConnection] = [:]
    var peersByAddress: [TransportAddress: PeerConnection] = [:]
    var connections: [Int32: TCPConnection] = [:]
    /// The poll set: the UDP socket, the wake pipe, the listener, then each TCP connection.
    private var pollSet: [pollfd] = []
    var pollSetStale = true
    let tcpScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    let sendBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    /// A stored packet on its way to being resent on a repair stream.
    let repairScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    /// PeerConnections with a probe cluster running, by handle address: the poll wakes for them.
    var probing: [UInt: PeerConnection] = [:]
    /// PeerConnections with arrivals their next transport feedback tells, by handle address.
    var feedbackDue: [UInt: PeerConnection] = [:]
    var lastFeedbackTick: UInt64 = 0
    /// PeerConnections with packets missing from what they send, by handle address.
    var lossesDue: [UInt: PeerConnection] = [:]
    var lastLossTick: UInt64 = 0
    /// Plugins offering the tap extension (set before start), and the tap streams by id.
    var tapPlugins: [LoadedPlugin] = []
    var tapStreamsByID: [UInt64: TapStream] = [:]
    private var lastTapStreamID: UInt64 = 0
    var lastSlowTick: UInt64 = 0
    var lastReportTick: UInt64 = 0
    /// False once a scan found no DTLS handshake in progress, until DTLS moves again: the timer
    /// scans then skip the peers (they ran on every wake-up, over every peer).
    var handshakesMayRun = true
    /// While a received packet is handled: its arrival time, which the plugins' relays of it
    /// share (one clock read per packet rather than per copy sent).
    var packetArrival: UInt64?
    /// Received packets counted: while one is handled (`packetArrival` set) its count names it, so
    /// that the relays of one received packet share its payload in `sharedPayloads`.
    var packetsHandled: UInt64 = 0
    /// The payloads of what plugins fan out, kept once for every subscriber's retransmissions.
    let sharedPayloads = SharedPayloads()

    /// `certificate` and `addresses` are the host's (`MediaLoops`): every loop shows peers the same.
    init(index: Int, config: HostConfig.Media, certificate: DTLSCertificate, addresses: [IPAddress], logger: Logger) throws(MediaSocketError) {
        self.index = index
        self.config = config
        var mediaLogger = logger
        mediaLogger[metadataKey: "component"] = "media"
        if config.threads > 1 { mediaLogger[metadataKey: "loop"] = "\(index)" }
        self.logger = mediaLogger
        self.certificate = certificate
        fingerprint = Fingerprint(algorithm: "sha-256", hex: certificate.fingerprint)
        self.addresses = addresses
        do {
            pollThread = try PollThread()
        } catch {
            throw MediaSocketError(description: "\(error)")
        }
    }

    deinit {
        receiveBuffer.deallocate()
        tcpScratch.deallocate()
        sendBuffer.deallocate()
        repairScratch.deallocate()
    }

    var candidates: [Candidate] {
        LocalTransport.hostCandidates(addresses: addresses, udpPort: socket.port, tcpPort: listener?.port)
    }

    // MARK: - Thread

    func start() throws(MediaSocketError) {
        socket = try UDPSocket(bind: config.bind, port: config.udpPort(loop: index))
        if let tcpPort = config.tcpPort(loop: index) { listener = try TCPListener(bind: config.bind, port: tcpPort) }
        let name = config.threads > 1 ? "atrium-media-\(index)" : "atrium-media"
        pollThread.start(name: name, setUp: { [self] in
            pthread_setspecific(Self.currentKey, Unmanaged.passUnretained(self).toOpaque())
        }) { [self] in iterate() }
        let tcp = listener.map { ", ICE-TCP port \($0.port)" } ?? ""
        logger.info("media on UDP port \(socket.port)\(tcp), advertising \(addresses.map(\.description).joined(separator: ", "))")
    }

    /// Stops the thread after closing every PeerConnection (no events: the host is going away).
    func stop() {
        pollThread.stop { [self] in
            for peer in Array(peersByHandle.values) { close(peer, reason: .detach, notifyClient: false, notifyPlugin: false) }
            for connection in Array(connections.values) { drop(connection) }
        }
    }

    /// Tap stream ids carry their loop in the top 16 bits, so any thread finds the loop of a stream
    /// a tap plugin names (`MediaLoops.engine(ofTapStream:)`), and ids stay unique across loops.
    func nextTapStreamID() -> UInt64 {
        lastTapStreamID += 1
        return UInt64(index) << Self.tapLoopShift | lastTapStreamID
    }

    static let tapLoopShift: UInt64 = 48

    var isOnMediaThread: Bool { Self.current === self }

    /// The engine whose media thread is the calling thread, if any. A plugin's media call on the
    /// hot path finds its engine here without touching the host's weakly referenced core (whose
    /// side-table reference counting was a few percent of forwarding).
    static var current: MediaEngine? {
        pthread_getspecific(currentKey).map { Unmanaged<MediaEngine>.fromOpaque($0).takeUnretainedValue() }
    }

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-specific key left")
        return key
    }()

    /// Now, as the media path sees it: the arrival time of the packet being handled, if any.
    var mediaNow: UInt64 { packetArrival ?? monotonicNanoseconds() }

    /// The plugin whose [media] callback runs now (its queue tag; 0: none), for the watchdog.
    private let pluginCall = Atomic<UInt>(0)
    /// Since when the thread has been working without returning to poll (0: waiting in poll), so
    /// the watchdog sees a held thread without posting it anything (a probe would wake it).
    private let busySince = Atomic<UInt64>(0)

    /// How long the media thread has been working without a break, in nanoseconds (any thread).
    func heldFor(now: UInt64) -> UInt64 {
        let since = busySince.load(ordering: .relaxed)
        return since == 0 ? 0 : nanoseconds(from: since, to: now)
    }

    /// The plugin whose [media] callback runs now, if any (any thread).
    var pluginInCall: LoadedPlugin? {
        let tag = pluginCall.load(ordering: .relaxed)
        guard tag != 0 else { return nil }
        return core?.plugins.first { $0.queueTag == tag }
    }

    /// Calls into `plugin` on the media thread, noting whom the thread is lent to.
    @inline(__always)
    func calling<T>(_ plugin: LoadedPlugin, _ body: () -> T) -> T {
        pluginCall.store(plugin.queueTag, ordering: .relaxed)
        defer { pluginCall.store(0, ordering: .relaxed) }
        return body()
    }

    /// Plugin media calls queued from other threads that have not run yet.
    private let queuedPluginCalls = Atomic<Int>(0)
    /// The most such calls one loop holds (the header's "Media from any thread" promises this
    /// number): a plugin thread relaying faster than the loop sends is refused, not buffered.
    static let maximumQueuedPluginCalls = 4096

    /// Queues a plugin's media call made off this thread. False, and nothing queued, when the
    /// loop already holds `maximumQueuedPluginCalls` of them.
    func postPluginCall(_ task: @escaping () -> Void) -> Bool {
        guard queuedPluginCalls.wrappingAdd(1, ordering: .relaxed).newValue <= Self.maximumQueuedPluginCalls else {
            queuedPluginCalls.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        post { [self] in
            queuedPluginCalls.wrappingSubtract(1, ordering: .relaxed)
            task()
        }
        return true
    }

    /// Runs `task` on the media thread, soon.
    func post(_ task: @escaping () -> Void) {
        pollThread.post(task)
    }

    /// Runs `body` on the media thread and waits for its result (never call it from a plugin's
    /// [media] callback: it is already on that thread, and runs inline).
    func sync<T>(_ body: @escaping () -> T) -> T {
        if isOnMediaThread || !pollThread.isRunning { return body() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        post {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }

    /// One turn of the loop: wait for packets, posted work or the next timer, then do it all.
    private func iterate() {
        if pollSetStale { rebuildPollSet() }
        busySince.store(0, ordering: .relaxed)
        _ = poll(&pollSet, nfds_t(pollSet.count), pollTimeout(now: monotonicNanoseconds()))
        busySince.store(monotonicNanoseconds(), ordering: .relaxed)
        if pollSet[1].revents != 0 { pollThread.runPosted() }
        if pollSet[0].revents != 0 {
            // A bounded batch, so timers and tasks keep their turn under load. What the batch
            // produces goes out together below: the packets of one frame usually arrive
            // together, so their fan-outs share one sendmmsg (the queue sends by itself when full).
            for _ in 0..<512 {
                guard let (length, from) = socket.receive(into: receiveBuffer) else { break }
                metrics.received.add(1, ordering: .relaxed)
                packet(length: length, path: .udp(from), peer: peersByAddress[from], connection: nil, now: monotonicNanoseconds())
            }
        }
        if let listener {
            for entry in pollSet[3...] where entry.revents != 0 {
                if let connection = connections[entry.fd] { serve(connection, events: entry.revents) }
            }
            // Accepted last, so a number freed above and reused now never gets an old event.
            if pollSet[2].revents != 0 { accept(from: listener, now: monotonicNanoseconds()) }
        }
        tick(now: monotonicNanoseconds())
        flushSends()
    }

    /// Hands the datagrams queued since the last flush to the kernel in one call.
    private func flushSends() {
        let refused = socket.flush()
        if refused > 0 { metrics.sendErrors.add(refused, ordering: .relaxed) }
    }

    private func rebuildPollSet() {
        pollSet = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: pollThread.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        if let listener {
            pollSet.append(pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0))
            for (fd, connection) in connections {
                pollSet.append(pollfd(fd: fd, events: Int16(POLLIN) | (connection.wantsWrite ? Int16(POLLOUT) : 0), revents: 0))
            }
        }
        pollSetStale = false
    }

    // MARK: - PeerConnections

    func peer(for handle: Handle) -> PeerConnection? { peersByHandle[handle.address] }

    /// The PeerConnection of `handleAddress` if it belongs to `plugin` (media thread).
    func peer(address: UInt, plugin: LoadedPlugin) -> PeerConnection? {
        guard let p = peersByHandle[address], p.plugin === plugin else { return nil }
        return p
    }

    func register(_ peer: PeerConnection) {
        peer.tapLabels = core?.tapLabels(of: peer.handle)
        peersByHandle[peer.handle.address] = peer
        peersByUfrag[peer.ice.local.ufrag] = peer
        metrics.peers.store(peersByHandle.count, ordering: .relaxed)
    }

    /// Takes the handle's PeerConnection off this loop if no packet can have been sent to it yet:
    /// the client's offer is accepted, the answer (with this loop's candidates) not sent, no path
    /// checked. Nil, and nothing changed, otherwise.
    func releaseUnanswered(_ handle: Handle) -> PeerConnection? {
        guard let peer = peer(for: handle), peer.awaitingLocalAnswer, peer.paths.isEmpty, peer.connections.isEmpty, !peer.webrtcUp else { return nil }
        peersByHandle.removeValue(forKey: handle.address)
        peersByUfrag.removeValue(forKey: peer.ice.local.ufrag)
        metrics.peers.store(peersByHandle.count, ordering: .relaxed)
        return peer
    }

    /// A PeerConnection another loop released (`releaseUnanswered`), on this loop from now on. If a
    /// request made the handle a new one here meanwhile, that one stays and the moved one ends.
    func adopt(_ peer: PeerConnection) {
        guard self.peer(for: peer.handle) == nil else { return }
        register(peer)
    }

    func replaceUfrag(_ peer: PeerConnection, old: String) {
        peersByUfrag.removeValue(forKey: old)
        peersByUfrag[peer.ice.local.ufrag] = peer
    }

    /// Forgets a peer's UDP paths but `keep` (an ICE restart: the peer moved, and the paths it
    /// left would otherwise count against maximumPathsPerPeer for good). TCP paths go when their
    /// connection closes.
    func forgetPaths(of peer: PeerConnection, except keep: IcePath?) {
        for path in peer.paths where path != keep && path.transport == .udp {
            peer.paths.remove(path)
            if peersByAddress[path.address] === peer { peersByAddress.removeValue(forKey: path.address) }
        }
    }

    /// Ends the taps and statistics of SSRCs a renegotiation no longer announces.
    func forget(_ gone: [(stream: MediaStream, ssrc: UInt32)]) {
        for (stream, ssrc) in gone {
            stream.statistics.removeValue(forKey: ssrc)
            stream.missing.removeValue(forKey: ssrc)
            if let tap = stream.taps.removeValue(forKey: ssrc) { endTap(tap) }
        }
    }

    /// Ends a PeerConnection: close_notify to the peer, and (as asked) the client's `hangup` event
    /// and the plugin's hangup_media.
    func close(_ peer: PeerConnection, reason: HangupReason, notifyClient: Bool, notifyPlugin: Bool) {
        guard !peer.closed else { return }
        peer.closed = true
        peersByHandle.removeValue(forKey: peer.handle.address)
        probing.removeValue(forKey: peer.handle.address)
        feedbackDue.removeValue(forKey: peer.handle.address)
        lossesDue.removeValue(forKey: peer.handle.address)
        peer.handle.bandwidthEstimate.store(0, ordering: .relaxed)
        peersByUfrag.removeValue(forKey: peer.ice.local.ufrag)
        for path in peer.paths where path.transport == .udp && peersByAddress[path.address] === peer {
            peersByAddress.removeValue(forKey: path.address)
        }
        metrics.peers.store(peersByHandle.count, ordering: .relaxed)
        endTaps(of: peer)
        if let dtls = peer.dtls, let to = peer.ice.selected { sendAll(dtls.close(), on: to, of: peer) }
        for connection in Array(peer.connections.values) {
            _ = connection.flush()
            drop(connection)
        }
        logger.debug("PeerConnection closed", metadata: ["handle": "\(peer.handle.id)", "reason": "\(reason.text)"])
        if notifyClient { emit("hangup", ["reason": .string(reason.text)], for: peer) }
        if notifyPlugin {
            let handle = peer.handle
            handle.plugin.onControl(handle) { $0.hangupMedia(handle, reason: reason.code) }
        }
    }
}
