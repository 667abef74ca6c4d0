/// The sending half of AEAD_AES_128_GCM RTP through OpenSSL (see RTPGCMCipher): one call per
/// packet and receiver, the hot path of an SFU.
///
/// The output is byte-for-byte libsrtp's (RTCTests compares them), so receivers cannot tell. The
/// rollover counter is kept per SSRC as RFC 3711 §3.3.1 estimates it, so repeated sequence
/// numbers (retransmissions) are protected again as libsrtp does with allow_repeat_tx.
final class RTPGCMSealer {
    private let cipher: RTPGCMCipher
    /// The highest packet index (ROC << 16 | SEQ) sent per SSRC.
    private var streams: [(ssrc: UInt32, index: UInt64)] = []

    init?(masterKey: [UInt8], masterSalt: [UInt8]) {
        guard let cipher = RTPGCMCipher(masterKey: masterKey, masterSalt: masterSalt, encrypting: true) else { return nil }
        self.cipher = cipher
    }

    /// Protects the RTP packet of `length` bytes in place, appending the tag; returns the new
    /// length, or nil for a packet too short or malformed to have a header, or no room for the tag.
    func seal(_ buffer: UnsafeMutableRawBufferPointer, length: Int) -> Int? {
        guard let header = RTPGCMCipher.header(buffer, length: length), buffer.count - length >= RTPGCMCipher.tagLength else { return nil }
        let index = packetIndex(ssrc: header.ssrc, sequence: header.sequence)
        guard cipher.process(buffer, header: header.length, payloadEnd: length, index: index) else { return nil }
        return length + RTPGCMCipher.tagLength
    }

    /// The index of `sequence` on `ssrc`, moving the stream on when it is the highest yet.
    private func packetIndex(ssrc: UInt32, sequence: UInt16) -> UInt64 {
        guard let i = streams.firstIndex(where: { $0.ssrc == ssrc }) else {
            streams.append((ssrc, UInt64(sequence)))
            return UInt64(sequence)
        }
        let index = RTPGCMCipher.estimateIndex(of: sequence, highest: streams[i].index)
        streams[i].index = max(streams[i].index, index)
        return index
    }
}
