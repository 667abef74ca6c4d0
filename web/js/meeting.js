// One person's part in a meeting: the Janus session, the chat room, the SFU room (a publisher
// PeerConnection sending camera and microphone, one subscriber PeerConnection receiving everyone
// else), recording, connection quality and reconnection. No DOM here: room.js draws what the
// events say. docs/webapp.md maps each step to the plugin requests.

import { JanusError, Session, TransportError } from "./atrium-client.js";
import { roomKeys } from "./room-id.js";

export const SFU_PLUGINS = ["atrium.plugin.sfu", "janus.plugin.videoroom"];
export const CHAT_PLUGIN = "atrium.plugin.chat";
export const TURN_PLUGIN = "atrium.plugin.turn";
export const RECORDER_PLUGIN = "atrium.plugin.recorder";

/** Most people with camera or microphone in one room (the SFU room's `publishers`). */
export const ROOM_CAPACITY = 12;

/** Why joining failed, for the page to explain. */
export class MeetingError extends Error {
  constructor(kind, message, cause) {
    super(message);
    this.name = "MeetingError";
    this.kind = kind; // "unreachable" | "full" | "refused" | "name" | "unsupported" | "closed"
    this.cause = cause;
  }
}

const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

/**
 * Events (CustomEvent detail):
 * - "state" {state}: connecting, joined, reconnecting, left, failed
 * - "participants": the roster changed (read meeting.participants)
 * - "streams" {id}: a participant's MediaStream gained or lost tracks
 * - "talking" {id, talking}
 * - "chat" {from, text, private, to, date, self, stream, fromRoom, roomChat, toStream}
 * - "streamchat" {write, viewersRead}: what the room lets through between its chat and the stream chat
 * - "notice" {text}
 * - "recording" {on}
 * - "quality" {level, rtt, loss}
 * - "capabilities" {recorder, turn}
 */
export class Meeting extends EventTarget {
  constructor({ roomId, streamId = null, display, stream, serverConfig, bitrate = 0 }) {
    super();
    this.roomId = roomId;
    /** Watching (the stream link): a viewer, never a participant; the room id is not known. */
    this.watching = !!streamId;
    this.streamId = streamId;
    this.keys = roomId ? roomKeys(roomId) : null;
    /** How many watch the stream link (the SFU's `viewers`). */
    this.viewers = 0;
    /** The room's stream-chat settings (SFU room properties `stream_chat_write`, `viewers_read_chat`). */
    this.streamChatSettings = { write: false, viewersRead: false };
    this.wantedDisplay = display;
    this.display = display;
    this.localStream = stream; // may have no tracks (camera and microphone refused)
    this.serverConfig = serverConfig;
    this.bitrate = bitrate;
    this.state = "idle";
    this.selfId = null;
    this.audioOn = stream.getAudioTracks().some((t) => t.enabled);
    this.videoOn = stream.getVideoTracks().some((t) => t.enabled);
    this.screen = false;
    this.recording = false;
    /** feed id (string) → {id, display, audio, video, screen, publishing, talking, stream} */
    this.participants = new Map();
    /** chat display names of the others, for private messages */
    this.chatPeople = new Set();
    /** feeds the subscriber asked for (or is asking for) */
    this._subscribed = new Set();
    this.capabilities = { recorder: false, turn: false };
    this._attempt = 0;
    this._timers = [];
  }

  // MARK: joining and leaving

  async join() {
    this._setState("connecting");
    try {
      await this._connect();
    } catch (e) {
      await this._teardown();
      this._setState("failed");
      throw e;
    }
    this._setState("joined");
  }

  async leave() {
    if (this.state === "left") return;
    this._setState("left");
    try {
      if (this.sfu) await Promise.race([this.sfu.request({ request: "leave" }), delay(1000)]).catch(() => {});
      if (this.chat) await Promise.race([this.chat.request({ request: "leave" }), delay(1000)]).catch(() => {});
    } finally {
      await this._teardown();
    }
  }

