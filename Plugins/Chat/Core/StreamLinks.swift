public import AtriumJSON

/// A meeting room's chat and its stream chat, as the SFU links them: the room's chat is the chat
/// room whose id is the SFU room's id, the stream chat is `stream-` + the first 10 characters of
/// the room's stream id, with the whole stream id as its pin (docs/api/chat.md, "Stream links").
public struct StreamLink: Sendable, Equatable {
    /// The room's own chat (the SFU room id as text).
    public var roomChat: String
    public var streamID: String
    /// The viewers' chat.
    public var streamChat: String { Self.streamChatID(for: streamID) }
    /// The room's participants may write into the stream chat (`stream_chat_write`).
    public var roomWrites: Bool
    /// The stream chat's members see the room's chat, read-only (`viewers_read_chat`).
    public var viewersRead: Bool

    public init(roomChat: String, streamID: String, roomWrites: Bool = false, viewersRead: Bool = false) {
        self.roomChat = roomChat
        self.streamID = streamID
        self.roomWrites = roomWrites
        self.viewersRead = viewersRead
    }

    /// The stream chat's room id for a stream id.
    public static func streamChatID(for streamID: String) -> String {
        "stream-" + streamID.prefix(10)
    }

    /// The settings as the chat's `joined` answer and `stream_link` events carry them.
    public var settings: JSONObject {
        ["stream_chat_write": .bool(roomWrites), "viewers_read_chat": .bool(viewersRead)]
    }
}

/// Which chat of a link a message is for (`target` in a `message` request).
public enum ChatTarget: String, Sendable {
    case room, stream
}

/// Where a message goes, or why it may not.
public enum ChatRoute: Equatable, Sendable {
    /// To the sender's own room (and, for a room's chat that viewers may read, as a read-only copy
    /// to its stream chat: `readOnlyCopy`).
    case ownRoom(readOnlyCopy: String?)
    /// From the room's chat into its stream chat, as the room.
    case intoStreamChat(String)
    /// The sender's room has no stream link, so `target` names nothing.
    case refusedNotLinked
    /// The room's participants may not write into the stream chat (`stream_chat_write` is off).
    case refusedRoomWritesOff
    /// Someone in the stream chat asked to write into the room's chat: never allowed.
    case refusedViewerWrite
}

/// Every stream link the Chat plugin was told about, by both of its chat rooms.
public struct StreamLinks: Sendable {
    private var byRoomChat: [String: StreamLink] = [:]
    private var roomChatByStreamChat: [String: String] = [:]

    public init() {}

    /// What changed when the SFU announced a link: the link before and after (nil: none).
    public struct Change: Sendable, Equatable {
        public var old: StreamLink?
        public var new: StreamLink?
    }

    /// Applies an `sfu.stream` event (`room`, `stream_id`, `stream_chat_write`,
    /// `viewers_read_chat`, `destroyed`?); nil when the event is malformed or changes nothing.
    public mutating func apply(_ event: JSONObject) -> Change? {
        guard let room = event["room"]?.stringValue, !room.isEmpty,
              let stream = event["stream_id"]?.stringValue, !stream.isEmpty else { return nil }
        let old = byRoomChat[room]
        if event["destroyed"]?.boolValue == true {
            // A late `destroyed` of an older stream of the same room id must not drop the new one.
            guard let old, old.streamID == stream else { return nil }
            byRoomChat[room] = nil
            roomChatByStreamChat[old.streamChat] = nil
            return Change(old: old, new: nil)
        }
        let new = StreamLink(roomChat: room, streamID: stream,
                             roomWrites: event["stream_chat_write"]?.boolValue ?? false,
                             viewersRead: event["viewers_read_chat"]?.boolValue ?? false)
        guard new != old else { return nil }
        if let old { roomChatByStreamChat[old.streamChat] = nil }
        byRoomChat[room] = new
        roomChatByStreamChat[new.streamChat] = room
        return Change(old: old, new: new)
    }

    /// The link whose room chat this is.
    public func link(roomChat id: String) -> StreamLink? { byRoomChat[id] }

    /// The link whose stream chat this is.
    public func link(streamChat id: String) -> StreamLink? { roomChatByStreamChat[id].flatMap { byRoomChat[$0] } }

    /// The link either of whose chats this is.
    public func link(either id: String) -> StreamLink? { link(roomChat: id) ?? link(streamChat: id) }

    /// Where a broadcast message sent in chat room `room` with `target` goes.
    public func route(from room: String, target: ChatTarget?) -> ChatRoute {
        if let link = link(roomChat: room) {
            switch target {
            case nil, .room?: return .ownRoom(readOnlyCopy: link.viewersRead ? link.streamChat : nil)
            case .stream?: return link.roomWrites ? .intoStreamChat(link.streamChat) : .refusedRoomWritesOff
            }
        }
        if link(streamChat: room) != nil {
            return target == .room ? .refusedViewerWrite : .ownRoom(readOnlyCopy: nil)
        }
        return target == nil ? .ownRoom(readOnlyCopy: nil) : .refusedNotLinked
    }
}
