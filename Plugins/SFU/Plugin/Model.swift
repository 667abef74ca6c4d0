import AtriumJSON
import PluginKit
import RTC
import SFUCore

/// A VideoRoom room on the control context: its settings, its participants (publisher handles
/// that joined) and its subscriber handles.
final class Room {
    let id: SFUID
    var settings: RoomSettings
    /// Publisher-type participants in join order.
    var participants: [Participant] = []
    var subscriptions: [Subscription] = []
    /// Watch-only handles that joined with the stream id: not participants, counted as viewers.
    var viewers: [Viewer] = []
    /// The ACL (`allowed`): whether joining needs one of the tokens.
    var checksTokens: Bool
    var allowedTokens: [String]
    let createdAt = ContinuousClock.now
    /// Defined in the plugin's configuration (rather than made by `create`).
    let fromConfig: Bool
    /// What the media thread forwards in this room, behind a lock of the room's own: rooms on
    /// different media loops never wait for each other.
    let forwarding = Guarded(ForwardingTable())
    /// The host's group for the room's handles (atrium.group/1), so they share a media loop.
    let group: UInt64

    init(id: SFUID, settings: RoomSettings, fromConfig: Bool = false) {
        group = Room.groups.withLock { n in
            n &+= 1
            return n
        }
        self.id = id
        self.settings = settings
        self.fromConfig = fromConfig
        checksTokens = settings.allowed != nil
        allowedTokens = settings.allowed ?? []
    }

    private static let groups = Guarded<UInt64>(0)

    func participant(_ id: SFUID) -> Participant? { participants.first { $0.id == id } }
    /// Nobody is in it: no participant, subscriber or viewer.
    var isEmpty: Bool { participants.isEmpty && subscriptions.isEmpty && viewers.isEmpty }
    var publishers: [Participant] { participants.filter(\.isPublishing) }
}

/// One published m-line, as announced in `publishers` and used for subscriber offers.
struct PublishedStream {
    var mindex: Int
    var mid: String
    var isVideo: Bool
    var codec: Codec
    var disabled = false
    var description: String?
    var rids: [String] = []
    var simulcastSSRCs: [UInt32] = []
    var moderated = false
    var talking = false
    /// The publisher's extension id for RFC 6464 levels (0: not negotiated).
    var audioLevelID = 0
    /// The room sends talking events, so descriptors say whether this stream is talking.
    var reportsTalking = false

    var type: String { isVideo ? "video" : "audio" }
    var codecName: String { codec.name.lowercased() }
    var isSimulcast: Bool { rids.count > 1 || simulcastSSRCs.count > 1 }

    /// The descriptor in `publishers[].streams` and `configured.streams`.
    var descriptor: JSON {
        var o: JSONObject = ["type": .string(type), "mindex": .int(Int64(mindex)), "mid": .string(mid)]
        if disabled {
            o["disabled"] = true
            return .object(o)
        }
        o["codec"] = .string(codecName)
        if let description { o["description"] = .string(description) }
        if moderated { o["moderated"] = true }
        if isVideo {
            if isSimulcast { o["simulcast"] = true }
            if codecName == "h264", let profile = codec.parameter("profile-level-id") { o["h264_profile"] = .string(profile) }
            if codecName == "vp9", let profile = codec.parameter("profile-id") { o["vp9_profile"] = .string(profile) }
        } else {
            if codec.channels == 2, codec.parameter("stereo") == "1" { o["stereo"] = true }
            if codec.parameter("useinbandfec") == "1" { o["fec"] = true }
            if codec.parameter("usedtx") == "1" { o["dtx"] = true }
            if audioLevelID != 0 && reportsTalking { o["talking"] = .bool(talking) }
        }
        return .object(o)
    }
}

/// A participant: a handle that joined a room as a publisher (it may or may not be publishing).
final class Participant {
    let id: SFUID
    let handle: PluginHandle
    unowned let room: Room
    let privateID: UInt32
    var display: String?
    var metadata: JSON?
    var streams: [PublishedStream] = []
    var isPublishing = false
    var bitrate: UInt64
    var lastKeyframeAt: UInt64 = 0
    var record = false
    /// Joined with `stream_info: true`: told the stream id and the viewer count (Atrium's own, off
    /// by default so Janus VideoRoom clients see exactly Janus's messages).
    var streamInfo = false

    init(id: SFUID, handle: PluginHandle, room: Room, privateID: UInt32, display: String?, metadata: JSON?) {
        self.id = id
        self.handle = handle
        self.room = room
        self.privateID = privateID
        self.display = display
        self.metadata = metadata
        bitrate = room.settings.bitrate
    }

