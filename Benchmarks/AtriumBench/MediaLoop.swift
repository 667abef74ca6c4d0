import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The stamp every synthetic packet carries in the last 16 bytes of its RTP payload: a magic
/// word, the send time (CLOCK_MONOTONIC ns, one clock for sender and receivers on this machine)
/// and the packet's index in its source, so receivers measure latency and loss whatever the
/// server does to the RTP header.
enum Stamp {
    static let size = 16
    static let magic: UInt32 = 0x4154_4231  // "ATB1"

    static func write(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int, sentAt: UInt64, index: UInt32) {
        buffer.storeBytes(of: magic.bigEndian, toByteOffset: offset, as: UInt32.self)
        buffer.storeBytes(of: sentAt.bigEndian, toByteOffset: offset + 4, as: UInt64.self)
        buffer.storeBytes(of: index.bigEndian, toByteOffset: offset + 12, as: UInt32.self)
    }

    static func read(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> (sentAt: UInt64, index: UInt32)? {
        guard UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) == magic else { return nil }
        return (UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt64.self)),
                UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
    }
}

/// Latencies in 10 µs buckets up to 1 s (beyond: the last bucket).
struct LatencyHistogram {
    static let bucketNanoseconds: UInt64 = 10_000
    private(set) var buckets = [Int](repeating: 0, count: 100_001)
    private(set) var count = 0

    mutating func add(_ nanoseconds: UInt64) {
        buckets[Int(min(nanoseconds / Self.bucketNanoseconds, 100_000))] += 1
        count += 1
    }

    /// The `q` quantile in milliseconds (upper edge of its bucket), nil when empty.
    func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let target = Int((Double(count) * q).rounded(.up))
        var seen = 0
        for (i, n) in buckets.enumerated() where n > 0 {
            seen += n
            if seen >= max(target, 1) { return Double(UInt64(i + 1) * Self.bucketNanoseconds) / 1e6 }
        }
        return nil
    }
}

/// What subscribers received while the window was open.
struct WindowCounts {
    var packets = 0
    var bytes = 0
    var expected = 0
    var latency = LatencyHistogram()
}

