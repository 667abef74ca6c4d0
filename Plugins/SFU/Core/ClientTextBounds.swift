public import AtriumJSON

/// Byte bounds on what clients send that the SFU keeps and repeats to others: a `display` or a
/// `metadata` goes to every participant and viewer of the room in every roster event, a room
/// `description` to everyone who joins or lists, a stream `description` to every participant.
/// Rationale: one client's unbounded string costs every other member of the room its size again,
/// on every roster change; Janus has no such bounds, so a Janus client that stays within them
/// sees no difference.
public struct ClientTextBounds: Sendable, Equatable {
    /// `display` of publishers and viewers (`join`, `configure`), in UTF-8 bytes.
    public var displayBytes = 256
    /// `metadata` of publishers, serialized as JSON.
    public var metadataBytes = 4_096
    /// A room's `description` (`create`, `edit`'s `new_description`) and a stream's
    /// (`descriptions` in `publish`).
    public var descriptionBytes = 256

    public init() {}

    /// 430 when `text` (the value of `key`) is longer than `limit` bytes.
    static func check(_ text: String?, key: String, limit: Int) throws(SFUError) {
        guard let text else { return }
        let size = text.utf8.count
        guard size <= limit else { throw SFUError(.invalidElement, "Invalid element (\(key) is \(size) bytes, at most \(limit) allowed)") }
    }

    public func display(_ text: String?, key: String = "display") throws(SFUError) {
        try Self.check(text, key: key, limit: displayBytes)
    }

    public func description(_ text: String?, key: String = "description") throws(SFUError) {
        try Self.check(text, key: key, limit: descriptionBytes)
    }

    public func metadata(_ value: JSON?) throws(SFUError) {
        guard let value, !value.isNull else { return }
        let size = value.serializedBytes.count
        guard size <= metadataBytes else {
            throw SFUError(.invalidElement, "Invalid element (metadata is \(size) bytes as JSON, at most \(metadataBytes) allowed)")
        }
    }
}
