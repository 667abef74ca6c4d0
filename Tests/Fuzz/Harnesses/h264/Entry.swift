import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the h264 harness: one input to `fuzzH264`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzH264(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-h264` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzH264 {
    static func main() { runLibFuzzer(testOneInput) }
}
