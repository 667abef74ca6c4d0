import AtriumJSON

/// The `transaction` of a request found without parsing it: a scan of at most `limit` bytes that
/// follows strings and nesting only, for answering requests the host refuses unread.
///
/// Rationale: a refused request must cost almost nothing, and a parse builds the whole tree of a
/// body that may be a megabyte. The scan allocates nothing until it has the value, and stops at
/// `limit` (16 KiB by default): janus.js writes `transaction` after `janus` and `body` but before
/// `jsep`, so only a request with a body object that large loses its transaction, and gets the
/// error without one.
func scanTransaction(_ bytes: [UInt8], limit: Int = 16 << 10) -> String? {
    let end = min(bytes.count, limit)
    let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), colon = UInt8(ascii: ":")
    let key = Array("transaction".utf8)
    var depth = 0
    var i = 0
    /// The index of the closing quote of the string opening at `open`, and whether it has escapes.
    func closing(_ open: Int) -> (Int, Bool)? {
        var j = open + 1
        var escaped = false
        while j < end {
            if bytes[j] == quote { return (j, escaped) }
            if bytes[j] == backslash { escaped = true; j += 1 }
            j += 1
        }
        return nil
    }
    func skipSpace(_ k: inout Int) {
        while k < end, bytes[k] == 0x20 || bytes[k] == 0x09 || bytes[k] == 0x0A || bytes[k] == 0x0D { k += 1 }
    }
    while i < end {
        switch bytes[i] {
        case quote:
            guard let (close, escaped) = closing(i) else { return nil }
            var k = close + 1
            if depth == 1, !escaped, close - i - 1 == key.count, bytes[(i + 1)..<close].elementsEqual(key) {
                skipSpace(&k)
                if k < end, bytes[k] == colon {
                    k += 1
                    skipSpace(&k)
                    guard k < end, bytes[k] == quote, let (valueEnd, valueEscaped) = closing(k) else { return nil }
                    if !valueEscaped { return String(decoding: bytes[(k + 1)..<valueEnd], as: UTF8.self) }
                    return (try? JSON.parse(bytes: Array(bytes[k...valueEnd])))?.stringValue
                }
            }
            i = k
            continue
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
        case UInt8(ascii: "}"), UInt8(ascii: "]"):
            depth -= 1
        default:
            break
        }
        i += 1
    }
    return nil
}
