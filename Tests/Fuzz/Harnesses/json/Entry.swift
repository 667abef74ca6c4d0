import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the json harness: one input to `fuzzJSON`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzJSON(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-json` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzJSON {
    static func main() { runLibFuzzer(testOneInput) }
}
