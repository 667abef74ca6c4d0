import FuzzDriver
import FuzzTargets

/// libFuzzer's entry for the tls harness: one input to `fuzzTLS`.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzTLS(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}

/// The `fuzz-tls` executable: libFuzzer's driver over `testOneInput`.
@main enum FuzzTLS {
    static func main() { runLibFuzzer(testOneInput) }
}
