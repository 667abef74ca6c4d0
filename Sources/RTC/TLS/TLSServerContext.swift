import COpenSSL
import Foundation

/// Why a TLS certificate could not be used, in words an operator can act on.
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// `what`, followed by OpenSSL's error queue (emptied).
    static func openSSL(_ what: String) -> TLSError { TLSError(DTLSError.openSSL(what).message) }
}

/// A server certificate chain and its key, checked and ready to accept TLS connections with.
/// Immutable: a renewed certificate is a new context, and connections made from the old one keep
/// it (OpenSSL counts the references) until they end.
public final class TLSServerContext: @unchecked Sendable {
    let context: OpaquePointer
    /// SHA-256 of the leaf certificate, `AB:CD:...`: what a browser shows as the fingerprint.
    public let fingerprint: String
    /// Base64 SHA-256 of the leaf's SubjectPublicKeyInfo: what Chromium's
    /// `--ignore-certificate-errors-spki-list` and HTTP key pinning name.
    public let publicKeyHash: String
    /// When the leaf certificate stops being valid.
    public let notAfter: Date

    private init(context: OpaquePointer, fingerprint: String, publicKeyHash: String, notAfter: Date) {
        self.context = context
        self.fingerprint = fingerprint
        self.publicKeyHash = publicKeyHash
        self.notAfter = notAfter
    }

    deinit { SSL_CTX_free(context) }

    /// Reads a PEM certificate chain (leaf first, as certbot's fullchain.pem) and its PEM key.
    public static func load(certificateFile: String, keyFile: String, now: Date = Date()) throws(TLSError) -> TLSServerContext {
        guard let certificate = FileManager.default.contents(atPath: certificateFile) else {
            throw TLSError("\(certificateFile): cannot be read (missing or not permitted)")
        }
        guard let key = FileManager.default.contents(atPath: keyFile) else {
            throw TLSError("\(keyFile): cannot be read (missing or not permitted)")
        }
        do throws(TLSError) {
            return try load(certificatePEM: Array(certificate), keyPEM: Array(key), now: now)
        } catch {
            throw TLSError("\(certificateFile) with \(keyFile): \(error.message)")
        }
    }

    /// The same from PEM bytes. Refuses a chain with no certificate, a key that is not the
    /// certificate's, and a leaf outside its validity period at `now`.
    public static func load(certificatePEM: [UInt8], keyPEM: [UInt8], now: Date = Date()) throws(TLSError) -> TLSServerContext {
        ERR_clear_error()
        let chain = try PEM.certificates(certificatePEM)
        defer { chain.forEach { X509_free($0) } }
        guard let leaf = chain.first else { throw TLSError("no PEM certificate in the certificate file") }
        guard let key = PEM.privateKey(keyPEM) else { throw .openSSL("the key file holds no PEM private key") }
        defer { EVP_PKEY_free(key) }
        guard X509_check_private_key(leaf, key) == 1 else {
            ERR_clear_error()
            throw TLSError("the key does not belong to the certificate")
        }
        let notBefore = try CertificateTime.date(X509_get0_notBefore(leaf))
        let notAfter = try CertificateTime.date(X509_get0_notAfter(leaf))
        if now > notAfter { throw TLSError("the certificate expired on \(CertificateTime.text(notAfter))") }
        if now < notBefore { throw TLSError("the certificate is not valid before \(CertificateTime.text(notBefore))") }

        guard let context = SSL_CTX_new(TLS_server_method()) else { throw .openSSL("SSL_CTX_new") }
        var ok = SSL_CTX_use_certificate(context, leaf) == 1 && SSL_CTX_use_PrivateKey(context, key) == 1
        for intermediate in chain.dropFirst() where ok {
            ok = atrium_ssl_ctx_add1_chain_cert(context, intermediate) == 1
        }
        ok = ok && SSL_CTX_check_private_key(context) == 1 && atrium_ssl_ctx_set_min_tls12(context) == 1
        guard ok else {
            SSL_CTX_free(context)
            throw .openSSL("setting up TLS with the certificate")
        }
        // Renegotiation lets one client make the server redo handshakes at will; browsers never
        // need it. Idle connections (most WebSockets) give their read and write buffers back.
        atrium_ssl_ctx_server_options(context)
        _ = atrium_ssl_ctx_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        do throws(DTLSError) {
            return TLSServerContext(context: context, fingerprint: try DTLSCertificate.fingerprint(of: leaf),
                                    publicKeyHash: try publicKeyHash(of: leaf), notAfter: notAfter)
        } catch {
            SSL_CTX_free(context)
            throw TLSError(error.message)
        }
    }

    /// A server-side connection using this certificate.
    public func accept() throws(TLSError) -> TLSConnection { try TLSConnection(context: context, server: true) }

    static func publicKeyHash(of certificate: OpaquePointer) throws(DTLSError) -> String {
        var der: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PUBKEY(X509_get0_pubkey(certificate), &der)
        guard length > 0, let der else { throw .openSSL("i2d_PUBKEY") }
        defer { CRYPTO_free(der, #fileID, #line) }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var digestLength: UInt32 = 0
        guard EVP_Digest(der, Int(length), &digest, &digestLength, EVP_sha256(), nil) == 1 else { throw .openSSL("EVP_Digest") }
        return Data(digest.prefix(Int(digestLength))).base64EncodedString()
    }
}

/// PEM reading from memory.
enum PEM {
    /// Every certificate in `pem`, in order. The caller frees them.
    static func certificates(_ pem: [UInt8]) throws(TLSError) -> [OpaquePointer] {
        guard let bio = memoryBIO(pem) else { throw .openSSL("BIO_new_mem_buf") }
        defer { BIO_free(bio) }
        var certificates: [OpaquePointer] = []
        while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) { certificates.append(certificate) }
        // Reading stops with "no start line" at the end of the input: that is not a failure.
        ERR_clear_error()
        return certificates
    }

    static func privateKey(_ pem: [UInt8]) -> OpaquePointer? {
        guard let bio = memoryBIO(pem) else { return nil }
        defer { BIO_free(bio) }
        return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
    }

    private static func memoryBIO(_ bytes: [UInt8]) -> OpaquePointer? {
        // BIO_new_mem_buf reads the buffer in place: copy it into a BIO that owns its bytes.
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        let written = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32(clamping: $0.count)) }
        guard bytes.isEmpty || written == Int32(clamping: bytes.count) else {
            BIO_free(bio)
            return nil
        }
        return bio
    }
}

/// ASN.1 times of certificates as dates.
public enum CertificateTime {
    static func date(_ time: UnsafePointer<ASN1_TIME>?) throws(TLSError) -> Date {
        var tm = tm()
        guard let time, ASN1_TIME_to_tm(time, &tm) == 1 else { throw .openSSL("a certificate validity time cannot be read") }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }

    public static func text(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}
