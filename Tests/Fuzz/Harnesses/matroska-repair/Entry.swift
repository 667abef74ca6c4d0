import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the matroska-repair harness: one input to `fuzzMatroskaRepair`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzMatroskaRepair(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-matroska-repair` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzMatroskaRepair {
    static func main() { runLibFuzzer(testOneInput) }
}
