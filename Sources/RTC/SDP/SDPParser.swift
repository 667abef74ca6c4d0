extension SessionDescription {
    /// Parses a session description. Lines may end in `\r\n` or `\n`; blank lines are skipped.
    /// Throws on the first line that breaks the SDP grammar or a known attribute's grammar; unknown
    /// attributes are kept as written. Never traps, whatever the input.
    public static func parse(_ text: String, limits: SDPLimits = .default) throws(SDPParseError) -> SessionDescription {
        var parser = SDPParser(limits: limits)
        return try parser.parse(text)
    }
}

/// What the parser has counted of the section it is in, against `SDPLimits`.
private struct SectionCounts {
    var attributes = 0
    var candidates = 0
    var rids = 0
    var ssrcs: [UInt32] = []
}

/// The line-by-line state of parsing one session description.
struct SDPParser {
    private var lineNumber = 0
    private var version: Int?
    private var origin: Origin?
    private var sessionName: String?
    private var session = SessionDescription(origin: Origin(sessionID: "0", sessionVersion: 0), timings: [])
    private var currentMedia: MediaDescription?
    private let limits: SDPLimits
    private var counts = SectionCounts()

    init(limits: SDPLimits) { self.limits = limits }

    mutating func parse(_ text: String) throws(SDPParseError) -> SessionDescription {
        // Counted before splitting, which would make every line of a huge text first.
        var breaks = 0
        for byte in text.utf8 where byte == 0x0A {
            breaks += 1
            guard breaks < limits.lines else {
                lineNumber = breaks
                throw error(.tooLarge, "more than \(limits.lines) lines")
            }
        }
        for rawLine in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var scalars = rawLine
            if scalars.last == "\r" { scalars = scalars.dropLast() }
            let line = Substring(scalars)
            if line.unicodeScalars.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
            try parseLine(line)
        }
        // Missing-line errors point just past the text: the split above counted the line after a final line break.
        finishMedia()
        guard version != nil else { throw error(.missingLine, "no v= line: this is not a session description") }
        guard let origin else { throw error(.missingLine, "no o= line") }
        guard let sessionName else { throw error(.missingLine, "no s= line") }
        guard !session.timings.isEmpty else { throw error(.missingLine, "no t= line") }
        session.origin = origin
        session.sessionName = sessionName
        return session
    }

    private mutating func parseLine(_ line: Substring) throws(SDPParseError) {
        let scalars = line.unicodeScalars
        guard scalars.count >= 2, let type = scalars.first, scalars[scalars.index(after: scalars.startIndex)] == "=" else {
            throw error(.syntax, "expected <type>=<value>, found \(SDPLexer.quoted(line))")
        }
        let value = Substring(scalars.dropFirst(2))
        guard version != nil || type == "v" else {
            throw error(.missingLine, "the first line must be v=0, found \(SDPLexer.quoted(line))")
        }
        do {
            if currentMedia != nil {
                try parseMediaLine(type: type, value: value)
            } else {
                try parseSessionLine(type: type, value: value)
            }
        } catch {
            throw self.error(error.code, error.reason)
        }
    }

    private mutating func parseSessionLine(type: Unicode.Scalar, value: Substring) throws(SDPSyntaxError) {
        switch type {
        case "v":
            guard version == nil else { throw SDPSyntaxError(.misplacedLine, "a second v= line") }
            guard value == "0" else { throw SDPSyntaxError(.invalidField, "v=\(value) is not a supported version; only v=0 exists") }
            version = 0
        case "o":
            guard origin == nil else { throw SDPSyntaxError(.misplacedLine, "a second o= line") }
            origin = try Origin(parsing: value)
        case "s":
            guard sessionName == nil else { throw SDPSyntaxError(.misplacedLine, "a second s= line") }
            sessionName = String(value)
        case "i":
            guard session.sessionInformation == nil else { throw SDPSyntaxError(.misplacedLine, "a second session-level i= line") }
            session.sessionInformation = String(value)
        case "u":
            guard session.uri == nil else { throw SDPSyntaxError(.misplacedLine, "a second u= line") }
            session.uri = String(value)
        case "e": session.emails.append(String(value))
        case "p": session.phones.append(String(value))
        case "c":
            guard session.connection == nil else { throw SDPSyntaxError(.misplacedLine, "a second session-level c= line") }
            session.connection = try ConnectionData(parsing: value)
        case "b": session.bandwidths.append(try Bandwidth(parsing: value))
        case "t": session.timings.append(try Timing(parsing: value))
        case "r":
            guard !session.timings.isEmpty else { throw SDPSyntaxError(.misplacedLine, "r= line before any t= line") }
            session.timings[session.timings.count - 1].repeats.append(String(value))
        case "z":
            guard session.timeZones == nil else { throw SDPSyntaxError(.misplacedLine, "a second z= line") }
            session.timeZones = String(value)
        case "k":
            guard session.encryptionKey == nil else { throw SDPSyntaxError(.misplacedLine, "a second session-level k= line") }
            session.encryptionKey = String(value)
        case "a":
            let attribute = try counted(SDPAttribute(parsing: value))
            session.attributes.append(attribute)
        case "m": try startMedia(value)
        default: throw SDPSyntaxError(.unknownLineType, "unknown line type \"\(type)=\"")
        }
    }

    private mutating func parseMediaLine(type: Unicode.Scalar, value: Substring) throws(SDPSyntaxError) {
        switch type {
        case "m":
            finishMedia()
            try startMedia(value)
        case "i":
            guard currentMedia?.title == nil else { throw SDPSyntaxError(.misplacedLine, "a second i= line in one media section") }
            currentMedia?.title = String(value)
        case "c": currentMedia?.connections.append(try ConnectionData(parsing: value))
        case "b": currentMedia?.bandwidths.append(try Bandwidth(parsing: value))
        case "k":
            guard currentMedia?.encryptionKey == nil else { throw SDPSyntaxError(.misplacedLine, "a second k= line in one media section") }
            currentMedia?.encryptionKey = String(value)
        case "a":
            let attribute = try counted(SDPAttribute(parsing: value))
            currentMedia?.attributes.append(attribute)
        case "v", "o", "s", "u", "e", "p", "t", "r", "z":
            throw SDPSyntaxError(.misplacedLine, "\(type)= is a session-level line but appears inside a media section")
        default: throw SDPSyntaxError(.unknownLineType, "unknown line type \"\(type)=\"")
        }
    }

    private mutating func startMedia(_ value: Substring) throws(SDPSyntaxError) {
        guard session.media.count < limits.mediaSections else {
            throw SDPSyntaxError(.tooLarge, "more than \(limits.mediaSections) media sections (m= lines)")
        }
        currentMedia = try Self.mediaLine(value)
        counts = SectionCounts()
    }

    /// An attribute of the current section, once it is known not to take the section past a limit.
    private mutating func counted(_ attribute: SDPAttribute) throws(SDPSyntaxError) -> SDPAttribute {
        counts.attributes += 1
        guard counts.attributes <= limits.attributesPerSection else {
            throw SDPSyntaxError(.tooLarge, "more than \(limits.attributesPerSection) a= lines in one section")
        }
        switch attribute {
        case .candidate:
            counts.candidates += 1
            guard counts.candidates <= limits.candidatesPerSection else {
                throw SDPSyntaxError(.tooLarge, "more than \(limits.candidatesPerSection) candidates in one section")
            }
        case .rid:
            counts.rids += 1
            guard counts.rids <= limits.ridsPerSection else {
                throw SDPSyntaxError(.tooLarge, "more than \(limits.ridsPerSection) rids in one section")
            }
        case .ssrc(let line) where !counts.ssrcs.contains(line.ssrc):
            guard counts.ssrcs.count < limits.ssrcsPerSection else {
                throw SDPSyntaxError(.tooLarge, "more than \(limits.ssrcsPerSection) SSRCs in one section")
            }
            counts.ssrcs.append(line.ssrc)
        default:
            break
        }
        return attribute
    }

    private mutating func finishMedia() {
        if let media = currentMedia { session.media.append(media) }
        currentMedia = nil
    }

    /// The media section an `m=<media> <port>[/<count>] <proto> <fmt> …` line starts, with no lines under it yet.
    private static func mediaLine(_ value: Substring) throws(SDPSyntaxError) -> MediaDescription {
        let t = SDPLexer.tokens(value)
        guard t.count >= 4 else {
            throw SDPSyntaxError(.invalidMediaLine, "m= needs <media> <port> <proto> <fmt> …, found \(SDPLexer.quoted(value))")
        }
        let portParts = t[1].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let port = SDPLexer.number(portParts[0], as: UInt16.self) else {
            throw SDPSyntaxError(.invalidMediaLine, "m= port \(SDPLexer.quoted(portParts[0])) is not a number from 0 to 65535")
        }
        var portCount: UInt16?
        if portParts.count == 2 {
            guard let count = SDPLexer.number(portParts[1], as: UInt16.self) else {
                throw SDPSyntaxError(.invalidMediaLine, "m= port count \(SDPLexer.quoted(portParts[1])) is not a number")
            }
            portCount = count
        }
        let transportProtocol = String(t[2])
        let formats = t[3...].map(String.init)
        if MediaDescription.isRTP(transportProtocol), let bad = formats.first(where: { SDPLexer.payloadType(Substring($0)) == nil }) {
            throw SDPSyntaxError(.invalidMediaLine, "m= payload type \(SDPLexer.quoted(bad)) is not a number from 0 to 127")
        }
        return MediaDescription(kind: MediaKind(rawValue: String(t[0])), port: port, portCount: portCount,
                                transportProtocol: transportProtocol, formats: formats, connections: [])
    }

    private func error(_ code: SDPParseError.Code, _ reason: String) -> SDPParseError {
        SDPParseError(line: lineNumber, code: code, reason: reason)
    }
}
