import COpenSSL

/// AEAD_AES_128_GCM (RFC 7714) for SRTP's RTP packets straight through OpenSSL's EVP interface:
/// what RTPGCMSealer and RTPGCMOpener share, the keys and the per-packet cryptography.
///
/// Why not libsrtp here: Debian's libsrtp2 does its AES-GCM through NSS, which builds a fresh
/// PK11 context, and takes locks and allocates, on every packet; a profile of the forwarding path
/// put a fifth of the server's CPU in NSS protecting, and a tenth of the media thread in NSS
/// unprotecting. This keeps one EVP context per session key, set up once, so a packet costs an IV
/// set, the AAD and the cipher. libsrtp still does everything else (SRTCP, AES-CM).
///
/// Keys (RFC 3711 §4.3, the AES-CM PRF with the 96-bit salt padded to 112 bits, RFC 7714 §11):
/// the session key is AES_k(x) with x = salt || 0x0000 and the label 0x00 XORed into byte 7; the
/// session salt is the first 12 bytes of AES_k(x) with label 0x02. Per packet (RFC 7714 §8.1):
/// IV = (0x0000 || SSRC || ROC || SEQ) XOR session salt, AAD = the RTP header, the 16-byte tag
/// after the payload.
final class RTPGCMCipher {
    static let tagLength = 16
    private let context: OpaquePointer
    private let encrypting: Bool
    private let salt: [UInt8]

    /// A cipher that seals (`encrypting`) or opens packets protected with this master key and salt.
    init?(masterKey: [UInt8], masterSalt: [UInt8], encrypting: Bool) {
        guard masterKey.count == 16, masterSalt.count == 12, let ctx = EVP_CIPHER_CTX_new() else { return nil }
        context = ctx
        self.encrypting = encrypting
        guard let key = Self.derive(masterKey: masterKey, masterSalt: masterSalt, label: 0x00),
              let sessionSalt = Self.derive(masterKey: masterKey, masterSalt: masterSalt, label: 0x02),
              EVP_CipherInit_ex(ctx, EVP_aes_128_gcm(), nil, key, nil, encrypting ? 1 : 0) == 1,
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nil) == 1
        else {
            EVP_CIPHER_CTX_free(ctx)
            return nil
        }
        salt = Array(sessionSalt.prefix(12))
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// One block of the AES-CM key derivation for `label` (index 0, key derivation rate 0).
    private static func derive(masterKey: [UInt8], masterSalt: [UInt8], label: UInt8) -> [UInt8]? {
        var block = masterSalt + [0, 0, 0, 0]  // 12-byte salt, 2 zero bytes of padding, 2 of block counter
        block[7] ^= label
        guard let ctx = EVP_CIPHER_CTX_new() else { return nil }
        defer { EVP_CIPHER_CTX_free(ctx) }
        var out = [UInt8](repeating: 0, count: 32)
        var written: Int32 = 0
        guard EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), nil, masterKey, nil) == 1,
              EVP_CIPHER_CTX_set_padding(ctx, 0) == 1,
              EVP_EncryptUpdate(ctx, &out, &written, block, 16) == 1, written == 16
        else { return nil }
        return Array(out.prefix(16))
    }

    /// The RTP header of the `length` bytes in `buffer`: its length (CSRCs and extension
    /// included, all of it AAD) and the SSRC and sequence number the IV is built from; nil when
    /// the packet is too short for the header it announces (libsrtp's bad_param).
    static func header(_ buffer: UnsafeMutableRawBufferPointer, length: Int) -> (length: Int, ssrc: UInt32, sequence: UInt16)? {
        guard length >= 12, length <= buffer.count else { return nil }
        var header = 12 + 4 * Int(buffer[0] & 0x0F)
        if buffer[0] & 0x10 != 0 {
            guard header + 4 <= length else { return nil }
            header += 4 + 4 * (Int(buffer[header + 2]) << 8 | Int(buffer[header + 3]))
        }
        guard header <= length else { return nil }
        let ssrc = UInt32(buffer[8]) << 24 | UInt32(buffer[9]) << 16 | UInt32(buffer[10]) << 8 | UInt32(buffer[11])
        return (header, ssrc, UInt16(buffer[2]) << 8 | UInt16(buffer[3]))
    }

    /// The packet index (ROC << 16 | SEQ) `sequence` most likely has, given the highest index
    /// seen on its SSRC (RFC 3711 §3.3.1); the same guess as libsrtp's srtp_rdbx_estimate_index,
    /// whose special case for a first rollover (ROC 0 up to 32768) this rule already gives.
    static func estimateIndex(of sequence: UInt16, highest: UInt64) -> UInt64 {
        let roc = highest >> 16, top = Int(highest & 0xFFFF)
        var guess = roc
        if top < 32_768 {
            if Int(sequence) - top > 32_768 && roc > 0 { guess = roc - 1 }
        } else if top - 32_768 > Int(sequence) {
            guess = roc + 1
        }
        return guess << 16 | UInt64(sequence)
    }

    /// Seals or opens in place the packet whose header is the first `header` bytes, whose
    /// payload runs to `payloadEnd` and whose tag follows it, at packet index `index`: sealing
    /// writes the tag, opening checks it. False when opening finds the tag wrong (the payload is
    /// then garbage) or OpenSSL fails. Allocates nothing.
    func process(_ buffer: UnsafeMutableRawBufferPointer, header: Int, payloadEnd: Int, index: UInt64) -> Bool {
        guard let base = buffer.baseAddress else { return false }
        // IV = (00 00 || SSRC || ROC || SEQ) XOR salt, built on the stack; ROC || SEQ is the index.
        var iv: (UInt64, UInt32) = (0, 0)
        withUnsafeMutableBytes(of: &iv) { v in
            for i in 0..<4 { v[2 + i] = buffer[8 + i] }
            for i in 0..<6 { v[6 + i] = UInt8(truncatingIfNeeded: index >> (40 - 8 * i)) }
            for i in 0..<12 { v[i] ^= salt[i] }
        }
        var written: Int32 = 0
        let bytes = base.assumingMemoryBound(to: UInt8.self), tag = bytes + payloadEnd, tagLength = Int32(Self.tagLength)
        let started = withUnsafeBytes(of: &iv) { v in
            EVP_CipherInit_ex(context, nil, nil, nil, v.baseAddress!.assumingMemoryBound(to: UInt8.self), -1) == 1
                && EVP_CipherUpdate(context, nil, &written, bytes, Int32(header)) == 1
                && EVP_CipherUpdate(context, bytes + header, &written, bytes + header, Int32(payloadEnd - header)) == 1
        }
        guard started else { return false }
        if encrypting {
            return EVP_EncryptFinal_ex(context, tag, &written) == 1
                && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, tagLength, tag) == 1
        }
        return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, tagLength, tag) == 1
            && EVP_DecryptFinal_ex(context, tag, &written) == 1
    }
}
