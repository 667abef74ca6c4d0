import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the turn harness: one input to `fuzzTURN`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzTURN(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-turn` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzTURN {
    static func main() { runLibFuzzer(testOneInput) }
}
