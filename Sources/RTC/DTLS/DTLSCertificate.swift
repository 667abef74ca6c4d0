import COpenSSL

/// Why a certificate could not be made or loaded, with OpenSSL's own words.
public struct DTLSError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "DTLS: \(message)" }

    /// The text of OpenSSL's error queue (emptied). The corresponding C function is `ERR_get_error`.
    static func openSSL(_ what: String) -> DTLSError {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            parts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return DTLSError(parts.isEmpty ? what : "\(what): \(parts.joined(separator: "; "))")
    }
}

/// An ECDSA P-256 key and self-signed certificate for DTLS, with its SHA-256 fingerprint in SDP
/// form (`AB:CD:...`). Immutable after creation; shared by every DTLS association of the process.
public final class DTLSCertificate: @unchecked Sendable {
    let key: OpaquePointer
    let certificate: OpaquePointer
    /// Upper-case hex pairs joined by colons, as in `a=fingerprint:sha-256 ...`.
    public let fingerprint: String

    private init(key: OpaquePointer, certificate: OpaquePointer) throws(DTLSError) {
        self.key = key
        self.certificate = certificate
        fingerprint = try Self.fingerprint(of: certificate)
    }

    deinit {
        X509_free(certificate)
        EVP_PKEY_free(key)
    }

    /// Generates a fresh key and a certificate valid for 30 days around now.
    public static func generate(commonName: String = "atrium") throws(DTLSError) -> DTLSCertificate {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw .openSSL("EVP_PKEY_CTX_new_id") }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1,
            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, NID_X9_62_prime256v1) == 1,
            EVP_PKEY_keygen(context, &key) == 1, let key
        else { throw .openSSL("generating the P-256 key") }
        guard let x509 = X509_new() else {
            EVP_PKEY_free(key)
            throw .openSSL("X509_new")
        }
        let ok = X509_set_version(x509, 2) == 1
            && ASN1_INTEGER_set(X509_get_serialNumber(x509), Int.random(in: 1...Int(Int32.max))) == 1
            && X509_gmtime_adj(X509_getm_notBefore(x509), -86_400) != nil
            && X509_gmtime_adj(X509_getm_notAfter(x509), 30 * 86_400) != nil
            && X509_set_pubkey(x509, key) == 1
            && X509_NAME_add_entry_by_txt(X509_get_subject_name(x509), "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1
            && X509_set_issuer_name(x509, X509_get_subject_name(x509)) == 1
            && X509_sign(x509, key, EVP_sha256()) > 0
        guard ok else {
            X509_free(x509)
            EVP_PKEY_free(key)
            throw .openSSL("making the certificate")
        }
        return try DTLSCertificate(key: key, certificate: x509)
    }

    /// Loads a certificate and its private key from PEM text (configured certificates).
    public static func load(certificatePEM: String, keyPEM: String) throws(DTLSError) -> DTLSCertificate {
        func bio(_ text: String) -> OpaquePointer? {
            let bytes = Array(text.utf8)
            guard let b = BIO_new(BIO_s_mem()) else { return nil }
            _ = bytes.withUnsafeBytes { BIO_write(b, $0.baseAddress, Int32($0.count)) }
            return b
        }
        guard let certBIO = bio(certificatePEM), let keyBIO = bio(keyPEM) else { throw .openSSL("BIO_new") }
        defer {
            BIO_free(certBIO)
            BIO_free(keyBIO)
        }
        guard let x509 = PEM_read_bio_X509(certBIO, nil, nil, nil) else { throw .openSSL("reading the certificate PEM") }
        guard let key = PEM_read_bio_PrivateKey(keyBIO, nil, nil, nil) else {
            X509_free(x509)
            throw .openSSL("reading the private key PEM")
        }
        guard X509_check_private_key(x509, key) == 1 else {
            X509_free(x509)
            EVP_PKEY_free(key)
            throw .openSSL("the private key does not match the certificate")
        }
        return try DTLSCertificate(key: key, certificate: x509)
    }

    /// The SHA-256 fingerprint of a certificate. The corresponding C function is `X509_digest`.
    static func fingerprint(of certificate: OpaquePointer) throws(DTLSError) -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, EVP_sha256(), &digest, &length) == 1 else { throw .openSSL("X509_digest") }
        return digest.prefix(Int(length)).map { byte in
            let h = String(byte, radix: 16, uppercase: true)
            return h.count == 1 ? "0" + h : h
        }.joined(separator: ":")
    }
}
