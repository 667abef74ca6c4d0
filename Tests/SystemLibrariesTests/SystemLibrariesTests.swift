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

    /// Only reads the version: srtp_init/srtp_shutdown change process-wide state that the SRTP tests,
    /// running in parallel, depend on (the RTC module initialises libsrtp once and never shuts it down).
    @Test func libsrtpIsVersion2() {
        #expect(String(cString: srtp_get_version_string()).contains("2."))
        #expect(srtp_get_version() >= 0x0200_0000)
    }

    @Test func janssonParses() {
        var error = json_error_t()
        let root = json_loads("{\"a\":[1,2]}", 0, &error)
        #expect(root != nil)
        #expect(json_array_size(json_object_get(root, "a")) == 2)
        json_decref(root)
    }
}
