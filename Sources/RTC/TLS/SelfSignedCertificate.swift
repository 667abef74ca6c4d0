import COpenSSL
import Foundation

/// A self-signed server certificate for trials on a LAN: an ECDSA P-256 key and a certificate
/// naming the addresses and host names people will type, as PEM. Browsers warn about it once
/// (or trust it by its fingerprint); it is not for the public internet, where a certificate
/// from a CA (certbot) belongs.
public struct SelfSignedCertificate: Sendable {
    public var certificatePEM: [UInt8]
    public var keyPEM: [UInt8]

    /// - Parameters:
    ///   - addresses: IP addresses (v4 or v6) put in subjectAltName.
    ///   - hostNames: DNS names put in subjectAltName.
    ///   - days: how long it is valid (it starts a day back, for clocks a little behind).
    public static func generate(addresses: [String], hostNames: [String], days: Int = 365) throws(TLSError) -> SelfSignedCertificate {
        guard !addresses.isEmpty || !hostNames.isEmpty else { throw TLSError("a self-signed certificate needs an address or a name") }
        for name in hostNames where !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) {
            throw TLSError("\"\(name)\" is not a host name")
        }
        for address in addresses where !IPText.isValid(address) {
            throw TLSError("\"\(address)\" is not an IP address")
        }
        ERR_clear_error()
        guard let keyContext = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw .openSSL("EVP_PKEY_CTX_new_id") }
        defer { EVP_PKEY_CTX_free(keyContext) }
        var generated: OpaquePointer?
        guard EVP_PKEY_keygen_init(keyContext) == 1,
            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(keyContext, NID_X9_62_prime256v1) == 1,
            EVP_PKEY_keygen(keyContext, &generated) == 1, let key = generated
        else { throw .openSSL("generating a P-256 key") }
        defer { EVP_PKEY_free(key) }
        guard let x509 = X509_new() else { throw .openSSL("X509_new") }
        defer { X509_free(x509) }
        let commonName = hostNames.first ?? addresses.first ?? "atrium"
        var ok = X509_set_version(x509, 2) == 1
            && ASN1_INTEGER_set(X509_get_serialNumber(x509), Int.random(in: 1...Int(Int32.max))) == 1
            && X509_gmtime_adj(X509_getm_notBefore(x509), -86_400) != nil
            && X509_gmtime_adj(X509_getm_notAfter(x509), max(1, days) * 86_400) != nil
            && X509_set_pubkey(x509, key) == 1
            && X509_NAME_add_entry_by_txt(X509_get_subject_name(x509), "CN", MBSTRING_ASC, commonName, -1, -1, 0) == 1
            && X509_set_issuer_name(x509, X509_get_subject_name(x509)) == 1
        let alternativeNames = (addresses.map { "IP:\($0)" } + hostNames.map { "DNS:\($0)" }).joined(separator: ",")
        for (nid, value) in [(NID_subject_alt_name, alternativeNames), (NID_basic_constraints, "critical,CA:FALSE"),
                             (NID_ext_key_usage, "serverAuth")] where ok {
            var v3 = X509V3_CTX()
            X509V3_set_ctx(&v3, x509, x509, nil, nil, 0)
            guard let ext = X509V3_EXT_nconf_nid(nil, &v3, nid, value) else {
                ok = false
                break
            }
            ok = X509_add_ext(x509, ext, -1) == 1
            X509_EXTENSION_free(ext)
        }
        guard ok, X509_sign(x509, key, EVP_sha256()) > 0 else { throw .openSSL("making the certificate") }
        return SelfSignedCertificate(certificatePEM: try pem { PEM_write_bio_X509($0, x509) },
                                     keyPEM: try pem { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) })
    }

    private static func pem(_ write: (OpaquePointer) -> Int32) throws(TLSError) -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw .openSSL("BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw .openSSL("writing PEM") }
        var bytes = [UInt8](repeating: 0, count: Int(atrium_bio_pending(bio)))
        let n = bytes.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32(clamping: $0.count)) }
        guard n == Int32(bytes.count) else { throw .openSSL("reading PEM") }
        return bytes
    }
}

/// IPv4 or IPv6 address text, as inet_pton reads it.
public enum IPText {
    public static func isValid(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}
