import RTC
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One client PeerConnection of the load generator: its own UDP socket (so each has its own
/// 5-tuple, as browsers do), ICE as the controlling agent with aggressive nomination, DTLS in the
/// role the SDP gives (the client, `setup:active`, whenever we choose), SRTP both ways, everything
/// bundled. Handshake and receiving run on the `MediaLoop` thread; a publisher's packets are sent
/// from the `Pacer` thread once `outbound` is set.
final class BenchPeer: @unchecked Sendable {
    enum Role { case publisher, subscriber }

    let role: Role
    let name: String
    let fd: Int32
    let local: TransportAddress
    let ufrag = BenchPeer.token(8)
    let pwd = BenchPeer.token(24)
    private let certificate: DTLSCertificate
    private let tieBreaker = UInt64.random(in: 1...UInt64.max)

    // Set from the remote SDP (control thread) before the peer is handed to the loop.
    private(set) var remote: TransportAddress?
    private var remoteUfrag = ""
    private var remotePwd = ""
    private var remoteFingerprint = ""
    private var dtlsRole: DTLSTransport.Role = .client

    // Owned by the loop thread.
    private var dtls: DTLSTransport?
    private var nominated = false
    private var nextCheck: UInt64 = 0
    private var inbound: SRTPContext?
    /// What a subscriber received, per source: for loss counting.
    var streams = ReceivedStreams()
    /// Reads whole packets and decrypts some for their stamps (set before the loop has the peer).
    var latencyProbe = false

    /// The sending context, published by the loop thread once DTLS is up (read by the pacer).
    let outbound = Mutex<SRTPContext?>(nil)
    let profile = Mutex<SRTPProfile?>(nil)
    /// A PLI or FIR arrived: the next video frame is a keyframe.
    let keyframeWanted = Atomic<Bool>(true)
    /// When the join started and when the first stamped media arrived (monotonic ns).
    let joinStarted = Atomic<UInt64>(0)
    let firstMedia = Atomic<UInt64>(0)
    let failure = Mutex<String?>(nil)

    init(role: Role, name: String, bind ip: String, certificate: DTLSCertificate) throws(BenchError) {
        self.role = role
        self.name = name
        self.certificate = certificate
        guard let address = TransportAddress(ip, 0) else { throw BenchError("bad bind address \(ip)") }
        do {
            fd = try udpSocket(address, bufferBytes: 4 << 20)
        } catch {
            throw BenchError("\(error)")
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        guard let bound = localAddress(fd) else { throw BenchError("no local address") }
        local = bound
    }

    deinit { close(fd) }

    static func token(_ n: Int) -> String {
        String((0..<n).map { _ in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
    }

    // MARK: SDP

    private var transportLines: String {
        """
        a=ice-ufrag:\(ufrag)\r
        a=ice-pwd:\(pwd)\r
        a=fingerprint:sha-256 \(certificate.fingerprint)\r
        a=rtcp-mux\r
        a=candidate:1 1 udp 2130706431 \(local.ip) \(local.port) typ host\r
        a=end-of-candidates\r

        """
    }

    private var sessionHeader: String {
        "v=0\r\no=- \(UInt32.random(in: 1...UInt32.max)) 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=msid-semantic: WMS bench\r\n"
    }

    /// A publisher's offer: Opus audio and VP8 video, send-only, bundled; `setup:actpass`.
    func publisherOffer(audioSSRC: UInt32, videoSSRC: UInt32) -> String {
        sessionHeader + "a=group:BUNDLE 0 1\r\n"
            + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n" + transportLines
            + "a=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
            + "a=msid:bench-\(name) a0\r\na=ssrc:\(audioSSRC) cname:bench-\(name)\r\n"
            + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n" + transportLines
            + "a=setup:actpass\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n"
            + "a=msid:bench-\(name) v0\r\na=ssrc:\(videoSSRC) cname:bench-\(name)\r\n"
    }

    /// A subscriber's answer to the server's offer: every RTP m-line received (first Opus or VP8
    /// payload type kept), anything else rejected; `setup:active` (we are the DTLS client).
    func subscriberAnswer(to offer: SessionDescription) throws(BenchError) -> String {
        var sdp = sessionHeader
        let bundled = offer.media.filter { $0.isRTP && !$0.isRejected }.compactMap(\.mid)
        if !bundled.isEmpty { sdp += "a=group:BUNDLE \(bundled.joined(separator: " "))\r\n" }
        for media in offer.media {
            let kind = media.kind.description
            guard media.isRTP, !media.isRejected, let mid = media.mid else {
                sdp += "m=\(kind) 0 \(media.transportProtocol) \(media.formats.first ?? "0")\r\nc=IN IP4 0.0.0.0\r\n"
                if let mid = media.mid { sdp += "a=mid:\(mid)\r\n" }
                continue
            }
            let wanted = kind == "audio" ? "opus" : "vp8"
            guard let map = media.rtpMaps.first(where: { $0.encodingName.lowercased() == wanted }) else {
                throw BenchError("the offer's m=\(kind) (mid \(mid)) has no \(wanted)")
            }
            sdp += "m=\(kind) 9 \(media.transportProtocol) \(map.payloadType)\r\nc=IN IP4 0.0.0.0\r\na=mid:\(mid)\r\na=recvonly\r\n"
            sdp += transportLines + "a=setup:active\r\n"
            sdp += "a=rtpmap:\(map.payloadType) \(map.encodingName)/\(map.clockRate)\(map.channels.map { "/\($0)" } ?? "")\r\n"
            if kind == "video" { sdp += "a=rtcp-fb:\(map.payloadType) nack\r\na=rtcp-fb:\(map.payloadType) nack pli\r\n" }
        }
        return sdp
    }

    /// Takes the server's ICE credentials, fingerprint, DTLS role and first IPv4 UDP host candidate.
    func applyRemote(_ sdp: SessionDescription, weOffered: Bool) throws(BenchError) {
        guard let media = sdp.media.first(where: { $0.isRTP && !$0.isRejected }) else { throw BenchError("no media in the server's SDP") }
        guard let credentials = sdp.iceCredentials(of: media) else { throw BenchError("no ICE credentials in the server's SDP") }
        guard let fingerprint = sdp.fingerprints(of: media).first(where: { $0.algorithm.lowercased() == "sha-256" }) else {
            throw BenchError("no sha-256 fingerprint in the server's SDP")
        }
        let candidates = sdp.media.flatMap(\.candidates).filter { $0.transport.rawValue.lowercased() == "udp" && $0.component == 1 }
        guard let candidate = candidates.first(where: { IPAddress($0.address)?.isIPv4 == true }),
              let address = TransportAddress(candidate.address, Int(candidate.port)) else {
            throw BenchError("no IPv4 UDP candidate in the server's SDP")
        }
        remote = address
        remoteUfrag = credentials.ufrag
        remotePwd = credentials.password
        remoteFingerprint = fingerprint.hex
        // The answerer picks: as offerer we follow its choice, as answerer we chose active.
        dtlsRole = weOffered && sdp.setup(of: media) == .active ? .server : .client
    }

    // MARK: Loop-thread side

    /// Timers: ICE checks (every 50 ms until one succeeds, then every 2 s for consent) and DTLS
    /// retransmissions.
    func tick(now: UInt64) {
        guard let remote else { return }
        if now >= nextCheck {
            let request = STUNMessage(method: .binding, messageClass: .request, attributes: [
                .string(.username, "\(remoteUfrag):\(ufrag)"),
                .uint32(.priority, 1_845_501_695),
                .uint64(.iceControlling, tieBreaker),
                STUNAttribute(type: .useCandidate, value: []),
            ])
            send(request.encode(integrity: .shortTerm(password: remotePwd)), to: remote)
            nextCheck = now + (nominated ? 2_000_000_000 : 50_000_000)
        }
        // Once SRTP is keyed the handshake's timers have nothing left to resend.
        if inbound == nil, let dtls, dtls.timeoutMilliseconds == 0 {
            for d in dtls.handleTimeout() { send(d, to: remote) }
            checkDTLS()
        }
    }

    /// Whether to read this peer's datagrams whole: until SRTP is keyed (the handshake's packets
    /// are read in full), and always for a publisher (its feedback) or a latency probe. The
    /// other subscribers' are counted from their first `MediaLoop.headerBytes`.
    var readsWhole: Bool { inbound == nil || role == .publisher || latencyProbe }

    /// A datagram for this peer, `length` bytes of it in `buffer` (fewer than `wireLength` when
    /// the read kept only its start). For SRTP, `header` sees the packet's plaintext RTP header
    /// (SSRC, sequence number, length on the wire) and says whether to decrypt it; `media` gets
    /// what was decrypted (only a packet read whole is).
    func receive(_ buffer: UnsafeMutableRawBufferPointer, length: Int, wireLength: Int, from: TransportAddress,
                 header: (_ ssrc: UInt32, _ sequenceNumber: UInt16, _ length: Int) -> Bool = { _, _, _ in true },
                 media: (UnsafeMutableRawBufferPointer, Int) -> Void) {
        guard length > 0 else { return }
        guard length == wireLength else {
            // Cut short: media to count, or RTCP a subscriber does not need.
            // The fixed header is all a count needs (the padding, at the end, was not read).
            if length >= 12, buffer[0] >> 6 == 2, !(192...223).contains(buffer[1]) {
                _ = header(UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                           UInt16(bigEndian: buffer.loadUnaligned(fromByteOffset: 2, as: UInt16.self)), wireLength)
            }
            return
        }
        let first = buffer[0]
        switch first {
        case 0...3: stun(Array(buffer[0..<length]), from: from)
        case 20...63:
            guard let dtls, let remote else { return }
            for d in dtls.receive(Array(buffer[0..<length])) { send(d, to: remote) }
            checkDTLS()
        case 128...191:
            guard let inbound else { return }
            let packetType = length > 1 ? buffer[1] : 0
            if packetType >= 192 && packetType <= 223 {
                // Only a publisher acts on feedback; a subscriber's reports are not worth decrypting.
                guard role == .publisher, let n = try? inbound.unprotectRTCP(buffer, length: length) else { return }
                rtcp(buffer, length: n)
            } else {
                guard let view = try? RTPPacketView(buffer: buffer, length: length),
                      header(view.ssrc, view.sequenceNumber, length),
                      let n = try? inbound.unprotect(buffer, length: length) else { return }
                media(buffer, n)
            }
        default: return
        }
    }

    private func stun(_ bytes: [UInt8], from: TransportAddress) {
        guard let parsed = try? STUNMessage.parse(bytes), parsed.message.method == .binding else { return }
        switch parsed.message.messageClass {
        case .success:
            guard !nominated, parsed.verifyIntegrity(key: Array(remotePwd.utf8)) else { return }
            nominated = true
            nextCheck = monotonicNanoseconds() + 2_000_000_000
            startDTLS()
        case .request:
            // A full-ICE server checks us too: answer with its mapped address.
            guard parsed.verifyIntegrity(key: Array(pwd.utf8)) else { return }
            let reply = STUNMessage(method: .binding, messageClass: .success, transactionID: parsed.message.transactionID,
                                    attributes: [.xorAddress(.xorMappedAddress, from, transactionID: parsed.message.transactionID)])
            send(reply.encode(integrity: .shortTerm(password: pwd)), to: from)
        default: return
        }
    }

    private func startDTLS() {
        guard dtls == nil, let remote else { return }
        do {
            let transport = try DTLSTransport(role: dtlsRole, certificate: certificate, remoteFingerprint: remoteFingerprint, fastRetransmit: true)
            dtls = transport
            for d in transport.start() { send(d, to: remote) }
        } catch {
            failure.withLock { $0 = "DTLS: \(error)" }
        }
    }

    private func checkDTLS() {
        guard let dtls, inbound == nil else { return }
        switch dtls.state {
        case .connected:
            guard let keys = dtls.keys else { return }
            do {
                inbound = try keys.inbound()
                let out = try keys.outbound()
                outbound.withLock { $0 = out }
                profile.withLock { $0 = keys.profile }
            } catch {
                failure.withLock { $0 = "SRTP: \(error)" }
            }
        case .failed(let why):
            failure.withLock { $0 = "DTLS failed: \(why)" }
        default: return
        }
    }

    /// Feedback from the server: a PLI (PSFB 1) or FIR (PSFB 4) asks for a keyframe.
    private func rtcp(_ buffer: UnsafeMutableRawBufferPointer, length: Int) {
        var offset = 0
        while offset + 4 <= length {
            let count = buffer[offset] & 0x1F
            let type = buffer[offset + 1]
            let words = Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])
            if type == 206 && (count == 1 || count == 4) { keyframeWanted.store(true, ordering: .relaxed) }
            offset += (words + 1) * 4
        }
    }

    func send(_ bytes: [UInt8], to address: TransportAddress) {
        _ = bytes.withUnsafeBytes { sendDatagram(fd, $0, to: address) }
    }

    var connected: Bool { outbound.withLock { $0 != nil } }
}

/// A 16-bit RTP sequence number extended across wraps (RFC 3550 A.1, without probation): the
/// packets counted by sequence number need no decryption.
struct SequenceExtender {
    private var highest: UInt32 = 0

    mutating func extend(_ sequenceNumber: UInt16) -> UInt32 {
        // Starts a cycle up, so a packet just before the first never goes below zero.
        guard highest != 0 else {
            highest = 0x1_0000 | UInt32(sequenceNumber)
            return highest
        }
        var value = (highest & 0xFFFF_0000) | UInt32(sequenceNumber)
        if value &+ 0x8000 < highest { value &+= 0x1_0000 } else if value > highest &+ 0x8000, value >= 0x1_0000 { value &-= 0x1_0000 }
        highest = max(highest, value)
        return value
    }
}

/// The sources one subscriber receives (a handful: two per publisher it watches), in an array
/// searched in order: cheaper per packet than a dictionary at this size.
struct ReceivedStreams {
    private struct Stream {
        let ssrc: UInt32
        /// For the whole run (windows come and go).
        var sequence = SequenceExtender()
        /// In the current window.
        var received = 0
        var lowest = UInt32.max
        var highest = UInt32(0)
    }
    private var streams: [Stream] = []

    /// One packet of `ssrc`, counted in the window when `counting`.
    mutating func add(ssrc: UInt32, sequenceNumber: UInt16, counting: Bool) {
        let i = streams.firstIndex { $0.ssrc == ssrc } ?? {
            streams.append(Stream(ssrc: ssrc))
            return streams.count - 1
        }()
        let index = streams[i].sequence.extend(sequenceNumber)
        guard counting else { return }
        streams[i].received += 1
        streams[i].lowest = min(streams[i].lowest, index)
        streams[i].highest = max(streams[i].highest, index)
    }

    /// Forgets the window's counts (not the sequence numbers' history).
    mutating func openWindow() {
        for i in streams.indices {
            streams[i].received = 0
            streams[i].lowest = .max
            streams[i].highest = 0
        }
    }

    /// Packets the window should have held: from each source's lowest to highest index received.
    var expected: Int {
        streams.reduce(0) { $0 + ($1.received == 0 ? 0 : Int($1.highest &- $1.lowest) + 1) }
    }
}
