import AtriumJSON
import PluginAPI
import PluginKit
import RTC
import SFUCore

/// The subscriber side: one PeerConnection per subscriber handle carrying any published streams,
/// offered by the plugin and renegotiated when streams are added or removed.
extension SFUPlugin {
    func joinSubscriber(_ f: Fields, handle: PluginHandle, state: HandleState, transaction: String) throws(SFUError) {
        // A viewer's subscriber joins with the stream id instead of the room and its pin.
        let stream = try f.string("stream")
        let room: Room
        if let stream {
            room = try self.room(stream: stream)
        } else {
            room = try self.room(in: f)
            try checkAccess(room, f)
        }
        let privateID = try f.integer("private_id", max: UInt64(UInt32.max)).map { UInt32($0) }
        if room.settings.requirePrivateID {
            guard let privateID, room.participants.contains(where: { $0.privateID == privateID }) else {
                throw SFUError(.unauthorized, "Unauthorized (this room requires a valid private_id)")
            }
        }
        // Type-checked; msid lines are always per feed, so use_msid changes nothing.
        _ = try f.bool("use_msid")
        let subscription = Subscription(handle: handle, room: room, autoupdate: try f.bool("autoupdate") ?? true)
        subscription.stream = stream
        var legacy: Participant?
        let requested: [JSON]
        if let streams = try f.array("streams") {
            requested = streams
        } else if let feed = try SFUID.read(f, "feed", stringIDs: config.stringIDs) {
            // The pre-multistream API (janus.js 1.1.2's videoroomtest.js): all of one feed's streams.
            var o: JSONObject = ["feed": feed.json]
            for key in ["substream", "temporal"] where f.has(key) { o[key] = f.object[key] }
            requested = [.object(o)]
            legacy = room.participant(feed)
        } else {
            throw SFUError.missing("streams")
        }
        guard !requested.isEmpty else { throw SFUError.missing("feed") }
        try add(requested, to: subscription)
        guard !subscription.streams.isEmpty else { throw SFUError(.noSuchFeed, "No streams to subscribe to") }
        room.subscriptions.append(subscription)
        state.role = .subscriber(subscription)
        state.joined(room, host: host, handle: handle)
        publishPresence(handle, room: room, role: "subscriber", present: true)
        syncMedia(subscription)
        var event: JSONObject = ["videoroom": "attached", "room": subscription.roomRef]
        if let legacy {
            event["id"] = legacy.id.json
            if let display = legacy.display { event["display"] = .string(display) }
            event["warning"] = "deprecated_api"
        }
        sendOffer(subscription, event: event, transaction: transaction)
    }

    /// Adds the requested streams (`[{feed, mid?, substream?, temporal?}]`) as new m-lines.
    func add(_ requested: [JSON], to s: Subscription) throws(SFUError) {
        var added: [SubscribedStream] = []
        for item in requested {
            guard let o = item.objectValue else { throw .invalid("streams", "an array of objects") }
            let r = Fields(o)
            let feedID = try r.required("feed") { (k: String) throws(SFUError) in try SFUID.read(r, k, stringIDs: config.stringIDs) }
            guard let feed = s.room.participant(feedID), feed.isPublishing else { throw SFUError(.noSuchFeed, "No such feed (\(feedID))") }
            let mid = try r.string("mid")
            let substream = try r.integer("substream", max: 2).map(Int.init)
            let temporal = try r.integer("temporal", max: 2).map(Int.init)
            let chosen = feed.streams.filter { !$0.disabled && (mid == nil || $0.mid == mid) }
            if let mid, chosen.isEmpty { throw SFUError(.noSuchFeed, "No such mid '\(mid)' in feed (\(feedID))") }
            // Checked as they are added: a request naming the same feed 50,000 times would
            // otherwise build millions of streams before being refused.
            guard s.streams.count + added.count + chosen.count <= config.maxStreamsPerSubscriber else {
                throw SFUError(.invalidElement, "Too many streams for one subscriber (max_streams_per_subscriber is \(config.maxStreamsPerSubscriber))")
            }
            for published in chosen {
                let index = s.streams.count + added.count
                var stream = SubscribedStream(mindex: index, mid: "\(index)", isVideo: published.isVideo, feed: feedID, feedMid: published.mid,
                                              feedDisplay: feed.display, codec: published.codec)
                stream.simulcast = published.isSimulcast
                if let substream { stream.substream = substream }
                if let temporal { stream.temporal = temporal }
                added.append(stream)
            }
        }
        s.streams += added
    }

