#if canImport(Glibc)
import Glibc
#endif

/// The entry of libFuzzer's driver: parses the command line and runs `callback` on each input.
/// Declared here by its C name because libFuzzer ships no module to import it from.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Runs libFuzzer over `testOneInput` with this process's arguments, then exits with its status.
///
/// Rationale: SwiftPM links an executable with `main` aliased to the module's own entry point, so
/// libFuzzer's `main` never runs; each harness's `main` calls the driver instead.
package func runLibFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
