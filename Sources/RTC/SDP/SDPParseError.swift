/// Why a session description could not be parsed: the line (1-based) and what was wrong with it.
public struct SDPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem, stable for callers to match on; `reason` has the details.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Kind: String {
            case syntax, unknownLineType, missingLine, misplacedLine, invalidField, invalidMediaLine, invalidAttribute, tooLarge
        }
        private let kind: Kind
        /// A line that is not `<type>=<value>`.
        public static let syntax = Code(kind: .syntax)
        /// A line type letter that SDP does not define.
        public static let unknownLineType = Code(kind: .unknownLineType)
        /// A required line (`v=`, `o=`, `s=`, `t=`) is absent.
        public static let missingLine = Code(kind: .missingLine)
        /// A line in a place it may not be: a duplicate, or a session-only line inside a media section.
        public static let misplacedLine = Code(kind: .misplacedLine)
        /// A malformed `v=`, `o=`, `c=`, `b=` or `t=` line.
        public static let invalidField = Code(kind: .invalidField)
        /// A malformed `m=` line.
        public static let invalidMediaLine = Code(kind: .invalidMediaLine)
        /// A known attribute (`a=rtpmap`, `a=candidate`, …) whose value does not follow its grammar.
        public static let invalidAttribute = Code(kind: .invalidAttribute)
        /// More sections, lines, candidates, SSRCs or rids than `SDPLimits` allows.
        public static let tooLarge = Code(kind: .tooLarge)
        public var description: String { kind.rawValue }
    }

    /// The 1-based line number in the text that was parsed.
    public var line: Int
    public var code: Code
    public var reason: String

    public init(line: Int, code: Code, reason: String) {
        self.line = line
        self.code = code
        self.reason = reason
    }

    public var description: String { "SDP line \(line): \(reason)" }
}

/// A grammar violation inside one line's value, given a line number by the parser.
struct SDPSyntaxError: Error {
    var code: SDPParseError.Code
    var reason: String

    init(_ code: SDPParseError.Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// A malformed known attribute.
    init(_ reason: String) {
        self.init(.invalidAttribute, reason)
    }
}

/// Lexical helpers shared by the line parsers.
enum SDPLexer {
    /// The space-separated tokens of a value; runs of spaces count as one separator.
    static func tokens(_ text: Substring) -> [Substring] {
        text.split(separator: " ", omittingEmptySubsequences: true)
    }

    /// An unsigned number written only with ASCII digits, or nil (no sign, no spaces, no overflow).
    static func number<T: FixedWidthInteger & UnsignedInteger>(_ text: Substring, as type: T.Type = T.self) -> T? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return T(text, radix: 10)
    }

    /// An RTP payload type, 0 through 127.
    static func payloadType(_ text: Substring) -> UInt8? {
        guard let value = number(text, as: UInt8.self), value <= 127 else { return nil }
        return value
    }

    /// `text` quoted for an error message, shortened if long.
    static func quoted(_ text: some StringProtocol) -> String {
        let limit = 60
        return text.count > limit ? "\"\(text.prefix(limit))…\"" : "\"\(text)\""
    }

    /// `text` split once at the first space: the head and the rest with its leading spaces removed.
    static func splitFirstWord(_ text: Substring) -> (head: Substring, rest: Substring?) {
        guard let space = text.firstIndex(of: " ") else { return (text, nil) }
        let rest = text[text.index(after: space)...].drop { $0 == " " }
        return (text[..<space], rest)
    }
}