    func subscriberRequest(_ request: String, _ f: Fields, jsep: JSONObject?, subscription s: Subscription, transaction: String) throws(SFUError) {
        switch request {
        case "start":
            if let jsep {
                guard jsep["type"]?.stringValue == "answer" else { throw SFUError(.invalidSDPType, "Unsupported SDP type (start takes an answer)") }
                s.awaitingAnswer = false
            }
            s.paused = false
            syncMedia(s)
            requestKeyframes(for: s)
            host.pushEvent(to: s.handle, transaction: transaction, event: ["videoroom": "event", "room": s.roomRef, "started": "ok"])
            if s.pendingUpdate {
                s.pendingUpdate = false
                renegotiate(s, transaction: nil)
            }
        case "pause":
            s.paused = true
            syncMedia(s)
            host.pushEvent(to: s.handle, transaction: transaction, event: ["videoroom": "event", "room": s.roomRef, "paused": "ok"])
        case "configure":
            try configure(s, f)
            host.pushEvent(to: s.handle, transaction: transaction, event: ["videoroom": "event", "room": s.roomRef, "configured": "ok"])
        case "switch":
            let changes = try switchStreams(s, f)
            host.pushEvent(to: s.handle, transaction: transaction, event: [
                "videoroom": "event", "room": s.roomRef, "switched": "ok", "changes": .int(Int64(changes)),
                "streams": .array(s.streams.map(\.descriptor)),
            ])
        case "subscribe", "unsubscribe", "update":
            var additions = request == "subscribe" ? try f.array("streams") : nil
            var removals = request == "unsubscribe" ? try f.array("streams") : nil
            if request == "update" {
                additions = try f.array("subscribe")
                removals = try f.array("unsubscribe")
                guard additions != nil || removals != nil else { throw SFUError.missing("subscribe") }
            } else if additions == nil && removals == nil {
                throw SFUError.missing("streams")
            }
            if let removals { try unsubscribe(removals, from: s) }
            if let additions { try add(additions, to: s) }
            syncMedia(s)
            renegotiate(s, transaction: transaction)
        case "leave":
            remove(s)
            host.closePC(s.handle)
            host.pushEvent(to: s.handle, transaction: transaction, event: ["videoroom": "event", "room": s.roomRef, "left": "ok"])
        case "publish", "unpublish", "joinandconfigure":
            throw SFUError(.invalidRequest, "Invalid request '\(request)' on a subscriber handle")
        default:
            throw SFUError(.invalidRequest, "Unknown request '\(request)'")
        }
    }

    /// `configure` on a subscriber: per stream (or, as the 1.1.2 demos send it, top-level) `send`,
    /// `substream`, `temporal`.
    func configure(_ s: Subscription, _ f: Fields) throws(SFUError) {
        var items: [JSONObject] = []
        if let list = try f.array("streams") {
            for item in list {
                guard let o = item.objectValue else { throw .invalid("streams", "an array of objects") }
                items.append(o)
            }
        } else {
            var o: JSONObject = [:]
            for key in ["mid", "send", "substream", "temporal", "audio", "video"] where f.has(key) { o[key] = f.object[key] }
            items.append(o)
        }
        var wantsKeyframe = false
        for o in items {
            let c = Fields(o)
            let mid = try c.string("mid")
            let send = try c.bool("send")
            let substream = try c.integer("substream", max: 2).map(Int.init)
            let temporal = try c.integer("temporal", max: 2).map(Int.init)
            let audio = try c.bool("audio")
            let video = try c.bool("video")
            for i in s.streams.indices where mid == nil || s.streams[i].mid == mid {
                if let send { s.streams[i].send = send }
                if mid == nil, let audio, !s.streams[i].isVideo { s.streams[i].send = audio }
                if mid == nil, let video, s.streams[i].isVideo { s.streams[i].send = video }
                if s.streams[i].isVideo {
                    if let substream, substream != s.streams[i].substream {
                        s.streams[i].substream = substream
                        wantsKeyframe = true
                    }
                    if let temporal { s.streams[i].temporal = temporal }
                    if send == true || video == true { wantsKeyframe = true }
                }
            }
        }
        syncMedia(s)
        if wantsKeyframe { requestKeyframes(for: s) }
    }

