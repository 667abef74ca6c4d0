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

/// One thread that owns every peer's socket: every `turnInterval` it takes the ready ones from an
/// epoll set, reads a batch from each, runs the peers' ICE/DTLS timers and counts what the
/// subscribers received.
///
/// Why it is built this way: this generator shares the two cores with the server it measures, so
/// every microsecond it spends per packet is one the server does not get. With poll(2) over a
/// thousand sockets on every wake-up, one recvfrom per datagram, whole packets copied out and
/// the timers of every peer on every turn, it spent about as much CPU per packet as the server
/// did forwarding it. Now it waits for datagrams to gather, reads them in batches (recvmmsg),
/// and copies out only the headers of most subscribers' packets.
final class MediaLoop: @unchecked Sendable {
    private struct State {
        /// Every peer, by its socket: the tokens the epoll set reports.
        var peers: [Int32: BenchPeer] = [:]
        var windowOpen = false
        var counts = WindowCounts()
    }
    private let state = Mutex(State())
    private let pollThread: PollThread
    private let events: EventPoll
    // The thread's own.
    private let receiver = DatagramReceiver(capacity: 32)
    private var lastTurn: UInt64 = 0

    /// At least this long between turns, so a socket holds a few datagrams when it is read (a
    /// subscriber gets one every 5 ms or so). It adds up to as much to the latency measured, for
    /// every server alike, and is the timers' resolution.
    static let turnInterval: UInt64 = 10_000_000
    private static let wakeToken = UInt64.max

    init() throws(SocketError) {
        pollThread = try PollThread()
        events = try EventPoll(capacity: 4_096)
        try events.add(pollThread.wakeDescriptor, token: Self.wakeToken)
    }

    func start() {
        pollThread.start(name: "bench-loop") { [self] in iterate() }
    }

    func stop() {
        pollThread.stop()
    }

    func add(_ peer: BenchPeer) throws(BenchError) {
        do {
            try events.add(peer.fd, token: UInt64(UInt32(bitPattern: peer.fd)))
        } catch {
            throw BenchError("\(error)")
        }
        state.withLock { $0.peers[peer.fd] = peer }
    }

    func remove(_ peer: BenchPeer) {
        events.remove(peer.fd)
        state.withLock { $0.peers[peer.fd] = nil }
    }

    /// Starts counting from zero.
    func openWindow() {
        state.withLock { s in
            s.counts = WindowCounts()
            for p in s.peers.values { p.streams.openWindow() }
            s.windowOpen = true
        }
    }

    /// Stops counting and returns the counts (expected packets from the stamps' indexes).
    func closeWindow() -> WindowCounts {
        state.withLock { s in
            s.windowOpen = false
            var counts = s.counts
            counts.expected = s.peers.values.reduce(0) { $0 + $1.streams.expected }
            return counts
        }
    }

    /// One turn: when `turnInterval` has passed since the last, read one batch from each ready
    /// socket, then run the timers. A socket with more waiting is reported again on the next
    /// turn, so one busy peer does not starve the others.
    private func iterate() {
        sleep(untilMonotonic: lastTurn + Self.turnInterval)
        lastTurn = monotonicNanoseconds()
        let ready = events.wait(milliseconds: 0)
        var woken = false
        state.withLock { s in
            for i in 0..<ready {
                let token = events.token(i)
                if token == Self.wakeToken {
                    woken = true
                    continue
                }
                guard let peer = s.peers[Int32(truncatingIfNeeded: token)] else { continue }
                drain(peer, state: &s)
            }
            let now = monotonicNanoseconds()
            for peer in s.peers.values { peer.tick(now: now) }
        }
        if woken { pollThread.runPosted() }
    }

    /// Reads one batch of a peer's datagrams. What a subscriber receives is counted from the
    /// plaintext RTP header (sequence numbers give the expected count); latency probes read
    /// whole packets and decrypt one in `latencySample` to read its stamp. The other subscribers'
    /// reads copy out only the first `headerBytes` of each datagram: copying and decrypting
    /// every packet cost this generator about as much CPU as the server spent forwarding it,
    /// on the same cores.
    private func drain(_ peer: BenchPeer, state s: inout State) {
        for i in 0..<receiver.receive(peer.fd, prefix: peer.readsWhole ? nil : Self.headerBytes) {
            guard let from = receiver.sender(i) else { continue }
            let datagram = receiver.datagram(i)
            peer.receive(datagram, length: datagram.count, wireLength: receiver.wireLength(i), from: from, header: { ssrc, sequenceNumber, length in
                if peer.firstMedia.load(ordering: .relaxed) == 0 { peer.firstMedia.store(monotonicNanoseconds(), ordering: .relaxed) }
                peer.streams.add(ssrc: ssrc, sequenceNumber: sequenceNumber, counting: s.windowOpen)
                guard s.windowOpen else { return false }
                s.counts.packets += 1
                s.counts.bytes += length
                return sequenceNumber % Self.latencySample == 0
            }) { packet, length in
                guard let view = try? RTPPacketView(buffer: packet, length: length), view.payloadLength >= Stamp.size,
                      let stamp = Stamp.read(packet, at: view.payloadOffset + view.payloadLength - Stamp.size) else { return }
                s.counts.latency.add(monotonicNanoseconds() &- stamp.sentAt)
            }
        }
    }

    static let latencySample: UInt16 = 16
    /// Enough for the RTP header with extensions, and for a STUN consent reply.
    static let headerBytes = 256
    /// One subscriber in this many is a latency probe.
    static let probeEvery = 8
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
