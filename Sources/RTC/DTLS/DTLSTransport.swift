import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The SRTP keys a finished DTLS-SRTP handshake exported (RFC 5764 §4.2).
public struct SRTPKeyMaterial: Sendable, Equatable {
    public var profile: SRTPProfile
    public var localKey: [UInt8]
    public var localSalt: [UInt8]
    public var remoteKey: [UInt8]
    public var remoteSalt: [UInt8]

    /// The context protecting what we send.
    public func outbound() throws(SRTPError) -> SRTPContext {
        try SRTPContext(profile: profile, masterKey: localKey, masterSalt: localSalt, direction: .outbound)
    }

    /// The context unprotecting what we receive.
    public func inbound() throws(SRTPError) -> SRTPContext {
        try SRTPContext(profile: profile, masterKey: remoteKey, masterSalt: remoteSalt, direction: .inbound)
    }
}

/// One DTLS 1.2 association over an ICE transport, driven by datagrams in and out (no sockets):
/// memory for input, a datagram-preserving BIO for output. Either role: `client` (setup:active)
/// starts the handshake, `server` (setup:passive) answers it. The peer's certificate is checked
/// against the fingerprint from its SDP once the handshake ends. Not thread-safe: one loop drives it.
public final class DTLSTransport: @unchecked Sendable {
    public enum Role: Sendable { case client, server }

    public enum State: Sendable, Equatable {
        case new, connecting, connected, closed
        case failed(String)
    }

    public let role: Role
    public private(set) var state: State = .new
    /// Set when the handshake completes.
    public private(set) var keys: SRTPKeyMaterial?
    public private(set) var remoteFingerprint: String?

    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let readBIO: OpaquePointer
    private let expectedFingerprint: String?
    /// Read by the datagram BIO when OpenSSL asks for the MTU.
    fileprivate let mtu: Int
    /// Datagrams OpenSSL wrote during the current call.
    fileprivate var outbox: [[UInt8]] = []
    /// Application data received (for SCTP later).
    public private(set) var received: [[UInt8]] = []