    /// The entry in `publishers` lists.
    var publisherEntry: JSON {
        var o: JSONObject = ["id": id.json]
        if let display { o["display"] = .string(display) }
        if let metadata { o["metadata"] = metadata }
        o["streams"] = .array(streams.map(\.descriptor))
        if let audio = streams.first(where: { !$0.isVideo && !$0.disabled }) { o["audio_codec"] = .string(audio.codecName) }
        if let video = streams.first(where: { $0.isVideo && !$0.disabled }) { o["video_codec"] = .string(video.codecName) }
        if streams.contains(where: { $0.talking }) { o["talking"] = true }
        return .object(o)
    }

    /// The entry in `attendees`, `joining` and `listparticipants`.
    var attendeeEntry: JSONObject {
        var o: JSONObject = ["id": id.json]
        if let display { o["display"] = .string(display) }
        if let metadata { o["metadata"] = metadata }
        return o
    }
}

/// One m-line of a subscriber's PeerConnection.
struct SubscribedStream {
    var mindex: Int
    var mid: String
    var isVideo: Bool
    /// The feed and its m-line; nil once the feed left (the m-line is then inactive).
    var feed: SFUID?
    var feedMid: String?
    var feedDisplay: String?
    var codec: Codec
    var active = true
    var send = true
    var substream = 2
    var temporal = 2
    var simulcast = false

    var type: String { isVideo ? "video" : "audio" }

    var descriptor: JSON {
        var o: JSONObject = ["mindex": .int(Int64(mindex)), "mid": .string(mid), "type": .string(type), "active": .bool(active)]
        if active, let feed {
            o["feed_id"] = feed.json
            if let feedMid { o["feed_mid"] = .string(feedMid) }
            if let feedDisplay { o["feed_display"] = .string(feedDisplay) }
            o["send"] = .bool(send)
            o["codec"] = .string(codec.name.lowercased())
            o["ready"] = true
            if simulcast {
                o["simulcast"] = ["substream": .int(Int64(substream)), "temporal-layer": .int(Int64(temporal))]
            }
        }
        return .object(o)
    }
}

/// A subscriber handle's subscription: one PeerConnection carrying streams from any publishers.
final class Subscription {
    let handle: PluginHandle
    unowned let room: Room
    /// The stream id when the subscriber joined with it (a viewer's): its events name the stream,
    /// never the room.
    var stream: String?
    /// What `room` says in this subscriber's events and offer.
    var roomRef: JSON { stream.map { .string($0) } ?? room.id.json }
    var streams: [SubscribedStream] = []
    var paused = false
    /// An offer was sent and no answer came back yet.
    var awaitingAnswer = false
    /// Changes asked for while an offer was out: one cumulative `updated` follows the answer.
    var pendingUpdate = false
    let autoupdate: Bool
    let sessionID = UInt64.random(in: 1...(1 << 62))
    var sessionVersion: UInt64 = 0

    init(handle: PluginHandle, room: Room, autoupdate: Bool) {
        self.handle = handle
        self.room = room
        self.autoupdate = autoupdate
    }
}

/// What a handle is in the plugin: nothing yet, a participant, or a subscriber.
final class HandleState {
    enum Role {
        case none
        case publisher(Participant)
        case subscriber(Subscription)
        case viewer(Viewer)
    }

    var role = Role.none
    /// The forwarding table of the room the handle last joined, for its packets: set on [control]
    /// at a join, read on [media]; a lock per handle, so no lock is shared between rooms.
    let forwarding = Guarded<Guarded<ForwardingTable>?>(nil)

    /// [control] The handle is in `room` now: its packets use the room's table, and its
    /// PeerConnection goes to the room's media loop.
    func joined(_ room: Room, host: PluginHost, handle: PluginHandle) {
        let table = room.forwarding
        forwarding.withLock { $0 = table }
        host.setGroup(handle, room.group)
    }
}

/// A watch-only handle (`join` with `ptype: "viewer"` and `stream`): told about the room's
/// publishers as participants are, under the stream id, and counted; it cannot publish.
final class Viewer {
    let id: SFUID
    let handle: PluginHandle
    unowned let room: Room
    let stream: String
    var display: String?

    init(id: SFUID, handle: PluginHandle, room: Room, stream: String, display: String?) {
        self.id = id
        self.handle = handle
        self.room = room
        self.stream = stream
        self.display = display
    }
}
