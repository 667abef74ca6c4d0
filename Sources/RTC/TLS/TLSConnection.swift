import COpenSSL

/// One TLS connection over memory: the bytes from the socket go in with `receive`, the
/// plaintext they carry comes out of it, and `send`'s records and the handshake's replies wait in
/// `takeOutput` for the socket. It never touches a socket, so any event loop (SwiftNIO, a poll
/// loop) can carry it, and tests can talk to it from another one. Not thread-safe: one loop
/// drives it.
public final class TLSConnection {
    public enum State: Equatable, Sendable {
        case handshaking
        case open
        /// Either side sent close_notify: nothing more comes or goes.
        case closed
        /// A protocol error, with OpenSSL's words; the connection is of no further use.
        case failed(String)
    }

    private let ssl: OpaquePointer
    /// Socket bytes in, and records out; owned by `ssl`.
    private let input: OpaquePointer
    private let output: OpaquePointer
    public private(set) var state = State.handshaking
    /// Largest plaintext piece `receive` hands over at once (one TLS record's worth).
    static let chunk = 16 * 1024

    init(context: OpaquePointer, server: Bool) throws(TLSError) {
        guard let ssl = SSL_new(context) else { throw .openSSL("SSL_new") }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw .openSSL("BIO_new")
        }
        SSL_set_bio(ssl, input, output)
        if server { SSL_set_accept_state(ssl) } else { SSL_set_connect_state(ssl) }
        self.ssl = ssl
        self.input = input
        self.output = output
    }

    deinit { SSL_free(ssl) }

    /// A client connection that trusts any certificate: for tests and tools that check the
    /// server's certificate themselves (`peerFingerprint`).
    public static func client() throws(TLSError) -> TLSConnection {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw .openSSL("SSL_CTX_new") }
        defer { SSL_CTX_free(context) }
        let connection = try TLSConnection(context: context, server: false)
        connection.advance()
        return connection
    }

    /// Takes bytes read from the socket; returns the plaintext they completed, in pieces of at
    /// most `chunk` bytes. The handshake advances on the way.
    public func receive(_ bytes: UnsafeRawBufferPointer) -> [[UInt8]] {
        guard !bytes.isEmpty, state == .handshaking || state == .open else { return [] }
        // A memory BIO takes everything (it grows); its length is an Int32.
        var offset = 0
        while offset < bytes.count {
            let n = BIO_write(input, bytes.baseAddress.map { $0 + offset }, Int32(clamping: bytes.count - offset))
            guard n > 0 else {
                state = .failed("the TLS input buffer refused bytes")
                return []
            }
            offset += Int(n)
        }
        advance()
        var plaintext: [[UInt8]] = []
        while state == .open {
            var piece = [UInt8](repeating: 0, count: Self.chunk)
            ERR_clear_error()
            let n = piece.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                piece.removeLast(piece.count - Int(n))
                plaintext.append(piece)
                continue
            }
            settle(n)
            break
        }
        return plaintext
    }

    /// Encrypts `bytes` into records for `takeOutput`. Only once open; false otherwise.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard state == .open else { return false }
        guard !bytes.isEmpty else { return true }
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let n = SSL_write(ssl, bytes.baseAddress.map { $0 + offset }, Int32(clamping: bytes.count - offset))
            guard n > 0 else {
                settle(n)
                return false
            }
            offset += Int(n)
        }
        return true
    }

    /// Sends close_notify (into `takeOutput`); nothing can be sent after it.
    public func close() {
        guard state == .open else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        state = .closed
    }

    /// The bytes waiting for the socket: handshake replies, records, alerts.
    public func takeOutput() -> [UInt8] {
        let pending = Int(atrium_bio_pending(output))
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let n = bytes.withUnsafeMutableBytes { BIO_read(output, $0.baseAddress, Int32(clamping: $0.count)) }
        if n < Int32(pending) { bytes.removeLast(pending - Int(max(0, n))) }
        return bytes
    }

    /// The peer's certificate's SHA-256 fingerprint once open (a client's view of the server).
    public var peerFingerprint: String? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        return try? DTLSCertificate.fingerprint(of: certificate)
    }

    /// Drives the handshake as far as the input allows.
    private func advance() {
        guard state == .handshaking else { return }
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            state = .open
        } else {
            settle(r)
        }
    }

    /// What a call returning `result` (≤ 0) means for the connection.
    private func settle(_ result: Int32) {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            break
        case SSL_ERROR_ZERO_RETURN:
            state = .closed
        default:
            let reason = TLSError.openSSL(state == .handshaking ? "TLS handshake failed" : "TLS failed").message
            state = .failed(reason)
        }
    }
}