  async _connect() {
    const cfg = this.serverConfig;
    let session;
    try {
      session = await Session.connect({ websocketUrl: cfg.websocketUrl, httpUrl: cfg.httpUrl });
    } catch (e) {
      throw new MeetingError("unreachable", "The Atrium server cannot be reached.", e);
    }
    this.session = session;
    session.addEventListener("closed", (e) => this._connectionLost(e.detail.reason));

    const info = await session.info();
    const plugins = Object.keys(info.plugins || {});
    const sfuPlugin = SFU_PLUGINS.find((p) => plugins.includes(p));
    if (!sfuPlugin || !plugins.includes(CHAT_PLUGIN)) {
      throw new MeetingError("unsupported", "This server has no SFU or no chat plugin enabled, so meetings cannot run here.");
    }
    this.capabilities = { recorder: plugins.includes(RECORDER_PLUGIN), turn: plugins.includes(TURN_PLUGIN) };
    this._emit("capabilities", this.capabilities);

    this.iceServers = [];

    const [chat, sfu] = await Promise.all([session.attach(CHAT_PLUGIN), session.attach(sfuPlugin)]);
    this.chat = chat;
    this.sfu = sfu;
    this.sfuPlugin = sfuPlugin;
    chat.addEventListener("message", (e) => this._chatEvent(e.detail.plugindata?.data));
    sfu.addEventListener("message", (e) => this._publisherEvent(e.detail.plugindata?.data));
    // The server hung up our PeerConnection (ICE consent lost, DTLS closed): join again.
    sfu.addEventListener("hangup", (e) => this._connectionLost(`publisher hangup: ${e.detail.reason}`));

    if (this.watching) {
      await this._joinChat();
      await this._fetchIceServers();
      await this._watch();
      this._startQualityWatch();
      return;
    }
    await this._createRoom();
    await this._joinChat();
    await this._fetchIceServers();
    await this._joinRoom();
    if (this.localStream.getTracks().length > 0) await this._publish();
    if (this.streamId) this._readStreamChat(); // in the background: the meeting does not wait for it
    if (this.capabilities.recorder) this._refreshRecording();
    this._startQualityWatch();
  }

  /** TURN credentials go only to sessions that are in a meeting, so this comes after joining the
   * chat and before the first PeerConnection. Without them the page still tries direct paths. */
  async _fetchIceServers() {
    if (this.capabilities.turn) this.iceServers = await this._turnServers().catch(() => []);
  }

  async _turnServers() {
    const turn = await this.session.attach(TURN_PLUGIN);
    try {
      const { data } = await turn.request({ request: "credentials" });
      return Array.isArray(data.iceServers) ? data.iceServers : [];
    } finally {
      turn.detach();
    }
  }

  /** Makes the SFU room unless it exists. Anyone with the link may: the first one in does. */
  async _createRoom() {
    const k = this.keys;
    try {
      await this.sfu.request({
        request: "create",
        room: k.sfuRoom,
        pin: k.pin,
        secret: k.pin,
        is_private: true,
        description: "Atrium meeting",
        publishers: ROOM_CAPACITY,
        notify_joining: true,
        destroy_when_empty: true,
        audiolevel_event: true,
        audio_active_packets: 50,
        audio_level_average: 40,
      });
    } catch (e) {
      if (e instanceof JanusError && e.code === 427) return; // exists: someone made it first
      if (e instanceof JanusError && e.code === 433) return; // creation needs an admin_key: join if it exists
      throw e;
    }
  }

  async _joinChat() {
    let display = this.wantedDisplay;
    for (let n = 2; ; n++) {
      try {
        const { data } = await this.chat.request({ request: "join", room: this._chatRoom(), display, pin: this._chatPin() });
        this.display = data.display;
        this.chatId = data.id;
        // Viewers learn the room's settings from their chat (the SFU tells participants).
        if (this.watching && data.stream_link) this._setStreamChatSettings(data.stream_link, false);
        this.chatPeople = new Set((data.participants || []).map((p) => p.display));
        this._emit("participants");
        return;
      } catch (e) {
        if (e instanceof JanusError && e.code === 420 && n < 20) {
          display = `${this.wantedDisplay} (${n})`; // the name is taken in this room
          continue;
        }
        if (e instanceof JanusError && e.code === 426) throw new MeetingError("full", "This room is full.", e);
        if (e instanceof JanusError && e.code === 419) throw new MeetingError("refused", "This link does not open this room.", e);
        throw e;
      }
    }
  }

