import AtriumJSON

/// One input to the JSON parser. Whatever parses must write out as text that parses again.
public func fuzzJSON(_ data: UnsafeRawBufferPointer) {
    guard let value = try? JSON.parse(bytes: data.assumingMemoryBound(to: UInt8.self)) else { return }
    let written = value.serializedBytes
    guard (try? JSON.parse(bytes: written)) != nil else {
        fuzzFailure("the writer's output does not parse: \(String(decoding: written, as: UTF8.self))")
    }
    _ = value.prettyPrinted()
}
