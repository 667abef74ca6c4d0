import CSRTP

/// The receiving half of AEAD_AES_128_GCM RTP through OpenSSL (see RTPGCMCipher), for an inbound
/// context that takes any SSRC, as libsrtp's ssrc_any_inbound does.
///
/// Per SSRC it keeps what libsrtp's replay database keeps (RFC 3711 §3.3): the highest packet
/// index accepted and a window of the 1024 indices up to it. A packet's index is guessed from
/// that highest index; one already accepted, or older than the window, is refused before any
/// cryptography. The state moves only once the tag has verified, so a forged or damaged packet
/// changes nothing. The first packet of an SSRC is taken at ROC 0 whatever its sequence number,
/// as libsrtp does. Errors carry libsrtp's statuses, so callers cannot tell the two apart.
final class RTPGCMOpener {
    /// The replay window in packets; SRTPContext gives libsrtp the same (its window_size).
    static let windowSize: UInt64 = 1024
    /// Only the key holder can start a stream, but the table still must not grow without end.
    static let maximumStreams = 256
    private static let windowWords = Int(windowSize / 64)

    private let cipher: RTPGCMCipher
    /// The highest packet index (ROC << 16 | SEQ) accepted per SSRC.
    private var streams: [(ssrc: UInt32, index: UInt64)] = []
    /// The replay windows, `windowWords` words a stream in the order of `streams`: the bit of
    /// index i (at i mod windowSize) is set once i has been accepted, for the windowSize indices
    /// up to the stream's highest; a flat array, so a packet allocates nothing.
    private var accepted: [UInt64] = []

    init?(masterKey: [UInt8], masterSalt: [UInt8]) {
        guard let cipher = RTPGCMCipher(masterKey: masterKey, masterSalt: masterSalt, encrypting: false) else { return nil }
        self.cipher = cipher
    }

    /// Checks and decrypts in place the SRTP packet of `length` bytes; returns the plain length.
    func open(_ buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard let header = RTPGCMCipher.header(buffer, length: length), length - header.length >= RTPGCMCipher.tagLength else {
            throw SRTPError(srtp_err_status_bad_param, "unprotect")
        }
        let slot = streams.firstIndex { $0.ssrc == header.ssrc }
        var index = UInt64(header.sequence)
        if let slot {
            index = RTPGCMCipher.estimateIndex(of: header.sequence, highest: streams[slot].index)
            try checkReplay(index, in: slot)
        } else if streams.count >= Self.maximumStreams {
            throw SRTPError(srtp_err_status_no_ctx, "unprotect (too many SSRCs)")
        }
        let payloadEnd = length - RTPGCMCipher.tagLength
        guard cipher.process(buffer, header: header.length, payloadEnd: payloadEnd, index: index) else {
            throw SRTPError(srtp_err_status_auth_fail, "unprotect")
        }
        record(index, in: slot ?? addStream(ssrc: header.ssrc, index: index))
        return payloadEnd
    }

    /// Refuses an index already accepted (replay_fail) or below the window (replay_old), as
    /// libsrtp's srtp_rdbx_check does; anything above the highest index is new.
    private func checkReplay(_ index: UInt64, in slot: Int) throws(SRTPError) {
        let highest = streams[slot].index
        guard index <= highest else { return }
        guard highest - index < Self.windowSize else { throw SRTPError(srtp_err_status_replay_old, "unprotect") }
        let (word, bit) = position(of: index, in: slot)
        if accepted[word] & bit != 0 { throw SRTPError(srtp_err_status_replay_fail, "unprotect") }
    }

    /// Marks an authenticated index, moving the window up when it is the highest yet: the slots
    /// of the indices it passes over held indices that now fall out of the window.
    private func record(_ index: UInt64, in slot: Int) {
        let highest = streams[slot].index
        if index > highest {
            if index - highest >= Self.windowSize {
                for w in 0..<Self.windowWords { accepted[slot * Self.windowWords + w] = 0 }
            } else {
                for passed in highest + 1..<index {
                    let (word, bit) = position(of: passed, in: slot)
                    accepted[word] &= ~bit
                }
            }
            streams[slot].index = index
        }
        let (word, bit) = position(of: index, in: slot)
        accepted[word] |= bit
    }

    private func addStream(ssrc: UInt32, index: UInt64) -> Int {
        streams.append((ssrc, index))
        accepted.append(contentsOf: repeatElement(0, count: Self.windowWords))
        return streams.count - 1
    }

    /// The word of `accepted` and the bit in it that stand for `index` on the stream in `slot`.
    private func position(of index: UInt64, in slot: Int) -> (word: Int, bit: UInt64) {
        (slot * Self.windowWords + Int(index / 64 % UInt64(Self.windowWords)), 1 << (index % 64))
    }
}
