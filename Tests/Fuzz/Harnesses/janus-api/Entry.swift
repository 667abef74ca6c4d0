import FuzzDriver
import FuzzHostTargets

/// libFuzzer's entry for the janus-api harness: one input to `fuzzJanusAPI`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzJanusAPI(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-janus-api` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzJanusAPI {
    static func main() { runLibFuzzer(testOneInput) }
}
