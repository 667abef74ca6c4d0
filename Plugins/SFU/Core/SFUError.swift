public import AtriumJSON

/// A refused VideoRoom request: Janus's error code and text, sent as
/// `{"videoroom":"event","error_code":N,"error":"..."}` in a successful Janus response or event.
public struct SFUError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let unknown = Code(rawValue: 499)
        public static let noMessage = Code(rawValue: 421)
        public static let invalidJSON = Code(rawValue: 422)
        public static let invalidRequest = Code(rawValue: 423)
        public static let joinFirst = Code(rawValue: 424)
        public static let alreadyJoined = Code(rawValue: 425)
        public static let noSuchRoom = Code(rawValue: 426)
        public static let roomExists = Code(rawValue: 427)
        public static let noSuchFeed = Code(rawValue: 428)
        public static let missingElement = Code(rawValue: 429)
        public static let invalidElement = Code(rawValue: 430)
        public static let invalidSDPType = Code(rawValue: 431)
        public static let publishersFull = Code(rawValue: 432)
        public static let unauthorized = Code(rawValue: 433)
        public static let alreadyPublished = Code(rawValue: 434)
        public static let notPublished = Code(rawValue: 435)
        public static let idExists = Code(rawValue: 436)
        public static let invalidSDP = Code(rawValue: 437)
        public static let invalidFeed = Code(rawValue: 438)
        /// Atrium's own: the stream has `max_viewers` viewers already.
        public static let viewersFull = Code(rawValue: 439)
        /// Atrium's own: a viewer handle asked to publish (or for anything else a participant does).
        public static let viewerCannotPublish = Code(rawValue: 440)
        /// Atrium's own: the client's address already has `max_rooms_per_address` rooms it made.
        public static let tooManyRooms = Code(rawValue: 441)
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The VideoRoom payload that carries this error.
    public var payload: JSON {
        ["videoroom": "event", "error_code": .int(Int64(code.rawValue)), "error": .string(message)]
    }

    public static func missing(_ key: String) -> SFUError { SFUError(.missingElement, "Missing mandatory element (\(key))") }
    public static func invalid(_ key: String, _ expected: String) -> SFUError {
        SFUError(.invalidElement, "Invalid element type (\(key) should be \(expected))")
    }
}

/// Typed access to the fields of a request or a room definition, failing as Janus does: 429 for a
/// missing mandatory field, 430 for a field of the wrong type. Absent and null read as nil.
public struct Fields: Sendable {
    public let object: JSONObject
    public init(_ object: JSONObject) { self.object = object }

    public func has(_ key: String) -> Bool { object[key].map { !$0.isNull } ?? false }

    public func string(_ key: String) throws(SFUError) -> String? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .string(let s) = v else { throw .invalid(key, "a string") }
        return s
    }

    public func bool(_ key: String) throws(SFUError) -> Bool? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .bool(let b) = v else { throw .invalid(key, "a boolean") }
        return b
    }

    /// A non-negative integer no larger than `max`.
    public func integer(_ key: String, max: UInt64 = UInt64(Int64.max)) throws(SFUError) -> UInt64? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .int(let i) = v, i >= 0, UInt64(i) <= max else { throw .invalid(key, "a positive integer") }
        return UInt64(i)
    }

    public func array(_ key: String) throws(SFUError) -> [JSON]? {
        guard let v = object[key], !v.isNull else { return nil }
        guard case .array(let a) = v else { throw .invalid(key, "an array") }
        return a
    }

    public func strings(_ key: String) throws(SFUError) -> [String]? {
        guard let list = try array(key) else { return nil }
        var out: [String] = []
        for item in list {
            guard case .string(let s) = item else { throw .invalid(key, "an array of strings") }
            out.append(s)
        }
        return out
    }

    public func required<T>(_ key: String, _ read: (String) throws(SFUError) -> T?) throws(SFUError) -> T {
        guard let value = try read(key) else { throw .missing(key) }
        return value
    }
}
