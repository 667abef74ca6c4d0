import FuzzDriver
import FuzzHostTargets

/// libFuzzer's entry for the http harness: one input to `fuzzHTTP`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzHTTP(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-http` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzHTTP {
    static func main() { runLibFuzzer(testOneInput) }
}