  /** The chat room: the meeting's, or for viewers the stream chat (a room of its own, keyed by
   * the stream id: its first 10 characters name it, the whole id is its pin). */
  _chatRoom() {
    return this.watching ? streamChatRoom(this.streamId) : this.keys.chatRoom;
  }

  _chatPin() {
    return this.watching ? this.streamId : this.keys.pin;
  }

  /** Participants read the viewers' stream chat on a chat handle of their own, as
   * "<name> (room)". They write into it through their room chat handle (`target: "stream"`), when
   * the room allows it, so the server knows the message comes from the room. */
  async _readStreamChat() {
    const session = this.session;
    try {
      const handle = await session.attach(CHAT_PLUGIN);
      if (this.session !== session) return handle.detach();
      this.streamChat = handle;
      handle.addEventListener("message", (e) => {
        const data = e.detail.plugindata?.data;
        if (!data || this.state === "left" || data.chat !== "message" || typeof data.text !== "string") return;
        if (data.room_chat) return; // the viewers' copy of our own chat
        if (data.from_room && data.from.id === this.chatId) return; // ours, shown when sent
        this._emit("chat", { from: data.from.display, text: data.text, private: !!data.private, date: data.date, self: false, stream: true, fromRoom: !!data.from_room });
      });
      for (let n = 1; n < 20; n++) {
        const display = n === 1 ? `${this.display} (room)` : `${this.display} (room ${n})`;
        try {
          await handle.request({ request: "join", room: streamChatRoom(this.streamId), display, pin: this.streamId });
          return;
        } catch (e) {
          if (!(e instanceof JanusError && e.code === 420)) throw e;
        }
      }
    } catch (e) {
      console.warn("the stream chat could not be read", e);
    }
  }

  /** Joins the SFU as a viewer with the stream id: the publishers come in `watching`. */
  async _watch() {
    let data;
    try {
      ({ data } = await this.sfu.request({ request: "join", ptype: "viewer", stream: this.streamId, display: this.display }));
    } catch (e) {
      if (e instanceof JanusError && e.code === 426) throw new MeetingError("refused", "This stream is not on now: the meeting has not started or has ended.", e);
      if (e instanceof JanusError && e.code === 439) throw new MeetingError("full", "This stream is full: it has as many viewers as it allows.", e);
      throw e;
    }
    this.selfId = `viewer-${data.id}`;
    this._setViewers(data.viewers);
    this._publishersChanged(data.publishers || []);
  }

  _setViewers(n) {
    if (typeof n !== "number" || n === this.viewers) return;
    this.viewers = n;
    this._emit("viewers", { count: n });
  }

  async _joinRoom(retry = true) {
    const k = this.keys;
    let data;
    try {
      ({ data } = await this.sfu.request({
        request: "join",
        ptype: "publisher",
        room: k.sfuRoom,
        pin: k.pin,
        display: this.display,
        metadata: this._metadata(),
        stream_info: true, // the stream id (for the stream link) and the viewer count
      }));
    } catch (e) {
      if (e instanceof JanusError && e.code === 426 && retry) {
        // The room went (its last person left) between our create and our join: make it again.
        await this._createRoom();
        return this._joinRoom(false);
      }
      if (e instanceof JanusError && e.code === 426) {
        throw new MeetingError("refused", "This room does not exist, and this server does not let the web app create rooms.", e);
      }
      if (e instanceof JanusError && e.code === 433) throw new MeetingError("refused", "This link does not open this room.", e);
      throw e;
    }
    this.selfId = String(data.id);
    this.privateId = data.private_id;
    if (typeof data.stream_id === "string") this.streamId = data.stream_id;
    this._setViewers(data.viewers);
    this._setStreamChatSettings(data, false);
    const publishers = data.publishers || [];
    if (this.localStream.getTracks().length > 0 && publishers.length >= ROOM_CAPACITY) {
      throw new MeetingError("full", `This room is full: ${publishers.length} people are in it, the most it takes.`);
    }
    for (const a of data.attendees || []) this._upsert(a, false);
    this._publishersChanged(publishers);
  }

