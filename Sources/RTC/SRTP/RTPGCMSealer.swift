import COpenSSL

/// SRTP protection of RTP with AEAD_AES_128_GCM (RFC 7714) straight through OpenSSL's EVP
/// interface: the sending half of the hot path of an SFU, one call per packet and receiver.
///
/// Why not libsrtp here: Debian's libsrtp2 does its AES-GCM through NSS, which builds a fresh
/// PK11 context, and takes locks and allocates, on every packet; a profile of the forwarding path
/// put a fifth of the server's CPU in NSS. This keeps one EVP context per session key, set up
/// once, so a packet costs an IV set, the AAD and the encryption. The output is byte-for-byte
/// libsrtp's (RTCTests compares them), so receivers cannot tell; libsrtp still does everything
/// else (SRTCP, unprotecting, AES-CM).
///
/// Keys (RFC 3711 §4.3, the AES-CM PRF with the 96-bit salt padded to 112 bits, RFC 7714 §11):
/// the session key is AES_k(x) with x = salt || 0x0000 and the label 0x00 XORed into byte 7; the
/// session salt is the first 12 bytes of AES_k(x) with label 0x02. Per packet (RFC 7714 §8.1):
/// IV = (0x0000 || SSRC || ROC || SEQ) XOR session salt, AAD = the RTP header, the 16-byte tag
/// appended. The rollover counter is kept per SSRC as RFC 3711 §3.3.1 estimates it, so repeated
/// sequence numbers (retransmissions) are protected again as libsrtp does with allow_repeat_tx.
final class RTPGCMSealer {
    static let tagLength = 16
    private let context: OpaquePointer
    private var salt = [UInt8](repeating: 0, count: 12)
    /// Rollover state per SSRC: the highest sequence number sent and its rollover counter.
    private var streams: [(ssrc: UInt32, roc: UInt32, highest: UInt16)] = []

    init?(masterKey: [UInt8], masterSalt: [UInt8]) {
        guard masterKey.count == 16, masterSalt.count == 12, let ctx = EVP_CIPHER_CTX_new() else { return nil }
        context = ctx
        guard let key = Self.derive(masterKey: masterKey, masterSalt: masterSalt, label: 0x00),
              let sessionSalt = Self.derive(masterKey: masterKey, masterSalt: masterSalt, label: 0x02),
              EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nil, key, nil) == 1,
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

    /// Protects the RTP packet of `length` bytes in place, appending the tag; returns the new
    /// length, or nil for a packet too short or malformed to have a header, or no room for the tag.
    func seal(_ buffer: UnsafeMutableRawBufferPointer, length: Int) -> Int? {
        guard length >= 12, buffer.count - length >= Self.tagLength, let base = buffer.baseAddress else { return nil }
        var header = 12 + 4 * Int(buffer[0] & 0x0F)
        if buffer[0] & 0x10 != 0 {
            guard header + 4 <= length else { return nil }
            header += 4 + 4 * (Int(buffer[header + 2]) << 8 | Int(buffer[header + 3]))
        }
        guard header <= length else { return nil }
        let ssrc = UInt32(buffer[8]) << 24 | UInt32(buffer[9]) << 16 | UInt32(buffer[10]) << 8 | UInt32(buffer[11])
        let sequence = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
        let roc = rolloverCounter(ssrc: ssrc, sequence: sequence)
        // IV = (00 00 || SSRC || ROC || SEQ) XOR salt, built on the stack.
        var iv: (UInt64, UInt32) = (0, 0)
        withUnsafeMutableBytes(of: &iv) { v in
            for i in 0..<4 { v[2 + i] = buffer[8 + i] }
            v[6] = UInt8(truncatingIfNeeded: roc >> 24); v[7] = UInt8(truncatingIfNeeded: roc >> 16)
            v[8] = UInt8(truncatingIfNeeded: roc >> 8); v[9] = UInt8(truncatingIfNeeded: roc)
            v[10] = buffer[2]; v[11] = buffer[3]
            for i in 0..<12 { v[i] ^= salt[i] }
        }
        var written: Int32 = 0
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let ok = withUnsafeBytes(of: &iv) { v in
            EVP_EncryptInit_ex(context, nil, nil, nil, v.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && EVP_EncryptUpdate(context, nil, &written, bytes, Int32(header)) == 1
                && EVP_EncryptUpdate(context, bytes + header, &written, bytes + header, Int32(length - header)) == 1
                && EVP_EncryptFinal_ex(context, bytes + length, &written) == 1
                && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(Self.tagLength), bytes + length) == 1
        }
        return ok ? length + Self.tagLength : nil
    }

    /// The rollover counter of `sequence` on `ssrc` (RFC 3711 §3.3.1), moving the stream on.
    private func rolloverCounter(ssrc: UInt32, sequence: UInt16) -> UInt32 {
        guard let i = streams.firstIndex(where: { $0.ssrc == ssrc }) else {
            streams.append((ssrc, 0, sequence))
            return 0
        }
        let (roc, highest) = (streams[i].roc, streams[i].highest)
        var guess = roc
        if highest < 32_768 {
            if Int(sequence) - Int(highest) > 32_768 && roc > 0 { guess = roc - 1 }
        } else if Int(highest) - 32_768 > Int(sequence) {
            guess = roc &+ 1
        }
        if guess == roc &+ 1 || (guess == roc && sequence > highest) {
            streams[i].roc = guess
            streams[i].highest = sequence
        }
        return guess
    }
}
