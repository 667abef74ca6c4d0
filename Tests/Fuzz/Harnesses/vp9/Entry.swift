import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the vp9 harness: one input to `fuzzVP9`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzVP9(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-vp9` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzVP9 {
    static func main() { runLibFuzzer(testOneInput) }
}