    /// - Parameters:
    ///   - remoteFingerprint: the peer's sha-256 fingerprint from its SDP (`AB:CD:...`), checked after
    ///     the handshake; nil accepts any certificate (tests only).
    ///   - profiles: SRTP profiles offered, in preference order.
    ///   - fastRetransmit: retransmit a lost flight after 50 ms (doubling up to 3 s) instead of
    ///     OpenSSL's 1 s, as browsers do; the load generator uses it so a ClientHello sent just
    ///     before the server is ready does not cost a second.
    public init(role: Role, certificate: DTLSCertificate, remoteFingerprint: String?, profiles: [SRTPProfile] = SRTPProfile.allCases, mtu: Int = 1200,
                fastRetransmit: Bool = false) throws(DTLSError) {
        self.role = role
        self.expectedFingerprint = remoteFingerprint?.uppercased()
        self.mtu = mtu
        guard let ctx = SSL_CTX_new(DTLS_method()) else { throw .openSSL("SSL_CTX_new") }
        context = ctx
        guard SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(DTLS1_2_VERSION), nil) == 1,
            SSL_CTX_use_certificate(ctx, certificate.certificate) == 1,
            SSL_CTX_use_PrivateKey(ctx, certificate.key) == 1,
            SSL_CTX_check_private_key(ctx) == 1,
            SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA") == 1
        else {
            SSL_CTX_free(ctx)
            throw .openSSL("configuring the DTLS context")
        }
        // use_srtp returns 0 on success.
        let srtpNames = profiles.map(\.dtlsName).joined(separator: ":")
        guard SSL_CTX_set_tlsext_use_srtp(ctx, srtpNames) == 0 else {
            SSL_CTX_free(ctx)
            throw .openSSL("SSL_CTX_set_tlsext_use_srtp")
        }
        // WebRTC peers use self-signed certificates: accept any chain here, check the fingerprint after.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) { _, _ in 1 }
        guard let s = SSL_new(ctx) else {
            SSL_CTX_free(ctx)
            throw .openSSL("SSL_new")
        }
        ssl = s
        guard let rbio = BIO_new(BIO_s_mem()), let wbio = BIO_new(datagramBIOMethod) else {
            SSL_free(s)
            SSL_CTX_free(ctx)
            throw .openSSL("BIO_new")
        }
        readBIO = rbio
        // An empty read BIO means "retry later", not end of file.
        BIO_ctrl(rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        BIO_set_data(wbio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(wbio, 1)
        SSL_set_bio(s, rbio, wbio)
        _ = SSL_set_options(s, UInt64(1) << 12)  // SSL_OP_NO_QUERY_MTU: we set it
        SSL_ctrl(s, SSL_CTRL_SET_MTU, mtu, nil)
        if role == .client { SSL_set_connect_state(s) } else { SSL_set_accept_state(s) }
        if fastRetransmit {
            // The corresponding C function is DTLS_set_timer_cb; the timer is in microseconds.
            DTLS_set_timer_cb(s) { _, previous in previous == 0 ? 50_000 : min(previous * 2, 3_000_000) }
        }
    }

    deinit {
        SSL_free(ssl)  // frees both BIOs
        SSL_CTX_free(context)
    }

    /// Starts the handshake (the client sends its ClientHello). Returns datagrams to send.
    public func start() -> [[UInt8]] {
        guard state == .new else { return [] }
        state = .connecting
        if role == .client { advanceHandshake() }
        return takeOutbox()
    }

    /// Feeds one datagram from the peer. Returns datagrams to send (handshake flights, alerts).
    public func receive(_ datagram: [UInt8]) -> [[UInt8]] {
        switch state {
        case .closed, .failed: return []
        case .new: state = .connecting
        default: break
        }
        _ = datagram.withUnsafeBytes { BIO_write(readBIO, $0.baseAddress, Int32($0.count)) }
        if state == .connecting {
            advanceHandshake()
        }
        if state == .connected {
            readApplicationData()
        }
        return takeOutbox()
    }

    /// Milliseconds until `handleTimeout` should run, or nil when no retransmission is pending.
    /// The corresponding C macro is `DTLSv1_get_timeout`.
    public var timeoutMilliseconds: Int? {
        var tv = timeval()
        guard SSL_ctrl(ssl, DTLS_CTRL_GET_TIMEOUT, 0, &tv) == 1 else { return nil }
        return tv.tv_sec * 1000 + tv.tv_usec / 1000
    }

    /// Retransmits the last flight if its timer expired. The corresponding C macro is `DTLSv1_handle_timeout`.
    public func handleTimeout() -> [[UInt8]] {
        guard state == .connecting else { return [] }
        if SSL_ctrl(ssl, DTLS_CTRL_HANDLE_TIMEOUT, 0, nil) < 0 {
            state = .failed("handshake timed out")
        }
        return takeOutbox()
    }

    /// Sends application data (data channels); returns the datagrams.
    public func send(_ data: [UInt8]) -> [[UInt8]] {
        guard state == .connected else { return [] }
        _ = data.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        return takeOutbox()
    }

    /// Application data received so far, emptied.
    public func takeReceived() -> [[UInt8]] {
        defer { received.removeAll() }
        return received
    }

    /// Sends close_notify and closes. Returns the alert datagram.
    public func close() -> [[UInt8]] {
        guard state == .connected || state == .connecting else { return [] }
        SSL_shutdown(ssl)
        state = .closed
        return takeOutbox()
    }

    // MARK: - Internals

    private func takeOutbox() -> [[UInt8]] {
        defer { outbox.removeAll() }
        return outbox
    }

    private func advanceHandshake() {
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            finishHandshake()
            return
        }
        let error = SSL_get_error(ssl, r)
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return }
        state = .failed(DTLSError.openSSL("handshake").message)
    }

    private func finishHandshake() {
        guard let peer = SSL_get1_peer_certificate(ssl) else {
            fail("the peer sent no certificate")
            return
        }
        defer { X509_free(peer) }
        guard let fingerprint = try? DTLSCertificate.fingerprint(of: peer) else {
            fail("cannot hash the peer certificate")
            return
        }
        remoteFingerprint = fingerprint
        if let expected = expectedFingerprint, expected != fingerprint {
            fail("the peer certificate does not match the fingerprint in its SDP")
            return
        }
        guard let selected = SSL_get_selected_srtp_profile(ssl), let name = selected.pointee.name,
            let profile = SRTPProfile(dtlsName: String(cString: name))
        else {
            fail("no SRTP profile was negotiated")
            return
        }
        let total = 2 * (profile.keyLength + profile.saltLength)
        var material = [UInt8](repeating: 0, count: total)
        let label = "EXTRACTOR-dtls_srtp"
        guard SSL_export_keying_material(ssl, &material, total, label, label.utf8.count, nil, 0, 0) == 1 else {
            fail("exporting the SRTP keys failed")
            return
        }
        let k = profile.keyLength
        let s = profile.saltLength
        let clientKey = Array(material[0..<k])
        let serverKey = Array(material[k..<(2 * k)])
        let clientSalt = Array(material[(2 * k)..<(2 * k + s)])
        let serverSalt = Array(material[(2 * k + s)..<(2 * k + 2 * s)])
        keys = role == .client
            ? SRTPKeyMaterial(profile: profile, localKey: clientKey, localSalt: clientSalt, remoteKey: serverKey, remoteSalt: serverSalt)
            : SRTPKeyMaterial(profile: profile, localKey: serverKey, localSalt: serverSalt, remoteKey: clientKey, remoteSalt: clientSalt)
        state = .connected
    }

    private func fail(_ reason: String) {
        // A fatal alert tells the peer; bad_certificate is what a fingerprint mismatch deserves.
        SSL_shutdown(ssl)
        state = .failed(reason)
    }

    private func readApplicationData() {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = SSL_read(ssl, &buffer, Int32(buffer.count))
            if n > 0 {
                received.append(Array(buffer.prefix(Int(n))))
                continue
            }
            let error = SSL_get_error(ssl, n)
            if error == SSL_ERROR_ZERO_RETURN {
                state = .closed
            } else if error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE {
                state = .failed(DTLSError.openSSL("read").message)
            }
            return
        }
    }
}

