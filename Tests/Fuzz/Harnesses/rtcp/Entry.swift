import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the rtcp harness: one input to `fuzzRTCP`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzRTCP(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-rtcp` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzRTCP {
    static func main() { runLibFuzzer(testOneInput) }
}