  async _publish() {
    const pc = this._newPeerConnection("publisher");
    this.pubPC = pc;
    const audio = this.localStream.getAudioTracks()[0];
    const video = this.localStream.getVideoTracks()[0];
    // Both kinds always get a sending transceiver, so turning the camera on later, or sharing
    // the screen, is replaceTrack with no renegotiation.
    this.audioSender = pc.addTransceiver(audio || "audio", { direction: "sendonly", streams: [this.localStream] }).sender;
    const encodings = this.bitrate ? [{ maxBitrate: this.bitrate }] : undefined;
    this.videoSender = pc.addTransceiver(this.screenTrack || video || "video", { direction: "sendonly", streams: [this.localStream], sendEncodings: encodings }).sender;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let reply;
    try {
      reply = await this.sfu.request({ request: "publish", display: this.display }, pc.localDescription.toJSON());
    } catch (e) {
      if (e instanceof JanusError && e.code === 432) throw new MeetingError("full", "This room is full.", e);
      throw e;
    }
    this._flushCandidates(pc, this.sfu);
    await pc.setRemoteDescription(reply.jsep);
  }

  _newPeerConnection(role) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
    pc._pending = [];
    pc._signalled = false;
    const handle = () => (role === "publisher" ? this.sfu : this.sub);
    pc.onicecandidate = (e) => {
      // Candidates wait until the description they belong to has been sent.
      if (!pc._signalled) pc._pending.push(e.candidate);
      else handle()?.trickle(e.candidate);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && this.state === "joined") this._connectionLost(`${role} connection failed`);
    };
    return pc;
  }

  _flushCandidates(pc, handle) {
    pc._signalled = true;
    for (const c of pc._pending) handle.trickle(c);
    pc._pending = [];
  }

  // MARK: the roster (publisher handle events)

  _metadata() {
    return { audio: this.audioOn, video: this.videoOn, screen: this.screen };
  }

  _publisherEvent(data) {
    // `joined` is read by _joinRoom, which asked for it.
    if (!data || this.state === "left" || data.videoroom === "joined" || data.videoroom === "watching") return;
    if (typeof data.viewers === "number") this._setViewers(data.viewers);
    if (!this.watching) this._setStreamChatSettings(data, true);
    if (data.publishers) this._publishersChanged(data.publishers);
    if (data.joining) {
      this._upsert(data.joining, false);
      this._emit("participants");
    }
    const gone = data.leaving ?? data.kicked;
    if (gone !== undefined && gone !== "ok") this._removeParticipant(String(gone));
    if (data.unpublished !== undefined && data.unpublished !== "ok") {
      const p = this.participants.get(String(data.unpublished));
      this._subscribed.delete(String(data.unpublished));
      if (p) {
        p.publishing = false;
        p.talking = false;
        this._emit("participants");
      }
    }
    if (data.videoroom === "talking" || data.videoroom === "stopped-talking") {
      const id = String(data.id);
      const talking = data.videoroom === "talking";
      const p = this.participants.get(id);
      if (p) p.talking = talking;
      if (p || id === this.selfId) this._emit("talking", { id, talking });
    }
    if (data.videoroom === "destroyed") this._connectionLost("room destroyed");
  }

  _upsert(entry, publishing) {
    const id = String(entry.id);
    if (id === this.selfId) return null;
    let p = this.participants.get(id);
    if (!p) {
      p = { id, display: entry.display || "Guest", audio: true, video: true, screen: false, publishing: false, talking: false, stream: new MediaStream() };
      this.participants.set(id, p);
    }
    if (entry.display) p.display = entry.display;
    const m = entry.metadata;
    if (m && typeof m === "object") {
      if (typeof m.audio === "boolean") p.audio = m.audio;
      if (typeof m.video === "boolean") p.video = m.video;
      if (typeof m.screen === "boolean") p.screen = m.screen;
    }
    if (publishing) {
      p.publishing = true;
      if (entry.talking !== undefined) p.talking = !!entry.talking;
    }
    return p;
  }

  _publishersChanged(list) {
    const fresh = [];
    for (const entry of list) {
      const p = this._upsert(entry, true);
      if (p && !this._subscribed.has(p.id) && (entry.streams || []).some((s) => !s.disabled)) fresh.push(p.id);
    }
    this._emit("participants");
    if (fresh.length > 0) this._subscribe(fresh);
  }

  _removeParticipant(id) {
    const p = this.participants.get(id);
    this._subscribed.delete(id);
    if (!p) return;
    this.participants.delete(id);
    for (const t of p.stream.getTracks()) p.stream.removeTrack(t);
    this._emit("participants");
  }

  // MARK: receiving (one subscriber handle, one PeerConnection)

  _subscribe(feeds) {
    for (const f of feeds) this._subscribed.add(f);
    const streams = feeds.map((feed) => ({ feed: Number(feed) }));
    this._subQueue = (this._subQueue || Promise.resolve()).then(() => this._subscribeNow(streams)).catch((e) => {
      if (this.state !== "joined" && this.state !== "connecting" && this.state !== "reconnecting") return;
      for (const s of streams) this._subscribed.delete(String(s.feed));
      // A feed that left before we asked (428) fails the whole request: ask for the others alone.
      if (e instanceof JanusError && e.code === 428 && feeds.length > 1) {
        for (const f of feeds) if (this.participants.get(f)?.publishing) this._subscribe([f]);
        return;
      }
      if (!(e instanceof JanusError && e.code === 428)) console.warn("subscribe failed", e);
    });
  }

  async _subscribeNow(streams) {
    if (this.state === "left" || !this.session || this.session.closed) return;
    if (!this.sub) {
      // The offer in `attached` is answered by the event listener, so sub and subPC are set first.
      const sub = await this.session.attach(this.sfuPlugin);
      this.sub = sub;
      this.subPC = this._newPeerConnection("subscriber");
      this.subPC.ontrack = () => this._mapTracks();
      sub.addEventListener("message", (e) => this._subscriberEvent(e.detail.plugindata?.data, e.detail.jsep));
      sub.addEventListener("hangup", (e) => this._connectionLost(`subscriber hangup: ${e.detail.reason}`));
      try {
        const where = this.watching ? { stream: this.streamId } : { room: this.keys.sfuRoom, pin: this.keys.pin, private_id: this.privateId };
        await sub.request({ request: "join", ptype: "subscriber", ...where, streams });
      } catch (e) {
        this.subPC.close();
        this.sub = this.subPC = null;
        sub.detach();
        throw e;
      }
    } else {
      await this.sub.request({ request: "subscribe", streams });
    }
  }

  _subscriberEvent(data, jsep) {
    if (!data || this.state === "left") return;
    if (Array.isArray(data.streams)) this._subStreams = data.streams;
    if (jsep && jsep.type === "offer") {
      // Offers are answered one at a time, in the order they came.
      this._offerChain = (this._offerChain || Promise.resolve()).then(() => this._answer(jsep)).catch((e) => {
        console.warn("answering the subscriber offer failed", e);
      });
    } else if (Array.isArray(data.streams)) {
      this._mapTracks();
    }
  }

  async _answer(offer) {
    const pc = this.subPC;
    if (!pc || pc.signalingState === "closed") return;
    await pc.setRemoteDescription(offer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await this.sub.request({ request: "start" }, pc.localDescription.toJSON());
    this._flushCandidates(pc, this.sub);
    this._mapTracks();
  }

  /** Puts each received track into its participant's MediaStream, from the latest stream list. */
  _mapTracks() {
    const pc = this.subPC;
    if (!pc) return;
    const byMid = new Map(pc.getTransceivers().map((t) => [t.mid, t]));
    const wanted = new Map(); // feed → tracks
    for (const s of this._subStreams || []) {
      if (!s.active || s.feed_id === undefined) continue;
      const t = byMid.get(s.mid);
      if (!t || t.currentDirection === "inactive" || t.currentDirection === "stopped") continue;
      const feed = String(s.feed_id);
      if (!wanted.has(feed)) wanted.set(feed, []);
      wanted.get(feed).push(t.receiver.track);
    }
    for (const p of this.participants.values()) {
      const tracks = wanted.get(p.id) || [];
      let changed = false;
      for (const t of p.stream.getTracks()) {
        if (!tracks.includes(t)) {
          p.stream.removeTrack(t);
          changed = true;
        }
      }
      for (const t of tracks) {
        if (!p.stream.getTracks().includes(t)) {
          p.stream.addTrack(t);
          changed = true;
        }
      }
      if (changed) this._emit("streams", { id: p.id });
    }
  }

  // MARK: what I send

  async setAudio(on) {
    this.audioOn = on;
    for (const t of this.localStream.getAudioTracks()) t.enabled = on;
    await this._announce();
  }

  async setVideo(on) {
    this.videoOn = on;
    for (const t of this.localStream.getVideoTracks()) t.enabled = on;
    await this._announce();
  }

  /** Sends `track` instead of the camera (screen sharing), or the camera again with null. */
  async shareScreen(track) {
    this.screen = !!track;
    this.screenTrack = track || null;
    const camera = this.localStream.getVideoTracks()[0] || null;
    if (this.videoSender) await this.videoSender.replaceTrack(track || camera);
    await this._announce();
  }

  /** Tells the others (publisher metadata, which the SFU announces in `publishers`). */
  async _announce() {
    if (this.state !== "joined" || !this.sfu) return;
    await this.sfu.request({ request: "configure", metadata: this._metadata() }).catch(() => {});
  }

  // MARK: chat

  /** Takes `stream_chat_write` / `viewers_read_chat` from an SFU or chat message that has them. */
  _setStreamChatSettings(data, announce) {
    if (typeof data?.stream_chat_write !== "boolean" || typeof data?.viewers_read_chat !== "boolean") return;
    const next = { write: data.stream_chat_write, viewersRead: data.viewers_read_chat };
    const before = this.streamChatSettings;
    if (next.write === before.write && next.viewersRead === before.viewersRead) return;
    this.streamChatSettings = next;
    this._emit("streamchat", next);
    if (!announce) return;
    if (next.viewersRead !== before.viewersRead) {
      const text = this.watching
        ? next.viewersRead ? "The room's chat is shown here now (read-only)" : "The room's chat is no longer shown here"
        : next.viewersRead ? "Viewers can now read this chat" : "Viewers can no longer read this chat";
      this._emit("notice", { text });
    }
    if (next.write !== before.write) {
      const text = this.watching
        ? next.write ? "The room can now write in this chat" : "The room no longer writes in this chat"
        : next.write ? "The room can now write to the viewers" : "The room can no longer write to the viewers";
      this._emit("notice", { text });
    }
  }

  /** Changes the room's stream-chat settings (an SFU `edit`; the link id is the room's secret).
   * Everyone in the room hears of it from the SFU, the viewers from their chat. */
  async setStreamChat({ write = this.streamChatSettings.write, viewersRead = this.streamChatSettings.viewersRead }) {
    if (this.watching) throw new Error("viewers cannot change the room's settings");
    const k = this.keys;
    await this.sfu.request({ request: "edit", room: k.sfuRoom, secret: k.pin, new_stream_chat_write: write, new_viewers_read_chat: viewersRead });
    this._setStreamChatSettings({ stream_chat_write: write, viewers_read_chat: viewersRead }, true);
  }

  _chatEvent(data) {
    if (!data || this.state === "left") return;
    switch (data.chat) {
      case "stream_link":
        if (this.watching) this._setStreamChatSettings(data, true);
        break;
      case "join":
        this.chatPeople.add(data.participant.display);
        this._emit("notice", { text: `${data.participant.display} joined` });
        this._emit("participants");
        break;
      case "leave":
        this.chatPeople.delete(data.participant.display);
        this._emit("notice", { text: `${data.participant.display} left` });
        this._emit("participants");
        break;
      case "message": {
        const payload = data.payload;
        if (payload && typeof payload === "object" && payload.atrium === "recording") {
          this._setRecording(!!payload.on);
          this._emit("notice", { text: `${data.from.display} ${payload.on ? "started" : "stopped"} recording` });
          break;
        }
        if (typeof data.text === "string") {
          this._emit("chat", {
            from: data.from.display, text: data.text, private: !!data.private, date: data.date, self: false,
            fromRoom: !!data.from_room, roomChat: !!data.room_chat,
          });
        }
        break;
      }
      default:
        break;
    }
  }

  /** Sends a chat message to everyone, privately to one display name, or (`toStream`) into the
   * stream chat for the viewers, as the room. */
  async sendChat(text, to, { toStream = false } = {}) {
    const body = { request: "message", text };
    if (to) body.to = to;
    if (toStream) body.target = "stream";
    await this.chat.request(body);
    this._emit("chat", { from: this.display, text, private: !!to, to, date: new Date().toISOString(), self: true, toStream });
  }

  // MARK: recording

  async setRecording(on) {
    if (!this.capabilities.recorder) return;
    const recorder = await this._recorder();
    const room = this.keys.chatRoom;
    try {
      // The link id is the SFU room's secret, which the Recorder asks for (docs/api/recorder.md).
      const secret = this.keys.pin;
      if (on) await recorder.request({ request: "start", room, plugin: "atrium.plugin.sfu", secret });
      else await recorder.request({ request: "stop", room, secret });
    } catch (e) {
      // Already in the state asked for (417 recording, 416 not recording): say so, not fail.
      if (!(e instanceof JanusError && (e.code === 417 || e.code === 416))) throw e;
    }
    this._setRecording(on);
    // The text is for other chat clients (and opens the recording's transcript); this app shows
    // the payload as a notice.
    const text = on ? "started recording" : "stopped recording";
    await this.chat.request({ request: "message", text, payload: { atrium: "recording", on } }).catch(() => {});
  }

  async _recorder() {
    if (!this.recorderHandle) this.recorderHandle = await this.session.attach(RECORDER_PLUGIN);
    return this.recorderHandle;
  }

  /** Asks the Recorder whether this room is being recorded (for those who join later). */
  async _refreshRecording() {
    try {
      const recorder = await this._recorder();
      const { data } = await recorder.request({ request: "list", room: this.keys.chatRoom, secret: this.keys.pin });
      const on = (data.recordings || []).some((r) => r.room === this.keys.chatRoom && r.state === "recording");
      this._setRecording(on);
    } catch {
      // The indicator stays as it was.
    }
  }

  _setRecording(on) {
    if (this.recording === on) return;
    this.recording = on;
    this._emit("recording", { on });
  }

  // MARK: connection quality

  _startQualityWatch() {
    let last = null;
    const tick = async () => {
      if (this.state !== "joined") return;
      const q = await this._sample(last).catch(() => null);
      if (q) {
        last = q.raw;
        this._emit("quality", q.summary);
      }
    };
    this._timers.push(setInterval(tick, 2000));
    if (this.capabilities.recorder && !this.watching) this._timers.push(setInterval(() => this._refreshRecording(), 15000));
  }

  async _sample(last) {
    let rtt = null;
    let lost = 0;
    let received = 0;
    for (const pc of [this.pubPC, this.subPC]) {
      if (!pc) continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && typeof s.currentRoundTripTime === "number") {
          rtt = Math.max(rtt ?? 0, s.currentRoundTripTime);
        }
        if (s.type === "inbound-rtp") {
          lost += s.packetsLost || 0;
          received += s.packetsReceived || 0;
        }
      });
    }
    const dLost = last ? Math.max(0, lost - last.lost) : 0;
    const dReceived = last ? Math.max(0, received - last.received) : 0;
    const loss = dLost + dReceived > 0 ? dLost / (dLost + dReceived) : 0;
    const states = [this.pubPC, this.subPC].filter(Boolean).map((pc) => pc.connectionState);
    let level = "good";
    if (states.includes("disconnected") || states.includes("failed")) level = "poor";
    else if ((rtt ?? 0) > 0.5 || loss > 0.08) level = "poor";
    else if ((rtt ?? 0) > 0.25 || loss > 0.02) level = "fair";
    return { raw: { lost, received }, summary: { level, rtt, loss } };
  }

  // MARK: losing the connection

  _connectionLost(reason) {
    if (this.state === "left" || this.state === "reconnecting" || this.state === "failed" || this.state === "connecting") return;
    console.warn("connection lost:", reason);
    this._setState("reconnecting");
    this._reconnect();
  }

  async _reconnect() {
    await this._teardown();
    for (const p of this.participants.values()) for (const t of p.stream.getTracks()) p.stream.removeTrack(t);
    this.participants.clear();
    this._emit("participants");
    this._setViewers(0);
    while (this.state === "reconnecting") {
      const wait = RECONNECT_DELAYS_MS[Math.min(this._attempt, RECONNECT_DELAYS_MS.length - 1)];
      this._attempt++;
      await delay(wait);
      if (this.state !== "reconnecting") return;
      try {
        await this._connect();
        this._attempt = 0;
        this._setState("joined");
        if (!this.watching) await this._announce();
        this._emit("notice", { text: "Reconnected" });
        return;
      } catch (e) {
        await this._teardown();
        if (e instanceof MeetingError && e.kind !== "unreachable") {
          this._setState("failed");
          this._emit("notice", { text: e.message });
          return;
        }
      }
    }
  }

  async _teardown() {
    for (const t of this._timers) clearInterval(t);
    this._timers = [];
    for (const pc of [this.pubPC, this.subPC]) if (pc) pc.close();
    this.pubPC = this.subPC = null;
    this.audioSender = this.videoSender = null;
    const session = this.session;
    this.session = this.chat = this.sfu = this.sub = this.recorderHandle = this.streamChat = null;
    this._subQueue = this._offerChain = null;
    this._subStreams = [];
    this._subscribed.clear();
    if (session) await session.destroy().catch(() => {});
  }

  // MARK: debugging (the e2e test reads these; nothing in the page depends on them)

  /** Per participant: what the subscriber PeerConnection decoded and received. */
  async receivedStats() {
    const out = {};
    if (!this.subPC) return out;
    const mids = new Map((this._subStreams || []).filter((s) => s.active).map((s) => [s.mid, String(s.feed_id)]));
    const report = await this.subPC.getStats();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" || !mids.has(s.mid)) return;
      const feed = mids.get(s.mid);
      out[feed] = out[feed] || {};
      out[feed][s.kind] = { framesDecoded: s.framesDecoded, frameWidth: s.frameWidth, packetsReceived: s.packetsReceived, totalSamplesReceived: s.totalSamplesReceived };
    });
    return out;
  }

  /** Drops the connection as a network failure would (the page then reconnects). */
  simulateNetworkFailure() {
    this.session?.drop();
  }

  // MARK: helpers

  _setState(state) {
    this.state = state;
    this._emit("state", { state });
  }

  _emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/** The stream chat's room id for a stream id (see Meeting._chatRoom). */
export function streamChatRoom(streamId) {
  return `stream-${streamId.slice(0, 10)}`;
}

function delay(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export { JanusError, TransportError };
