import CJansson
import COpenSSL
import CSRTP
import Testing

/// The system libraries the media stack and C plugins build on link and initialise.
@Suite struct SystemLibrariesTests {
    @Test func openSSLSpeaksDTLS() {
        let version = String(cString: OpenSSL_version(OPENSSL_VERSION))
        #expect(version.hasPrefix("OpenSSL 3"))
        let ctx = SSL_CTX_new(DTLS_method())
        #expect(ctx != nil)
        SSL_CTX_free(ctx)
    }

    @Test func libsrtpInitialises() {
        #expect(srtp_init() == srtp_err_status_ok)
        #expect(String(cString: srtp_get_version_string()).contains("2."))
        #expect(srtp_shutdown() == srtp_err_status_ok)
    }

    @Test func janssonParses() {
        var error = json_error_t()
        let root = json_loads("{\"a\":[1,2]}", 0, &error)
        #expect(root != nil)
        #expect(json_array_size(json_object_get(root, "a")) == 2)
        json_decref(root)
    }
}