    /// `switch`: m-lines change source without renegotiation (same kind and codec).
    func switchStreams(_ s: Subscription, _ f: Fields) throws(SFUError) -> Int {
        let list = try f.required("streams") { (k: String) throws(SFUError) in try f.array(k) }
        var changes = 0
        for item in list {
            guard let o = item.objectValue else { throw .invalid("streams", "an array of objects") }
            let r = Fields(o)
            let feedID = try r.required("feed") { (k: String) throws(SFUError) in try SFUID.read(r, k, stringIDs: config.stringIDs) }
            let mid = try r.required("mid") { (k: String) throws(SFUError) in try r.string(k) }
            let subMid = try r.required("sub_mid") { (k: String) throws(SFUError) in try r.string(k) }
            guard let feed = s.room.participant(feedID), feed.isPublishing,
                let published = feed.streams.first(where: { $0.mid == mid && !$0.disabled })
            else { throw SFUError(.noSuchFeed, "No such feed stream (\(feedID), mid \(mid))") }
            guard let i = s.streams.firstIndex(where: { $0.mid == subMid }) else {
                throw SFUError(.invalidElement, "No such subscriber mid '\(subMid)'")
            }
            guard s.streams[i].isVideo == published.isVideo, s.streams[i].codec.hasName(published.codec.name),
                s.streams[i].codec.clockRate == published.codec.clockRate
            else { throw SFUError(.invalidElement, "Can't switch \(subMid) to a stream of another kind or codec") }
            guard s.streams[i].active else { throw SFUError(.invalidElement, "Can't switch the inactive m-line \(subMid)") }
            if s.streams[i].feed != feedID || s.streams[i].feedMid != mid {
                s.streams[i].feed = feedID
                s.streams[i].feedMid = mid
                s.streams[i].feedDisplay = feed.display
                s.streams[i].simulcast = published.isSimulcast
                changes += 1
            }
        }
        syncMedia(s)
        if changes > 0 { requestKeyframes(for: s) }
        return changes
    }

    /// Marks the streams named by `[{feed?, mid?, sub_mid?}]` inactive.
    func unsubscribe(_ list: [JSON], from s: Subscription) throws(SFUError) {
        for item in list {
            guard let o = item.objectValue else { throw .invalid("streams", "an array of objects") }
            let r = Fields(o)
            let feed = try SFUID.read(r, "feed", stringIDs: config.stringIDs)
            let mid = try r.string("mid")
            let subMid = try r.string("sub_mid")
            guard feed != nil || subMid != nil else { throw SFUError.missing("feed") }
            for i in s.streams.indices where s.streams[i].active {
                let stream = s.streams[i]
                let matches = subMid.map { stream.mid == $0 } ?? (stream.feed == feed && (mid == nil || stream.feedMid == mid))
                if matches {
                    s.streams[i].active = false
                    s.streams[i].feed = nil
                }
            }
        }
    }

    /// Sends an `updated` offer, or (an offer is already out) says `updating` and sends one later.
    func renegotiate(_ s: Subscription, transaction: String?) {
        guard !s.awaitingAnswer else {
            s.pendingUpdate = true
            if let transaction { host.pushEvent(to: s.handle, transaction: transaction, event: ["videoroom": "updating", "room": s.roomRef]) }
            return
        }
        sendOffer(s, event: ["videoroom": "updated", "room": s.roomRef], transaction: transaction)
    }

    func sendOffer(_ s: Subscription, event: JSONObject, transaction: String?) {
        var event = event
        event["streams"] = .array(s.streams.map(\.descriptor))
        guard let offer = SessionDescriptions.subscriberOffer(s) else {
            host.pushEvent(to: s.handle, transaction: transaction, event: SFUError(.unknown, "Could not build the subscriber offer").payload)
            return
        }
        s.awaitingAnswer = true
        let jsep: JSON = ["type": "offer", "sdp": .string(offer.serialized)]
        if host.pushEvent(to: s.handle, transaction: transaction, event: .object(event), jsep: jsep) != ATRIUM_OK {
            s.awaitingAnswer = false
            host.pushEvent(to: s.handle, transaction: transaction, event: SFUError(.unknown, "The subscriber offer could not be completed").payload)
        }
    }

