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
