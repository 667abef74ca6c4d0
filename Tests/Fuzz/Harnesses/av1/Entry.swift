import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the av1 harness: one input to `fuzzAV1`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzAV1(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-av1` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzAV1 {
    static func main() { runLibFuzzer(testOneInput) }
}
