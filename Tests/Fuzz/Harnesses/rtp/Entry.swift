import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the rtp harness: one input to `fuzzRTP`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzRTP(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-rtp` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzRTP {
    static func main() { runLibFuzzer(testOneInput) }
}
