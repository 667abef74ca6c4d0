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

/// The host's media: one thread that owns the UDP port, the ICE-TCP port and its connections, and
/// every PeerConnection. Packets are read, demultiplexed (known address or connection, else the ICE
/// ufrag of a binding request), decrypted in the one receive buffer and handed to plugins on this
/// thread; what plugins relay is encrypted in the one send buffer. Control threads reach the
/// PeerConnections only through `post`/`sync`.
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

    /// A pipe that wakes the thread when a task is posted: read end polled, write end written.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let tasks = Mutex<[MediaTask]>([])
    private let running = Atomic<Bool>(false)
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)

    // Owned by the media thread.
    private var peersByHandle: [UInt: PeerConnection] = [:]
    private var peersByUfrag: [String: PeerConnection] = [:]
    private var peersByAddress: [TransportAddress: PeerConnection] = [:]
    private var connections: [Int32: TCPConnection] = [:]
    /// The poll set: the UDP socket, the wake pipe, the listener, then each TCP connection.
    private var pollSet: [pollfd] = []
    private var pollSetStale = true
    private let tcpScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    private let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    private let sendBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    /// Plugins offering the tap extension (set before start), and the tap streams by id.
    var tapPlugins: [LoadedPlugin] = []
    var tapStreamsByID: [UInt64: TapStream] = [:]
    private var lastTapStreamID: UInt64 = 0
    private var lastSlowTick: UInt64 = 0
    private var lastReportTick: UInt64 = 0
    /// False once a scan found no DTLS handshake in progress, until DTLS moves again: the timer
    /// scans then skip the peers (they ran on every wake-up, over every peer).
    private var handshakesMayRun = true
    /// While a received packet is handled: its arrival time, which the plugins' relays of it
    /// share (one clock read per packet rather than per copy sent).
    private var packetArrival: UInt64?
    /// Received packets counted: while one is handled (`packetArrival` set) its count names it, so
    /// that the relays of one received packet share its payload in `sharedPayloads`.
    private var packetsHandled: UInt64 = 0
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
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            throw MediaSocketError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        receiveBuffer.deallocate()
        tcpScratch.deallocate()
        sendBuffer.deallocate()
    }

    var candidates: [Candidate] {
        LocalTransport.hostCandidates(addresses: addresses, udpPort: socket.port, tcpPort: listener?.port)
    }

    // MARK: - Thread

    func start() throws(MediaSocketError) {
        socket = try UDPSocket(bind: config.bind, port: config.udpPort(loop: index))
        if let tcpPort = config.tcpPort(loop: index) { listener = try TCPListener(bind: config.bind, port: tcpPort) }
        running.store(true, ordering: .sequentiallyConsistent)
        let t = Thread { [self] in
            pthread_setspecific(Self.currentKey, Unmanaged.passUnretained(self).toOpaque())
            run()
            pthread_setspecific(Self.currentKey, nil)
            stopped.signal()
        }
        t.name = config.threads > 1 ? "atrium-media-\(index)" : "atrium-media"
        thread = t
        t.start()
        let tcp = listener.map { ", ICE-TCP port \($0.port)" } ?? ""
        logger.info("media on UDP port \(socket.port)\(tcp), advertising \(addresses.map(\.description).joined(separator: ", "))")
    }

    /// Stops the thread after closing every PeerConnection (no events: the host is going away).
    func stop() {
        guard running.load(ordering: .sequentiallyConsistent) else { return }
        post { [self] in
            for peer in Array(peersByHandle.values) { close(peer, reason: .detach, notifyClient: false, notifyPlugin: false) }
            for connection in Array(connections.values) { drop(connection) }
            running.store(false, ordering: .sequentiallyConsistent)
        }
        stopped.wait()
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
        let wrapped = MediaTask(run: task)
        tasks.withLock { $0.append(wrapped) }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    /// Runs `body` on the media thread and waits for its result (never call it from a plugin's
    /// [media] callback: it is already on that thread, and runs inline).
    func sync<T>(_ body: @escaping () -> T) -> T {
        if isOnMediaThread || !running.load(ordering: .sequentiallyConsistent) { return body() }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: T?
        post {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }

    private func run() {
        while running.load(ordering: .relaxed) {
            if pollSetStale { rebuildPollSet() }
            busySince.store(0, ordering: .relaxed)
            _ = poll(&pollSet, nfds_t(pollSet.count), pollTimeout(now: monotonicNanoseconds()))
            busySince.store(monotonicNanoseconds(), ordering: .relaxed)
            if pollSet[1].revents != 0 {
                var drain = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
                _ = withUnsafeMutableBytes(of: &drain) { read(wakeRead, $0.baseAddress, $0.count) }
                let pending = tasks.withLock { t in
                    defer { t.removeAll() }
                    return t
                }
                for task in pending { task.run() }
            }
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
    }

    /// Hands the datagrams queued since the last flush to the kernel in one call.
    private func flushSends() {
        let refused = socket.flush()
        if refused > 0 { metrics.sendErrors.add(refused, ordering: .relaxed) }
    }

    private func rebuildPollSet() {
        pollSet = [pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if let listener {
            pollSet.append(pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0))
            for (fd, connection) in connections {
                pollSet.append(pollfd(fd: fd, events: Int16(POLLIN) | (connection.wantsWrite ? Int16(POLLOUT) : 0), revents: 0))
            }
        }
        pollSetStale = false
    }

    // MARK: - ICE-TCP connections

    /// Connections open at most; past this, new ones are closed at once.
    static let maximumTCPConnections = 2_048
    /// How long a connection may stay without a valid binding request.
    static let unboundTCPTimeout: UInt64 = 10_000_000_000

    private func accept(from listener: TCPListener, now: UInt64) {
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
    private func serve(_ connection: TCPConnection, events: Int16) {
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
    private func drop(_ connection: TCPConnection) {
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

    // MARK: - Incoming packets

    /// One packet from a UDP datagram or an ICE-TCP frame, in the receive buffer. `peer` is the
    /// PeerConnection its path already belongs to, if any.
    private func packet(length: Int, path: IcePath, peer known: PeerConnection?, connection: TCPConnection?, now: UInt64) {
        let bytes = UnsafeMutableRawBufferPointer(rebasing: receiveBuffer[0..<length])
        let kind = PacketKind.classify(UnsafeRawBufferPointer(bytes))
        packetArrival = now
        packetsHandled &+= 1
        defer { packetArrival = nil }
        guard let peer = known else {
            // A stranger may only start with a binding request naming a ufrag we handed out.
            if kind == .stun, let parsed = try? STUNMessage.parse(Array(bytes)), let ufrag = IceLiteAgent.localUfrag(of: parsed),
                let peer = peersByUfrag[ufrag]
            {
                stun(parsed, peer: peer, path: path, connection: connection, now: now)
            } else {
                metrics.dropped.add(1, ordering: .relaxed)
            }
            // A connection is for ICE: one whose first frame is not a valid check is closed.
            if let connection, connection.peer == nil { drop(connection) }
            return
        }
        switch kind {
        case .stun:
            if let parsed = try? STUNMessage.parse(Array(bytes)) {
                stun(parsed, peer: peer, path: path, connection: connection, now: now)
            } else {
                metrics.dropped.add(1, ordering: .relaxed)
            }
        case .dtls: dtls(Array(bytes), peer: peer, path: path)
        case .rtp: rtp(bytes, peer: peer, now: now)
        case .rtcp: rtcp(bytes, peer: peer, now: now)
        case .unknown: metrics.dropped.add(1, ordering: .relaxed)
        }
    }

    /// Paths (remote address and transport) one peer may use; a peer that knows its credentials
    /// could otherwise answer checks from ever new ports and grow the address tables. Browsers use
    /// a handful, a few more after network changes.
    static let maximumPathsPerPeer = 32

    private func stun(_ message: ParsedSTUNMessage, peer: PeerConnection, path: IcePath, connection: TCPConnection?, now: UInt64) {
        guard peer.paths.count < Self.maximumPathsPerPeer || peer.paths.contains(path) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let wasConnected = peer.ice.state == .connected
        switch peer.ice.handle(message, from: path, now: now) {
        case .respond(let response):
            if !peer.paths.contains(path) {
                peer.paths.insert(path)
                if let connection {
                    connection.peer = peer
                    peer.connections[connection.remote] = connection
                } else {
                    peersByAddress[path.address] = peer
                }
            }
            response.withUnsafeBytes { _ = send($0, on: path, of: peer) }
            if !wasConnected, peer.ice.state == .connected, peer.dtlsRole == .client, let dtls = peer.dtls {
                sendAll(dtls.start(), on: path, of: peer)
            }
        case .ignore:
            metrics.dropped.add(1, ordering: .relaxed)
        }
    }

    private func dtls(_ bytes: [UInt8], peer: PeerConnection, path: IcePath) {
        handshakesMayRun = true
        guard let dtls = peer.dtls else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        sendAll(dtls.receive(bytes), on: peer.ice.selected ?? path, of: peer)
        dtlsStateChanged(peer)
    }

    private func dtlsStateChanged(_ peer: PeerConnection) {
        guard let dtls = peer.dtls else { return }
        switch dtls.state {
        case .connected where !peer.webrtcUp:
            guard let keys = dtls.keys, let inbound = try? keys.inbound(), let outbound = try? keys.outbound() else {
                close(peer, reason: .dtlsError, notifyClient: true, notifyPlugin: true)
                return
            }
            peer.inbound = inbound
            peer.outbound = outbound
            peer.webrtcUp = true
            logger.debug("webrtcup", metadata: ["handle": "\(peer.handle.id)", "srtp": "\(keys.profile)"])
            emit("webrtcup", for: peer)
            let handle = peer.handle
            handle.plugin.onControl(handle) { $0.setupMedia(handle) }
        case .closed:
            close(peer, reason: .dtlsAlert, notifyClient: true, notifyPlugin: true)
        case .failed(let why):
            logger.info("DTLS failed", metadata: ["handle": "\(peer.handle.id)", "reason": "\(why)"])
            close(peer, reason: .dtlsError, notifyClient: true, notifyPlugin: true)
        default:
            break
        }
    }

    private func rtp(_ bytes: UnsafeMutableRawBufferPointer, peer: PeerConnection, now: UInt64) {
        guard let inbound = peer.inbound, let length = try? inbound.unprotect(bytes, length: bytes.count),
            let packet = try? RTPPacketView(buffer: bytes, length: length),
            let stream = peer.resolveStream(packet, maxSSRCsPerStream: config.maxSSRCsPerStream)
        else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let ssrc = packet.ssrc
        // SSRCs the description announced skip resolveStream's bound; this one holds for all (the
        // second lookup only happens once a stream tracks its maximum).
        guard stream.statistics.count < config.maxSSRCsPerStream || stream.statistics[ssrc] != nil else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        stream.statistics[ssrc, default: RTPReceiveStatistics(ssrc: ssrc, clockRate: stream.clockRates[packet.payloadType] ?? (stream.isVideo ? 90_000 : 48_000))]
            .update(sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, arrivalNanos: now)
        stream.lastPacketAt = now
        if !stream.receiving {
            stream.receiving = true
            mediaStateChanged(peer, stream)
        }
        metrics.rtpIn.add(1, ordering: .relaxed)
        if let incoming = peer.plugin.table.incoming_rtp { deliver(bytes, length: length, packet: packet, stream: stream, peer: peer, to: incoming) }
        if peer.tapLabels != nil && !tapPlugins.isEmpty {
            tap(UnsafeRawBufferPointer(rebasing: bytes[0..<length]), packet: packet, peer: peer, stream: stream, now: now)
        }
    }

    private func deliver(_ bytes: UnsafeMutableRawBufferPointer, length: Int, packet: RTPPacketView, stream: MediaStream, peer: PeerConnection,
                         to incoming: @convention(c) (UnsafePointer<atrium_plugin_t>, UnsafeMutablePointer<atrium_handle_t>, UnsafePointer<atrium_rtp_packet_t>) -> Void) {
        var p = atrium_rtp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtp_packet_t>.size), mindex: Int32(stream.index), is_video: stream.isVideo ? 1 : 0,
            buffer: UnsafePointer(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)), length: UInt32(length),
            audio_level: -1, audio_voice: -1, video_rotation: -1, mid: UnsafePointer(stream.midCString), rid: nil)
        if stream.incomingAudioLevelID != 0, let level = packet.audioLevel(id: stream.incomingAudioLevelID) {
            p.audio_level = Int32(level.level)
            p.audio_voice = level.voice ? 1 : 0
        }
        if stream.incomingOrientationID != 0, let (o, n) = packet.headerExtension(id: stream.incomingOrientationID), n >= 1 {
            p.video_rotation = Int32(bytes[o] & 0x03) * 90
        }
        if stream.incomingRidID != 0, let rid = packet.headerExtensionString(id: stream.incomingRidID) {
            p.rid = stream.ridCString(rid, limit: config.sdpLimits.ridsPerSection)
        }
        calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
    }

    private func rtcp(_ bytes: UnsafeMutableRawBufferPointer, peer: PeerConnection, now: UInt64) {
        guard let inbound = peer.inbound, let length = try? inbound.unprotectRTCP(bytes, length: bytes.count) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        let plain = UnsafeRawBufferPointer(rebasing: bytes[0..<length])
        guard let packets = try? RTCPPacket.parseCompound(plain) else {
            metrics.dropped.add(1, ordering: .relaxed)
            return
        }
        var answeredNACK = false
        var about: MediaStream?
        var reported: [UInt32] = []
        for packet in packets {
            switch packet {
            case .senderReport(let sr):
                reported.append(sr.ssrc)
                if let i = peer.streamBySSRC[sr.ssrc], i < peer.streams.count {
                    peer.streams[i].statistics[sr.ssrc]?.senderReportReceived(compactNTP: sr.compactNTPTimestamp, at: now)
                    about = about ?? peer.streams[i]
                }
            case .genericNACK(let nack):
                if let stream = peer.streams.first(where: { $0.sends && $0.localSSRC == nack.mediaSSRC }) {
                    let lost = nack.lostSequenceNumbers
                    stream.nackedThisInterval &+= UInt32(lost.count)
                    for seq in lost { retransmit(peer, stream, sequenceNumber: seq, now: now) }
                    answeredNACK = true
                }
            case .pictureLossIndication(let pli):
                about = about ?? peer.streams.first { $0.localSSRC == pli.mediaSSRC }
            case .fullIntraRequest(let fir):
                about = about ?? peer.streams.first { s in fir.entries.contains { $0.ssrc == s.localSSRC } }
            default:
                break
            }
        }
        if !reported.isEmpty { tapRTCP(plain, reportedSSRCs: reported, peer: peer, now: now) }
        guard let incoming = peer.plugin.table.incoming_rtcp else { return }
        var p = atrium_rtcp_packet_t(
            struct_size: UInt32(MemoryLayout<atrium_rtcp_packet_t>.size), mindex: Int32(about?.index ?? -1),
            is_video: about?.isVideo == true ? 1 : 0, buffer: plain.baseAddress!.assumingMemoryBound(to: UInt8.self), length: UInt32(length))
        if answeredNACK {
            // NACKs the host answered are its business; the plugin sees the rest.
            let rest = packets.filter { if case .genericNACK = $0 { false } else { true } }
            guard !rest.isEmpty, let encoded = try? RTCPPacket.encodeCompound(rest) else { return }
            encoded.withUnsafeBufferPointer { b in
                p.buffer = b.baseAddress!
                p.length = UInt32(b.count)
                calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
            }
        } else {
            calling(peer.plugin) { incoming(peer.plugin.pluginPointer, peer.handle.raw, &p) }
        }
    }

    // MARK: - Outgoing

    /// Sends one packet on a path of `peer`: a datagram, or a frame on its ICE-TCP connection.
    @discardableResult
    private func send(_ bytes: UnsafeRawBufferPointer, on path: IcePath, of peer: PeerConnection) -> Bool {
        switch path.transport {
        case .udp:
            return socket.send(bytes, to: path.address)
        case .tcp:
            guard let connection = peer.connections[path.address] else { return false }
            let sent = connection.send(bytes)
            if connection.wantsWrite { pollSetStale = true }
            return sent
        }
    }

    /// Sends DTLS's datagrams (a flight it starts, answers or repeats, or its close).
    func sendAll(_ packets: [[UInt8]], on path: IcePath, of peer: PeerConnection) {
        handshakesMayRun = true
        for p in packets { p.withUnsafeBytes { _ = send($0, on: path, of: peer) } }
    }

    /// Where a packet for the peer is built: over UDP straight in the next datagram of the send
    /// batch (protected in place, no copy), else in the send buffer. `protectAndSend` sends it.
    private func outgoingBuffer(for peer: PeerConnection) -> UnsafeMutableRawBufferPointer {
        peer.ice.selected?.transport == .udp ? socket.reserve() : sendBuffer
    }

    /// Protects `length` plain RTP (or RTCP) bytes that `outgoingBuffer` gave and sends them to the peer.
    private func protectAndSend(_ peer: PeerConnection, _ buffer: UnsafeMutableRawBufferPointer, length: Int, rtcp: Bool) {
        guard let outbound = peer.outbound, let to = peer.ice.selected else { return }
        let n: Int
        do {
            n = rtcp ? try outbound.protectRTCP(buffer, length: length) : try outbound.protect(buffer, length: length)
        } catch {
            metrics.sendErrors.add(1, ordering: .relaxed)
            return
        }
        if to.transport == .udp {  // built in the batch's slot (outgoingBuffer)
            socket.commit(n, to: to.address)
            metrics.sent.add(1, ordering: .relaxed)
        } else if send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), on: to, of: peer) {
            metrics.sent.add(1, ordering: .relaxed)
        } else {
            metrics.sendErrors.add(1, ordering: .relaxed)
        }
    }

    /// A plugin's RTP for the peer (on the media thread).
    func sendRTP(_ peer: PeerConnection, _ packet: UnsafePointer<atrium_rtp_packet_t>, now: UInt64) -> Int32 {
        guard peer.isConnected else { return ATRIUM_ERR_STATE }
        // A plugin built against an older minor may pass a shorter struct: read what it wrote.
        let declared = packet.pointee.struct_size
        let p = declared >= MemoryLayout<atrium_rtp_packet_t>.size ? packet.pointee : copyTable(packet, declaredSize: declared, as: atrium_rtp_packet_t.self)
        let buffer = p.buffer
        guard p.length >= 12, p.length <= 1500 else { return ATRIUM_ERR_INVALID_ARGUMENT }
        guard let stream = peer.outgoingStream(mindex: p.mindex, isVideo: p.is_video != 0) else { return ATRIUM_ERR_NOT_FOUND }
        let source = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: buffer), count: Int(p.length))
        guard let view = try? RTPPacketView(buffer: source, length: Int(p.length)) else { return ATRIUM_ERR_INVALID_ARGUMENT }
        var values = OutgoingExtensionValues()
        let ids = stream.outgoingIDs
        if ids.mid != 0 { values.mid = stream.midBytes }
        if p.audio_level >= 0 { values.audioLevel = (p.audio_voice == 1, UInt8(clamping: p.audio_level)) }
        if p.video_rotation >= 0 { values.videoOrientation = UInt8((p.video_rotation / 90) & 3) }
        if ids.absSendTime != 0 { values.absSendTime = OutgoingRTP.absSendTime(nanos: now) }
        if ids.transportWideCC != 0 {
            peer.transportSequence &+= 1
            values.transportSequence = peer.transportSequence
        }
        let out = outgoingBuffer(for: peer)
        let capacity = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
        guard let length = OutgoingRTP.write(view, ssrc: stream.localSSRC, ids: ids, values: values, into: capacity) else {
            return ATRIUM_OK  // padding-only: nothing to forward
        }
        stream.packetsSent &+= 1
        stream.octetsSent &+= UInt32(view.payloadLength)
        stream.lastRTPTimestamp = view.timestamp
        stream.lastSentAt = now
        if let retransmissions = stream.retransmissions {
            let plain = UnsafeRawBufferPointer(rebasing: out[0..<length])
            // Outside a received packet's handling there is nothing to share with (key 0).
            let key = packetArrival == nil ? 0 : packetsHandled
            let share = sharedPayloads.share(plain, payloadLength: view.payloadLength, key: key, now: now)
            retransmissions.store(plain, sequenceNumber: view.sequenceNumber, now: now, sharing: share)
        }
        metrics.rtpOut.add(1, ordering: .relaxed)
        protectAndSend(peer, out, length: length, rtcp: false)
        return ATRIUM_OK
    }

    private func retransmit(_ peer: PeerConnection, _ stream: MediaStream, sequenceNumber: UInt16, now: UInt64) {
        let out = outgoingBuffer(for: peer)
        let room = UnsafeMutableRawBufferPointer(rebasing: out[0..<(out.count - SRTPContext.maximumTrailer)])
        guard let length = stream.retransmissions?.copy(sequenceNumber: sequenceNumber, now: now, into: room) else { return }
        metrics.retransmitted.add(1, ordering: .relaxed)
        protectAndSend(peer, out, length: length, rtcp: false)
    }

    /// A plugin's plain RTCP for the peer: checked to be well-formed compound RTCP, then sent.
    func sendRTCP(_ peer: PeerConnection, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        guard peer.isConnected else { return ATRIUM_ERR_STATE }
        guard bytes.count >= 8, (try? RTCPPacket.parseCompound(bytes)) != nil else { return ATRIUM_ERR_INVALID_ARGUMENT }
        return sendPlainRTCP(peer, bytes) ? ATRIUM_OK : ATRIUM_ERR_INVALID_ARGUMENT
    }

    /// The host's own RTCP (reports, PLI, REMB): encoded here, so not parsed again.
    func sendRTCP(_ peer: PeerConnection, packets: [RTCPPacket]) {
        guard peer.isConnected, let encoded = try? RTCPPacket.encodeCompound(packets) else { return }
        _ = encoded.withUnsafeBytes { sendPlainRTCP(peer, $0) }
    }

    private func sendPlainRTCP(_ peer: PeerConnection, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let out = outgoingBuffer(for: peer)
        guard bytes.count <= out.count - SRTPContext.maximumTrailer else { return false }
        UnsafeMutableRawBufferPointer(rebasing: out[0..<bytes.count]).copyMemory(from: bytes)
        protectAndSend(peer, out, length: bytes.count, rtcp: true)
        return true
    }

    func requestKeyframe(_ peer: PeerConnection, mindex: Int32, now: UInt64) {
        guard peer.isConnected else { return }
        var packets: [RTCPPacket] = []
        for stream in peer.streams where stream.isVideo && (mindex < 0 || stream.index == Int(mindex)) {
            // Throttled: a burst of requests from a plugin becomes one PLI per 300 ms.
            guard nanoseconds(from: stream.lastKeyframeRequestAt, to: now) > 300_000_000 else { continue }
            stream.lastKeyframeRequestAt = now
            for ssrc in stream.statistics.keys {
                packets.append(.pictureLossIndication(PictureLossIndication(senderSSRC: peer.hostSSRC, mediaSSRC: ssrc)))
            }
        }
        if !packets.isEmpty { sendRTCP(peer, packets: packets) }
    }

    func sendREMB(_ peer: PeerConnection, bitrate: UInt64) {
        peer.rembBitrate = bitrate
        guard peer.isConnected, let remb = remb(peer) else { return }
        sendRTCP(peer, packets: [remb])
    }

    private func remb(_ peer: PeerConnection) -> RTCPPacket? {
        guard peer.rembBitrate > 0 else { return nil }
        let ssrcs = peer.streams.flatMap { $0.statistics.keys }
        guard !ssrcs.isEmpty else { return nil }
        return .remb(REMB(senderSSRC: peer.hostSSRC, bitrate: min(peer.rembBitrate, REMB.maximumBitrate), ssrcs: Array(ssrcs.prefix(255))))
    }

    // MARK: - Timers

    /// Milliseconds until the next timer is due (a DTLS retransmission, the slow tick, the
    /// reports), at least 1: an idle media thread wakes only when there is work, not every 20 ms.
    private func pollTimeout(now: UInt64) -> Int32 {
        let due = min(lastSlowTick + Self.slowTickNanos, lastReportTick + Self.reportNanos)
        var ms = due > now ? Int((due - now) / 1_000_000) + 1 : 1
        if handshakesMayRun {
            for peer in peersByHandle.values {
                // Only a timer `tick` can act on: one without a selected path waits (no 1 ms spin).
                if let dtls = peer.dtls, dtls.state == .connecting, peer.ice.selected != nil, let t = dtls.timeoutMilliseconds { ms = min(ms, t) }
            }
        }
        return Int32(max(1, ms))
    }

    static let slowTickNanos: UInt64 = 250_000_000
    static let reportNanos: UInt64 = 1_000_000_000

    private func tick(now: UInt64) {
        if handshakesMayRun {
            var connecting = false
            for peer in peersByHandle.values {
                guard let dtls = peer.dtls, dtls.state == .connecting else { continue }
                connecting = true
                guard let ms = dtls.timeoutMilliseconds, ms == 0, let to = peer.ice.selected else { continue }
                sendAll(dtls.handleTimeout(), on: to, of: peer)
                dtlsStateChanged(peer)
            }
            handshakesMayRun = connecting
        }
        if nanoseconds(from: lastSlowTick, to: now) >= Self.slowTickNanos {
            lastSlowTick = now
            let noMedia = UInt64(config.noMediaSeconds * 1e9)
            for connection in Array(connections.values) where connection.peer == nil && nanoseconds(from: connection.acceptedAt, to: now) > Self.unboundTCPTimeout {
                drop(connection)
            }
            for peer in Array(peersByHandle.values) {
                if peer.ice.checkConsent(now: now) {
                    logger.info("consent expired", metadata: ["handle": "\(peer.handle.id)"])
                    close(peer, reason: .iceFailed, notifyClient: true, notifyPlugin: true)
                    continue
                }
                for stream in peer.streams where stream.receiving && nanoseconds(from: stream.lastPacketAt, to: now) > noMedia {
                    stream.receiving = false
                    mediaStateChanged(peer, stream)
                }
            }
        }
        if nanoseconds(from: lastReportTick, to: now) >= Self.reportNanos {
            lastReportTick = now
            for peer in peersByHandle.values where peer.isConnected { report(peer, now: now) }
        }
    }

    /// Receiver and sender reports (with the REMB cap, if any) once a second, and slowlink checks.
    private func report(_ peer: PeerConnection, now: UInt64) {
        var blocks: [ReportBlock] = []
        let threshold = UInt32(config.slowlinkThreshold)
        for stream in peer.streams {
            var lost: UInt32 = 0
            for ssrc in Array(stream.statistics.keys) {
                guard let (block, lostInInterval) = stream.statistics[ssrc]?.reportBlock(now: now) else { continue }
                blocks.append(block)
                lost &+= lostInInterval
            }
            if threshold > 0 {
                if lost >= threshold { slowLink(peer, stream, uplink: false, lost: lost) }
                if stream.nackedThisInterval >= threshold { slowLink(peer, stream, uplink: true, lost: stream.nackedThisInterval) }
            }
            stream.nackedThisInterval = 0
        }
        var packets: [RTCPPacket] = []
        let wallClock = SenderReport.ntpNow()
        for stream in peer.streams where stream.sends && stream.packetsSent > 0 {
            let elapsed = nanoseconds(from: stream.lastSentAt, to: now)
            let rtp = stream.lastRTPTimestamp &+ RTPClock.ticks(nanoseconds: elapsed, clockRate: stream.sendClockRate)
            let reports = packets.isEmpty ? Array(blocks.prefix(31)) : []
            packets.append(.senderReport(SenderReport(ssrc: stream.localSSRC, ntpTimestamp: wallClock, rtpTimestamp: rtp,
                                                      packetCount: stream.packetsSent, octetCount: stream.octetsSent, reports: reports)))
        }
        if packets.isEmpty {
            packets.append(.receiverReport(ReceiverReport(ssrc: peer.hostSSRC, reports: Array(blocks.prefix(31)))))
        }
        let firstSSRC: UInt32 = switch packets[0] {
        case .senderReport(let sr): sr.ssrc
        default: peer.hostSSRC
        }
        packets.append(.sourceDescription(SourceDescription(ssrc: firstSSRC, cname: peer.cname)))
        if let remb = remb(peer) { packets.append(remb) }
        sendRTCP(peer, packets: packets)
    }

    // MARK: - Events

    private func emit(_ kind: String, _ fields: JSONObject = [:], for peer: PeerConnection) {
        core?.deliverEvent(kind, about: peer.handle, fields)
    }

    private func mediaStateChanged(_ peer: PeerConnection, _ stream: MediaStream) {
        emit("media", ["mid": .string(stream.mid), "type": .string(stream.kind), "receiving": .bool(stream.receiving)], for: peer)
        let handle = peer.handle
        let mid = stream.mid
        let isVideo = stream.isVideo
        let receiving = stream.receiving
        handle.plugin.onControl(handle) { $0.mediaState(handle, mid: mid, isVideo: isVideo, receiving: receiving) }
    }

    private func slowLink(_ peer: PeerConnection, _ stream: MediaStream, uplink: Bool, lost: UInt32) {
        emit("slowlink", ["mid": .string(stream.mid), "media": .string(stream.kind), "uplink": .bool(uplink), "lost": .int(Int64(lost))], for: peer)
        let handle = peer.handle
        let mid = stream.mid
        let isVideo = stream.isVideo
        handle.plugin.onControl(handle) { $0.slowLink(handle, mid: mid, isVideo: isVideo, uplink: uplink, lost: lost) }
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
            if let tap = stream.taps.removeValue(forKey: ssrc) { endTap(tap) }
        }
    }

    /// Ends a PeerConnection: close_notify to the peer, and (as asked) the client's `hangup` event
    /// and the plugin's hangup_media.
    func close(_ peer: PeerConnection, reason: HangupReason, notifyClient: Bool, notifyPlugin: Bool) {
        guard !peer.closed else { return }
        peer.closed = true
        peersByHandle.removeValue(forKey: peer.handle.address)
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

/// Work for the media thread. Tasks capture thread-confined state (PeerConnections), which is
/// safe because only the media thread runs them.
private struct MediaTask: @unchecked Sendable {
    let run: () -> Void
}

/// Media counters for /metrics, written by the media thread.
final class MediaMetrics: Sendable {
    let received = Atomic<Int>(0)
    let sent = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let sendErrors = Atomic<Int>(0)
    let rtpIn = Atomic<Int>(0)
    let rtpOut = Atomic<Int>(0)
    let retransmitted = Atomic<Int>(0)
    let peers = Atomic<Int>(0)
    let tcpConnections = Atomic<Int>(0)

    /// The counters of every loop summed, then each loop's PeerConnections and handles placed on it.
    static func prometheus(_ loops: MediaLoops) -> String {
        func sum(_ counter: (MediaMetrics) -> Int) -> Int { loops.engines.reduce(0) { $0 + counter($1.metrics) } }
        let rows: [(String, String, String, Int)] = [
            ("atrium_media_datagrams_received_total", "counter", "UDP datagrams and ICE-TCP frames received on the media ports", sum { $0.received.load(ordering: .relaxed) }),
            ("atrium_media_datagrams_sent_total", "counter", "UDP datagrams and ICE-TCP frames sent from the media ports", sum { $0.sent.load(ordering: .relaxed) }),
            ("atrium_media_datagrams_dropped_total", "counter", "Datagrams dropped: strangers, bad STUN, DTLS or SRTP", sum { $0.dropped.load(ordering: .relaxed) }),
            ("atrium_media_send_errors_total", "counter", "Datagrams the host could not protect or send", sum { $0.sendErrors.load(ordering: .relaxed) }),
            ("atrium_media_rtp_received_total", "counter", "RTP packets decrypted and handed to plugins", sum { $0.rtpIn.load(ordering: .relaxed) }),
            ("atrium_media_rtp_sent_total", "counter", "RTP packets relayed to peers", sum { $0.rtpOut.load(ordering: .relaxed) }),
            ("atrium_media_rtp_retransmitted_total", "counter", "RTP packets sent again to answer NACKs", sum { $0.retransmitted.load(ordering: .relaxed) }),
            ("atrium_media_peerconnections", "gauge", "PeerConnections open", sum { $0.peers.load(ordering: .relaxed) }),
            ("atrium_media_tcp_connections", "gauge", "ICE-TCP connections open", sum { $0.tcpConnections.load(ordering: .relaxed) }),
        ]
        var text = rows.map { "# HELP \($0.0) \($0.2)\n# TYPE \($0.0) \($0.1)\n\($0.0) \($0.3)\n" }.joined()
        let (placed, groups) = loops.load
        text += "# HELP atrium_media_loop_peerconnections PeerConnections open on each media loop\n# TYPE atrium_media_loop_peerconnections gauge\n"
        for engine in loops.engines {
            text += "atrium_media_loop_peerconnections{loop=\"\(engine.index)\"} \(engine.metrics.peers.load(ordering: .relaxed))\n"
        }
        text += "# HELP atrium_media_loop_handles Handles placed on each media loop (what new groups are spread by)\n# TYPE atrium_media_loop_handles gauge\n"
        for (i, n) in placed.enumerated() { text += "atrium_media_loop_handles{loop=\"\(i)\"} \(n)\n" }
        text += "# HELP atrium_media_groups Handle groups (rooms) holding a media loop\n# TYPE atrium_media_groups gauge\natrium_media_groups \(groups)\n"
        return text
    }
}
