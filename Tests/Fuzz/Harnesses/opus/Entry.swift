import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the opus harness: one input to `fuzzOpus`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzOpus(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-opus` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzOpus {
    static func main() { runLibFuzzer(testOneInput) }
}
