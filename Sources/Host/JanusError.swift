import AtriumJSON

/// A Janus API error: the numeric code and reason that go into `{"janus":"error","error":{...}}`.
///
/// The codes are Janus's (`apierror.h`); the reasons follow what Janus 1.1.2 answers, because
/// clients and the conformance tests compare them.
public struct JanusError: Error, Sendable, Equatable {
    public var code: Int
    public var reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code.rawValue
        self.reason = reason
    }

    /// The numeric codes of Janus's API errors.
    public enum Code: Int, Sendable {
        case unauthorized = 403
        case unauthorizedPlugin = 405
        case transportSpecific = 450
        case missingRequest = 452
        case unknownRequest = 453
        case invalidJSON = 454
        case invalidJSONObject = 455
        case missingMandatoryElement = 456
        case invalidRequestPath = 457
        case sessionNotFound = 458
        case handleNotFound = 459
        case pluginNotFound = 460
        case pluginAttach = 461
        case pluginMessage = 462
        case pluginDetach = 463
        case jsepUnknownType = 464
        case jsepInvalidSDP = 465
        case trickleInvalidStream = 466
        case invalidElementType = 467
        case sessionConflict = 468
        case unexpectedAnswer = 469
        case tokenNotFound = 470
        case webRTCState = 471
        case notAcceptingSessions = 472
        case unknown = 490
    }

    /// Parses a request body, or gives the 454 error Janus answers for text that is not JSON.
    static func parseRequest(_ bytes: [UInt8]) -> Result<JSON, JanusError> {
        do {
            return .success(try JSON.parse(bytes: bytes, limits: .request))
        } catch {
            return .failure(JanusError(.invalidJSON, "JSON error: on line \(error.line): \(error.message)"))
        }
    }

    static func missing(_ element: String) -> JanusError {
        JanusError(.missingMandatoryElement, "Missing mandatory element (\(element))")
    }

    static func wrongType(_ element: String, expected: String) -> JanusError {
        JanusError(.invalidElementType, "Invalid element type (\(element) should be \(expected))")
    }

    static func noSession(_ id: UInt64) -> JanusError {
        JanusError(.sessionNotFound, "No such session \(id)")
    }

    static func noHandle(_ id: UInt64, session: UInt64) -> JanusError {
        JanusError(.handleNotFound, "No such handle \(id) in session \(session)")
    }

    static func unhandled(_ verb: String) -> JanusError {
        JanusError(.invalidRequestPath, "Unhandled request '\(verb)' at this path")
    }

    /// The error envelope Janus sends.
    func envelope(transaction: String?, sessionID: UInt64? = nil) -> JSON {
        var o: JSONObject = ["janus": "error"]
        if let sessionID { o["session_id"] = .int(Int64(bitPattern: sessionID)) }
        if let transaction { o["transaction"] = .string(transaction) }
        o["error"] = ["code": .int(Int64(code)), "reason": .string(reason)]
        return .object(o)
    }
}
