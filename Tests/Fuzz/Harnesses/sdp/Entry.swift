import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the sdp harness: one input to `fuzzSDP`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzSDP(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-sdp` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzSDP {
    static func main() { runLibFuzzer(testOneInput) }
}
