/// Bytes from hex text, ignoring spaces and newlines (test vectors are written as in the RFCs).
func hexBytes(_ s: String) -> [UInt8] {
    let digits = Array(s.filter { $0.isHexDigit })
    return stride(from: 0, to: digits.count - 1, by: 2).map { UInt8(String(digits[$0...($0 + 1)]), radix: 16)! }
}

/// A small deterministic random source, so a failing fuzz case can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A plain RTP packet: `csrcs` CSRCs, a one-byte-header extension when `extensionWords` > 0.
func rtpPacket(sequence: UInt16, ssrc: UInt32, payload: Int, csrcs: Int = 0, extensionWords: Int = 0) -> [UInt8] {
    var p: [UInt8] = [0x80 | UInt8(csrcs) | (extensionWords > 0 ? 0x10 : 0), 96,
                      UInt8(sequence >> 8), UInt8(truncatingIfNeeded: sequence), 0, 1, 2, 3,
                      UInt8(ssrc >> 24), UInt8(truncatingIfNeeded: ssrc >> 16), UInt8(truncatingIfNeeded: ssrc >> 8), UInt8(truncatingIfNeeded: ssrc)]
    for c in 0..<csrcs { p += [0, 0, 0, UInt8(c + 1)] }
    if extensionWords > 0 {
        p += [0xBE, 0xDE, 0, UInt8(extensionWords)]
        p += (0..<(extensionWords * 4)).map { UInt8($0 | 0x10) }
    }
    p += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(sequence)) }
    return p
}
