import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the stun harness: one input to `fuzzSTUN`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzSTUN(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-stun` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzSTUN {
    static func main() { runLibFuzzer(testOneInput) }
}