/// One thread that owns every peer's socket: `poll` over all of them, drains each readable one,
/// runs the ICE/DTLS timers, and counts what subscribers receive.
final class MediaLoop: @unchecked Sendable {
    private struct State {
        var peers: [BenchPeer] = []
        var windowOpen = false
        var counts = WindowCounts()
    }
    private let state = Mutex(State())
    private let pollThread: PollThread
    // The thread's own.
    private var pollfds: [pollfd] = []
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2_048, alignment: 16)

    init() throws(SocketError) {
        pollThread = try PollThread()
    }

    deinit { buffer.deallocate() }

    func start() {
        pollThread.start(name: "bench-loop") { [self] in iterate() }
    }

    func stop() {
        pollThread.stop()
    }

    func add(_ peer: BenchPeer) {
        state.withLock { $0.peers.append(peer) }
    }

    func remove(_ peer: BenchPeer) {
        state.withLock { $0.peers.removeAll { $0 === peer } }
    }

    /// Starts counting from zero.
    func openWindow() {
        state.withLock { s in
            s.counts = WindowCounts()
            for p in s.peers { p.sources.removeAll() }
            s.windowOpen = true
        }
    }

    /// Stops counting and returns the counts (expected packets from the stamps' indexes).
    func closeWindow() -> WindowCounts {
        state.withLock { s in
            s.windowOpen = false
            var counts = s.counts
            counts.expected = s.peers.reduce(0) { $0 + $1.sources.values.reduce(0) { $0 + $1.expected } }
            return counts
        }
    }

    /// One turn: wait up to 5 ms (the peers' ICE and DTLS timers) for datagrams, read them all,
    /// run the timers. The wake pipe comes last in the poll set, after one entry per peer.
    private func iterate() {
        let peers = state.withLock { $0.peers }
        if pollfds.count != peers.count + 1 || zip(pollfds, peers).contains(where: { $0.fd != $1.fd }) {
            pollfds = peers.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
                + [pollfd(fd: pollThread.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        }
        let ready = poll(&pollfds, nfds_t(pollfds.count), 5)
        if let wake = pollfds.last, wake.revents != 0 { pollThread.runPosted() }
        let now = monotonicNanoseconds()
        state.withLock { s in
            for (i, peer) in peers.enumerated() {
                if ready > 0 && pollfds[i].revents & Int16(POLLIN) != 0 {
                    drain(peer, buffer: buffer, state: &s)
                }
                peer.tick(now: now)
            }
        }
    }

    /// Reads a peer's datagrams. What a subscriber receives is counted from the plaintext RTP
    /// header (sequence numbers give the expected count); one packet in `latencySample` is
    /// decrypted to read its stamp for the latency. Decrypting every packet cost this generator
    /// about as much CPU as the server spent forwarding it, on the same cores.
    private func drain(_ peer: BenchPeer, buffer: UnsafeMutableRawBufferPointer, state s: inout State) {
        while let (n, from) = receiveDatagram(peer.fd, into: buffer) {
            guard n > 0 else { return }
            peer.receive(buffer, length: n, from: from, header: { ssrc, sequenceNumber, length in
                if peer.firstMedia.load(ordering: .relaxed) == 0 { peer.firstMedia.store(monotonicNanoseconds(), ordering: .relaxed) }
                let index = peer.sequences[ssrc, default: SequenceExtender()].extend(sequenceNumber)
                guard s.windowOpen else { return false }
                s.counts.packets += 1
                s.counts.bytes += length
                var source = peer.sources[ssrc] ?? SourceCount()
                source.received += 1
                source.lowest = min(source.lowest, index)
                source.highest = max(source.highest, index)
                peer.sources[ssrc] = source
                return sequenceNumber % Self.latencySample == 0
            }) { packet, length in
                guard let view = try? RTPPacketView(buffer: packet, length: length), view.payloadLength >= Stamp.size,
                      let stamp = Stamp.read(packet, at: view.payloadOffset + view.payloadLength - Stamp.size) else { return }
                s.counts.latency.add(monotonicNanoseconds() &- stamp.sentAt)
            }
        }
    }

    static let latencySample: UInt16 = 16
}

/// The publishers' clock: synthetic VP8-shaped video (a frame every 1/fps s, split into equal
/// packets, marker on the last, keyframes on request and every 3 s) and Opus-shaped audio (one
/// packet every 20 ms), each stamped, SRTP-protected and sent from the publisher's socket; a
/// sender report per source every second.
final class Pacer: @unchecked Sendable {
    struct Shape: Sendable {
        var videoBitrate: Int
        var videoPacketsPerSecond: Int
        var framesPerSecond: Int
        var audio: Bool
        var packetsPerFrame: Int { max(1, Int((Double(videoPacketsPerSecond) / Double(framesPerSecond)).rounded())) }
        /// RTP payload bytes of one video packet (the stamp included).
        var videoPayload: Int { min(1_150, max(Stamp.size + 12, videoBitrate / 8 / max(1, videoPacketsPerSecond))) }
        static let audioPayload = 100
    }

    final class Source: @unchecked Sendable {
        let ssrc = UInt32.random(in: 1...UInt32.max)
        var sequence = UInt16.random(in: 0...UInt16.max)
        var timestamp = UInt32.random(in: 0...UInt32.max)
        var index: UInt32 = 0
        var next: UInt64 = 0
        var octets: UInt32 = 0
    }

    final class Publisher: @unchecked Sendable {
        let peer: BenchPeer
        let audio = Source()
        let video = Source()
        var lastKeyframe: UInt64 = 0
        var nextReport: UInt64 = 0
        init(peer: BenchPeer) { self.peer = peer }
    }

    let shape: Shape
    private let publishers = Mutex<[Publisher]>([])
    private let running = Atomic<Bool>(true)
    /// Packets sent (audio and video), all publishers.
    let sent = Atomic<Int>(0)
    private var thread: pthread_t?

    init(shape: Shape) { self.shape = shape }

    func publisher(for peer: BenchPeer) -> Publisher {
        let p = Publisher(peer: peer)
        publishers.withLock { $0.append(p) }
        return p
    }

    func remove(_ peer: BenchPeer) {
        publishers.withLock { $0.removeAll { $0.peer === peer } }
    }

    func start() {
        thread = startThread(name: "bench-pacer") { [self] in run() }
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        if let thread { pthread_join(thread, nil) }
    }

    private func run() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2_048, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xA5)
        let frameInterval = 1_000_000_000 / UInt64(shape.framesPerSecond)
        let audioInterval: UInt64 = 20_000_000
        while running.load(ordering: .relaxed) {
            let list = publishers.withLock { $0 }
            var wake = monotonicNanoseconds() + 5_000_000
            for p in list {
                guard let srtp = p.peer.outbound.withLock({ $0 }), let remote = p.peer.remote else { continue }
                let now = monotonicNanoseconds()
                if p.video.next == 0 || now > p.video.next + 1_000_000_000 { p.video.next = now; p.audio.next = now; p.nextReport = now }
                while now >= p.video.next {
                    frame(p, srtp: srtp, to: remote, buffer: buffer, now: now)
                    p.video.next += frameInterval
                }
                while shape.audio && now >= p.audio.next {
                    buffer[12] = 0xFC  // an Opus TOC byte
                    let length = Self.writeRTP(buffer, p.audio, payloadType: 111, payload: Shape.audioPayload, marker: false)
                    send(buffer, length: length, from: p.peer, srtp: srtp, to: remote)
                    p.audio.timestamp &+= 960
                    p.audio.next += audioInterval
                }
                if now >= p.nextReport {
                    for s in [p.video, p.audio] where s.index > 0 {
                        senderReport(p.peer, s, srtp: srtp, to: remote, buffer: buffer)
                    }
                    p.nextReport = now + 1_000_000_000
                }
                wake = min(wake, p.video.next, shape.audio ? p.audio.next : wake)
            }
            sleep(untilMonotonic: wake)
        }
    }

    private func frame(_ p: Publisher, srtp: SRTPContext, to remote: TransportAddress, buffer: UnsafeMutableRawBufferPointer, now: UInt64) {
        let key = p.peer.keyframeWanted.exchange(false, ordering: .relaxed) || now >= p.lastKeyframe + 3_000_000_000
        if key { p.lastKeyframe = now }
        let count = shape.packetsPerFrame
        for i in 0..<count {
            Self.writeVP8Descriptor(buffer, first: i == 0, key: key)
            let length = Self.writeRTP(buffer, p.video, payloadType: 96, payload: shape.videoPayload, marker: i == count - 1)
            send(buffer, length: length, from: p.peer, srtp: srtp, to: remote)
        }
        p.video.timestamp &+= UInt32(90_000 / shape.framesPerSecond)
    }

    private func send(_ buffer: UnsafeMutableRawBufferPointer, length: Int, from peer: BenchPeer, srtp: SRTPContext, to remote: TransportAddress) {
        guard let n = try? srtp.protect(buffer, length: length) else { return }
        _ = sendDatagram(peer.fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: remote)
        sent.add(1, ordering: .relaxed)
    }

    /// The VP8 payload descriptor (RFC 7741) at the payload's start: S=1, partition 0 on a frame's
    /// first packet, whose VP8 payload header says key or inter frame (a keyframe also carries the
    /// start code and a 640x480 size).
    static func writeVP8Descriptor(_ buffer: UnsafeMutableRawBufferPointer, first: Bool, key: Bool) {
        buffer[12] = first ? 0x10 : 0x00
        guard first else { return }
        let header: [UInt8] = key ? [0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01] : [0x11, 0x02, 0x00]
        for (k, b) in header.enumerated() { buffer[13 + k] = b }
    }

    /// Writes the RTP header and the stamp around the payload already in `buffer`, moves the
    /// source on, and returns the packet's length.
    static func writeRTP(_ buffer: UnsafeMutableRawBufferPointer, _ s: Source, payloadType: UInt8, payload: Int, marker: Bool) -> Int {
        buffer[0] = 0x80
        buffer[1] = payloadType | (marker ? 0x80 : 0)
        buffer.storeBytes(of: s.sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
        buffer.storeBytes(of: s.timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
        buffer.storeBytes(of: s.ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
        let length = 12 + payload
        Stamp.write(buffer, at: length - Stamp.size, sentAt: monotonicNanoseconds(), index: s.index)
        s.sequence &+= 1
        s.index &+= 1
        s.octets &+= UInt32(payload)
        return length
    }

    private func senderReport(_ peer: BenchPeer, _ s: Source, srtp: SRTPContext, to remote: TransportAddress, buffer: UnsafeMutableRawBufferPointer) {
        let report = SenderReport(ssrc: s.ssrc, ntpTimestamp: SenderReport.ntpNow(), rtpTimestamp: s.timestamp, packetCount: s.index, octetCount: s.octets)
        guard let encoded = try? RTCPPacket.encodeCompound([.senderReport(report)]) else { return }
        UnsafeMutableRawBufferPointer(rebasing: buffer[0..<encoded.count]).copyBytes(from: encoded)
        guard let n = try? srtp.protectRTCP(buffer, length: encoded.count) else { return }
        _ = sendDatagram(peer.fd, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: remote)
    }
}