    /// Removes a subscriber handle's subscription (leave, destroy, handle gone).
    func remove(_ s: Subscription) {
        s.room.subscriptions.removeAll { $0 === s }
        if let state = state(s.handle) { state.role = .none }
        publishPresence(s.handle, room: s.room, role: "subscriber", present: false)
        let id = s.handle.id
        s.room.forwarding.withLock { t in
            guard let media = t.subscribers.removeValue(forKey: id) else { return }
            for sink in media.sinks.values { t.detach(sink) }
        }
        destroyIfEmpty(s.room)
    }

    /// Asks the publishers of the subscription's video for keyframes (a new or resumed subscriber).
    func requestKeyframes(for s: Subscription) {
        let now = monotonicNanoseconds()
        let host = host
        let id = s.handle.id
        s.room.forwarding.withLock { t in
            guard let media = t.subscribers[id] else { return }
            for sink in media.sinks.values {
                guard let (feed, stream) = t.stream(sink.source) else { continue }
                // Outside the packet path the host only queues the request, so calling it here is safe.
                stream.requestKeyframe(host: host, feed: feed.handle, now: now)
            }
        }
    }

    // MARK: - Media wiring

    /// Re-links every subscription of the room and refreshes what publishers' streams need to know.
    func syncMedia(_ room: Room) {
        let audience = room.settings.audioLevelEvent ? room.participants.map(\.handle) + room.viewers.map(\.handle) : []
        let packets = room.settings.audioActivePackets
        let average = room.settings.audioLevelAverage
        let feeds = room.publishers.map { ($0.handle.id, $0.streams.filter(\.moderated).map(\.mindex)) }
        room.forwarding.withLock { t in
            for (id, muted) in feeds {
                guard let feed = t.feeds[id] else { continue }
                feed.talkingAudience = audience
                feed.audioActivePackets = packets
                feed.audioLevelAverage = average
                for case let stream? in feed.streams { stream.muted = muted.contains(Int(stream.mindex)) }
            }
        }
        for s in room.subscriptions { syncMedia(s) }
    }

    /// Makes the media thread's picture of one subscription match the control one.
    func syncMedia(_ s: Subscription) {
        struct Link {
            var mindex: Int32
            var mid: String
            var payloadType: UInt8
            var clockRate: UInt32
            var send: Bool
            var substream: Int
            var temporal: Int
            var isVideo: Bool
            var source: StreamSource?
        }
        let links: [Link] = s.streams.map { stream in
            var source: StreamSource?
            if stream.active, let feedID = stream.feed, let feed = s.room.participant(feedID), feed.isPublishing,
                let published = feed.streams.first(where: { $0.mid == stream.feedMid })
            {
                source = (feed.handle.id, Int32(published.mindex))
            }
            return Link(mindex: Int32(stream.mindex), mid: stream.mid, payloadType: stream.codec.payloadType, clockRate: stream.codec.clockRate,
                        send: stream.send, substream: stream.substream, temporal: stream.temporal, isVideo: stream.isVideo,
                        source: source)
        }
        let handle = s.handle
        let room = s.room.id
        let paused = s.paused
        s.room.forwarding.withLock { t in
            let media: SubscriberMedia
            if let existing = t.subscribers[handle.id] {
                media = existing
            } else {
                media = SubscriberMedia(handle: handle, room: room)
                t.subscribers[handle.id] = media
            }
            media.paused = paused
            media.videoSinks = max(1, links.filter { $0.isVideo && $0.source != nil }.count)
            media.audioSinks = links.filter { !$0.isVideo && $0.source != nil }.count
            for link in links {
                let sink: SinkMedia
                if let existing = media.sinks[link.mindex] {
                    sink = existing
                } else {
                    sink = SinkMedia(subscriber: media, mindex: link.mindex, mid: link.mid, payloadType: link.payloadType, clockRate: link.clockRate)
                    media.sinks[link.mindex] = sink
                }
                sink.payloadType = link.payloadType
                sink.send = link.send
                sink.simulcast.targetSubstream = link.substream
                sink.simulcast.targetTemporal = link.temporal
                if let old = sink.source, let new = link.source, old == new { continue }
                t.detach(sink)
                sink.simulcast.reset()
                guard let (_, stream) = t.stream(link.source) else { continue }
                sink.source = link.source
                stream.sinks.append(sink)
            }
        }
    }
}