/// A BIO that turns each write into one datagram in the owning transport's outbox, so handshake
/// flights keep their record boundaries (a memory BIO would run them together).
nonisolated(unsafe) private let datagramBIOMethod: OpaquePointer = {
    let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "atrium datagram")!
    BIO_meth_set_write(method) { bio, data, length in
        guard let bio, let data, length > 0, let owner = BIO_get_data(bio) else { return 0 }
        let transport = Unmanaged<DTLSTransport>.fromOpaque(owner).takeUnretainedValue()
        transport.outbox.append(Array(UnsafeRawBufferPointer(start: data, count: Int(length))))
        return length
    }
    BIO_meth_set_ctrl(method) { bio, command, _, _ in
        switch command {
        case BIO_CTRL_FLUSH: return 1
        case BIO_CTRL_DGRAM_QUERY_MTU:
            guard let bio, let owner = BIO_get_data(bio) else { return 1200 }
            return Unmanaged<DTLSTransport>.fromOpaque(owner).takeUnretainedValue().mtu
        case BIO_CTRL_WPENDING, BIO_CTRL_PENDING: return 0
        default: return 0
        }
    }
    BIO_meth_set_create(method) { bio in
        BIO_set_init(bio, 1)
        return 1
    }
    BIO_meth_set_destroy(method) { _ in 1 }
    return method
}()
