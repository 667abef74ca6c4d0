import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the vp8 harness: one input to `fuzzVP8`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzVP8(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-vp8` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzVP8 {
    static func main() { runLibFuzzer(testOneInput) }
}
