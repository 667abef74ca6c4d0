import Testing
@testable import AtriumJSON

@Suite struct JSONParsingTests {
    @Test func parsesEveryKindOfValue() throws {
        let value = try JSON.parse(#"{"a":[1,-2,3.5,true,false,null,"x\n\u00e9\ud83d\ude00"],"b":{}}"#)
        #expect(value["a"] == [1, -2, 3.5, true, false, nil, "x\né😀"])
        #expect(value["b"] == .object([:]))
    }

    @Test func keepsJanusIDsExact() throws {
        let id: Int64 = 0x1F_FFFF_FFFF_FFFF
        let value = try JSON.parse("{\"id\":\(id)}")
        #expect(value["id"]?.intValue == id)
        #expect(value.serialized == "{\"id\":\(id)}")
    }

    @Test func reportsLineAndColumn() {
        #expect(throws: JSONParseError(line: 3, column: 1, message: "unexpected '}', a string key was expected")) {
            try JSON.parse("{\n  \"a\": 1,\n}")
        }
        #expect(throws: JSONParseError.self) { try JSON.parse("") }
        #expect(throws: JSONParseError.self) { try JSON.parse("[1,]") }
        #expect(throws: JSONParseError.self) { try JSON.parse("01") }
        #expect(throws: JSONParseError.self) { try JSON.parse("\"\\ud800\"") }
        #expect(throws: JSONParseError.self) { try JSON.parse("{\"a\":1,\"a\":2}") }
        #expect(throws: JSONParseError.self) { try JSON.parse("1e999") }
        #expect(throws: JSONParseError.self) { try JSON.parse("[1] x") }
    }

    @Test func refusesDeepNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSON.parse(ok)) != nil)
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSON.parse(bytes: [0x22, 0xFF, 0x22]) }
    }

    @Test func roundTripsThroughTheWriter() throws {
        let text = #"{"janus":"event","list":[1,2.25,"a\"b\\c\u0001"],"nested":{"k":null}}"#
        let value = try JSON.parse(text)
        #expect(try JSON.parse(value.serialized) == value)
        #expect(try JSON.parse(value.prettyPrinted()) == value)
        #expect(value.serialized.hasPrefix(#"{"janus":"event""#))
    }

    @Test func objectsKeepInsertionOrderAndReplaceInPlace() {
        var o: JSONObject = ["z": 1, "a": 2]
        o["z"] = 3
        o["m"] = 4
        #expect(o.keys == ["z", "a", "m"])
        o["a"] = nil
        #expect(o.keys == ["z", "m"])
    }
}

/// Documents built to cost more than their size: many keys, many values.
@Suite struct JSONLimitTests {
    static func object(keys: Int) -> String {
        "{" + (0..<keys).map { "\"k\($0)\":0" }.joined(separator: ",") + "}"
    }

    @Test func manyKeysParse() throws {
        // 100,000 keys (under 1 MiB): when each key searched the ones before it, this one test took
        // minutes (5·10⁹ string comparisons); it now takes milliseconds.
        let value = try JSON.parse(Self.object(keys: 100_000))
        #expect(value.objectValue?.count == 100_000)
        #expect(value["k99999"] == 0)
    }

    @Test func requestLimitsRefuseHugeObjectsAndDocuments() {
        let keys = Self.object(keys: 1_001)
        #expect(throws: JSONParseError.self) { try JSON.parse(bytes: Array(keys.utf8), limits: .request) }
        #expect(throws: Never.self) { try JSON.parse(bytes: Array(Self.object(keys: 1_000).utf8), limits: .request) }
        let values = "[" + String(repeating: "0,", count: 100_000) + "0]"
        do {
            _ = try JSON.parse(bytes: Array(values.utf8), limits: .request)
            Issue.record("100,002 values parsed")
        } catch {
            #expect(error.message.contains("100000 values"))
        }
    }

    @Test func duplicateKeysStillRefused() {
        #expect(throws: JSONParseError.self) { try JSON.parse(#"{"a":1,"b":2,"a":3}"#) }
    }
}
