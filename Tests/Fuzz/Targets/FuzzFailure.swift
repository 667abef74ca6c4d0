/// A property a harness checks broke: trap, so that libFuzzer keeps the input as a crash.
package func fuzzFailure(_ what: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz property broken: \(what)", file: file, line: line)
}
