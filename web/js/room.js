// The room page: name and device preview, then the meeting (tiles, toolbar, chat). What happens
// on the wire is in meeting.js; this file draws it and turns clicks into calls.
import { drawIcons, setIcon } from "./icons.js";
import { Session } from "./atrium-client.js";
import { Meeting, MeetingError } from "./meeting.js";
import { parseRoomInput } from "./room-id.js";

const $ = (id) => document.getElementById(id);
const store = {
  get(key, fallback = "") {
    try {
      return localStorage.getItem(`atrium.${key}`) ?? fallback;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      localStorage.setItem(`atrium.${key}`, value);
    } catch {
      // Private mode: nothing is remembered, everything still works.
    }
  },
};

const QUALITY = {
  low: { width: 320, height: 240, frameRate: 15, bitrate: 250_000 },
  standard: { width: 640, height: 360, frameRate: 24, bitrate: 700_000 },
  high: { width: 1280, height: 720, frameRate: 30, bitrate: 1_800_000 },
};

const page = {
  roomId: null,
  serverConfig: null,
  stream: new MediaStream(),
  micOn: true,
  camOn: true,
  meeting: null,
  tiles: new Map(), // id → tile element ("self" for mine)
  screenTrack: null,
  unread: 0,
  levelTimer: null,
};

// MARK: start-up

drawIcons();
// `/s/<stream id>` is the watch page (the same page, without camera, microphone or the room id).
page.streamId = parseStreamInput(location.pathname);
page.watching = location.pathname.startsWith("/s/");
page.roomId = page.watching ? null : parseRoomInput(location.pathname);
if (page.watching && !page.streamId) {
  showEnded("This is not a stream link", "The link is incomplete or mistyped. Ask for the link again.", false);
} else if (page.watching) {
  setUpWatchLobby();
} else if (!page.roomId) {
  showEnded("This is not a room link", "The link is incomplete or mistyped. Ask for the link again, or create a new room.", false);
} else {
  setUpLobby();
}

function roomLink() {
  return page.watching ? streamLink() : `${location.origin}/r/${page.roomId}`;
}

function streamLink() {
  const id = page.meeting?.streamId || page.streamId;
  return id ? `${location.origin}/s/${id}` : "";
}

function parseStreamInput(path) {
  const m = String(path).match(/^\/s\/([A-Za-z0-9_-]{1,128})$/);
  return m ? m[1] : null;
}

/** The watch page's lobby: a name for the stream chat, no camera or microphone. */
function setUpWatchLobby() {
  document.body.classList.add("watching");
  hide(document.querySelector(".preview-column"));
  hide($("devices"));
  $("lobby-title").textContent = "Watch the meeting";
  document.querySelector(".room-code").textContent = "You watch and chat with the other viewers; you are not seen or heard.";
  $("name-hint").textContent = "Shown in the stream chat. Remembered on this device.";
  $("join-button").textContent = "Watch";
  $("copy-link").querySelector(".label").textContent = "Copy stream link";
  const name = $("display-name");
  name.value = store.get("displayName");
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join();
  });
  $("copy-link").addEventListener("click", () => copyLink($("copy-link")));
  $("rejoin").addEventListener("click", () => location.reload());
  if (!name.value) name.focus();
  else $("join-button").focus();
}

async function loadServerConfig() {
  const fallback = { janus_path: "/janus", websocket_port: null, websocket_path: null };
  let cfg = fallback;
  try {
    const response = await fetch("/web-config.json", { cache: "no-store" });
    if (response.ok) cfg = { ...fallback, ...(await response.json()) };
  } catch {
    // The server may be unreachable: joining will say so.
  }
  const wsScheme = location.protocol === "https:" ? "wss" : "ws";
  // A path on the page's own port (one port, or a reverse proxy) before a port of its own.
  const websocketUrl = cfg.websocket_path ? `${wsScheme}://${location.host}${cfg.websocket_path}`
    : cfg.websocket_port ? `${wsScheme}://${location.hostname}:${cfg.websocket_port}/` : null;
  return {
    websocketUrl,
    httpUrl: `${location.origin}${cfg.janus_path}`,
  };
}

// MARK: the lobby

function setUpLobby() {
  $("room-code").textContent = page.roomId;
  $("room-code").title = page.roomId;
  if (isNarrow()) $("devices").open = false; // the Join button stays on the first screen
  const name = $("display-name");
  name.value = store.get("displayName");
  $("quality-select").value = QUALITY[store.get("quality")] ? store.get("quality") : "standard";
  page.micOn = store.get("micOn", "true") !== "false";
  page.camOn = store.get("camOn", "true") !== "false";
  drawPreviewToggles();

  $("preview-mic").addEventListener("click", () => {
    page.micOn = !page.micOn;
    store.set("micOn", String(page.micOn));
    for (const t of page.stream.getAudioTracks()) t.enabled = page.micOn;
    drawPreviewToggles();
  });
  $("preview-cam").addEventListener("click", () => {
    page.camOn = !page.camOn;
    store.set("camOn", String(page.camOn));
    for (const t of page.stream.getVideoTracks()) t.enabled = page.camOn;
    drawPreviewToggles();
  });
  $("camera-select").addEventListener("change", () => {
    store.set("cameraId", $("camera-select").value);
    startPreview();
  });
  $("mic-select").addEventListener("change", () => {
    store.set("micId", $("mic-select").value);
    startPreview();
  });
  $("quality-select").addEventListener("change", () => {
    store.set("quality", $("quality-select").value);
    startPreview();
  });
  $("media-retry").addEventListener("click", () => startPreview());
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    join();
  });
  $("copy-link").addEventListener("click", () => copyLink($("copy-link")));
  $("rejoin").addEventListener("click", () => location.reload());

  startPreview();
  if (!name.value) name.focus();
  else $("join-button").focus();
}

function constraints() {
  const q = QUALITY[$("quality-select").value] || QUALITY.standard;
  const cameraId = store.get("cameraId");
  const micId = store.get("micId");
  return {
    audio: { echoCancellation: true, noiseSuppression: true, ...(micId ? { deviceId: { ideal: micId } } : {}) },
    video: {
      width: { ideal: q.width },
      height: { ideal: q.height },
      frameRate: { ideal: q.frameRate },
      ...(cameraId ? { deviceId: { ideal: cameraId } } : {}),
    },
  };
}

/** Opens camera and microphone (each on its own if both at once fail) and shows the preview. */
async function startPreview() {
  hide($("media-error"));
  for (const t of page.stream.getTracks()) t.stop();
  const c = constraints();
  let stream = null;
  let failure = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia(c);
  } catch (e) {
    failure = e;
    // One device may work without the other (no camera, or a camera in use elsewhere).
    for (const kind of ["audio", "video"]) {
      try {
        const one = await navigator.mediaDevices.getUserMedia({ [kind]: c[kind] });
        stream = stream || new MediaStream();
        for (const t of one.getTracks()) stream.addTrack(t);
      } catch {
        // Reported below with the first error.
      }
    }
  }
  page.stream = stream || new MediaStream();
  for (const t of page.stream.getAudioTracks()) t.enabled = page.micOn;
  for (const t of page.stream.getVideoTracks()) t.enabled = page.camOn;
  $("preview").srcObject = page.stream;
  if (failure) showMediaError(failure, page.stream);
  drawPreviewToggles();
  await fillDeviceLists();
  watchMicLevel();
}

function showMediaError(e, partial) {
  const has = (kind) => partial.getTracks().some((t) => t.kind === kind);
  let text;
  if (!navigator.mediaDevices) {
    text = "This page cannot use a camera: the browser allows it only on https:// addresses (or localhost). You can still join to listen, watch and chat.";
  } else if (e.name === "NotAllowedError" || e.name === "SecurityError") {
    text = "Camera and microphone are blocked for this site. Allow them in your browser's site settings (the icon at the left of the address bar), then press Try again. You can also join without them to watch and chat.";
  } else if (e.name === "NotFoundError" || e.name === "OverconstrainedError") {
    text = has("audio") ? "No camera was found: you will join with your microphone only." : has("video") ? "No microphone was found: you will join with your camera only." : "No camera or microphone was found. You can still join to watch and chat.";
  } else if (e.name === "NotReadableError" || e.name === "AbortError") {
    text = "Your camera or microphone is in use by another application, or cannot be started. Close the other application, then press Try again.";
  } else {
    text = `The camera or microphone could not be started (${e.name || e.message}).`;
  }
  $("media-error-text").textContent = text;
  show($("media-error"));
}

function drawPreviewToggles() {
  const hasAudio = page.stream.getAudioTracks().length > 0;
  const hasVideo = page.stream.getVideoTracks().length > 0;
  const mic = $("preview-mic");
  const cam = $("preview-cam");
  mic.disabled = !hasAudio;
  cam.disabled = !hasVideo;
  const micOn = hasAudio && page.micOn;
  const camOn = hasVideo && page.camOn;
  mic.setAttribute("aria-label", !hasAudio ? "No microphone" : micOn ? "Microphone on (press to mute)" : "Microphone muted (press to unmute)");
  mic.classList.toggle("off", !micOn);
  setIcon(mic.querySelector(".icon"), micOn ? "mic" : "mic-off");
  cam.setAttribute("aria-label", !hasVideo ? "No camera" : camOn ? "Camera on (press to turn off)" : "Camera off (press to turn on)");
  cam.classList.toggle("off", !camOn);
  setIcon(cam.querySelector(".icon"), camOn ? "camera" : "camera-off");
  $("preview-placeholder").hidden = camOn;
  $("preview-placeholder-text").textContent = hasVideo ? "Camera is off" : "No camera";
}

async function fillDeviceLists() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind, current, none) => {
    select.replaceChildren();
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    list.forEach((d, i) => {
      const o = document.createElement("option");
      o.value = d.deviceId;
      o.textContent = d.label || `${none} ${i + 1}`;
      select.append(o);
    });
    if (list.length === 0) {
      // Without permission the browser lists devices without ids (or not at all).
      const hidden = devices.some((d) => d.kind === kind);
      const o = document.createElement("option");
      o.textContent = hidden ? `${none} not allowed` : `No ${none.toLowerCase()} found`;
      select.append(o);
    }
    select.disabled = list.length === 0;
    if (current && list.some((d) => d.deviceId === current)) select.value = current;
  };
  const video = page.stream.getVideoTracks()[0];
  const audio = page.stream.getAudioTracks()[0];
  fill($("camera-select"), "videoinput", video?.getSettings().deviceId, "Camera");
  fill($("mic-select"), "audioinput", audio?.getSettings().deviceId, "Microphone");
}

/** A level meter under the preview, so people see their microphone works before joining. */
function watchMicLevel() {
  clearInterval(page.levelTimer);
  const track = page.stream.getAudioTracks()[0];
  const meter = $("mic-level");
  meter.hidden = !track;
  if (!track || !window.AudioContext) return;
  const ctx = page.audioContext || (page.audioContext = new AudioContext());
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  page.levelTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    meter.value = track.enabled ? Math.min(1, peak * 1.5) : 0;
  }, 120);
}

// MARK: joining

async function join() {
  const nameInput = $("display-name");
  const display = nameInput.value.trim().replace(/\s+/g, " ");
  if (!display) {
    showJoinError("Type your name first: the others see it on your tile.");
    nameInput.setAttribute("aria-invalid", "true");
    nameInput.focus();
    return;
  }
  nameInput.removeAttribute("aria-invalid");
  store.set("displayName", display);
  hide($("join-error"));
  const button = $("join-button");
  button.disabled = true;
  button.textContent = "Joining…";
  page.audioContext?.resume();

  page.serverConfig = await loadServerConfig();
  const q = QUALITY[$("quality-select").value] || QUALITY.standard;
  const meeting = new Meeting({ roomId: page.roomId, streamId: page.streamId, display, stream: page.stream, serverConfig: page.serverConfig, bitrate: q.bitrate });
  page.meeting = meeting;
  window.atriumDebug = debugHook(meeting);
  wireMeeting(meeting);
  try {
    await meeting.join();
  } catch (e) {
    button.disabled = false;
    button.textContent = page.watching ? "Watch" : "Join now";
    showJoinError(describeJoinError(e));
    page.meeting = null;
    return;
  }
  clearInterval(page.levelTimer);
  enterMeeting(meeting);
}

function describeJoinError(e) {
  if (e instanceof MeetingError) {
    if (e.kind === "unreachable") {
      return "Can't reach the Atrium server. Check your internet connection, then press Join now again. If it keeps failing, the server may be down.";
    }
    if (e.kind === "full") return `${e.message} Try again later, or ask someone to leave.`;
    return e.message;
  }
  return `Joining failed: ${e.message || e}. Press Join now to try again.`;
}

function showJoinError(text) {
  $("join-error-text").textContent = text;
  show($("join-error"));
  $("join-error").scrollIntoView({ block: "nearest" });
}

// MARK: in the meeting

function enterMeeting(meeting) {
  hide($("lobby"));
  show($("meeting"));
  document.title = page.watching ? "Watching an Atrium meeting" : "Atrium meeting";
  $("invite-link").value = roomLink();
  if (page.watching) {
    for (const id of ["toggle-mic", "toggle-cam", "toggle-screen", "toggle-record"]) $(id).classList.add("never");
    document.querySelector("#invite p").textContent = "Nobody is sharing camera or microphone yet. Share this stream link with other viewers:";
  }
  drawStreamLink();
  $("copy-stream-link").addEventListener("click", () => copyLink($("copy-stream-link"), streamLink()));
  $("stream-copy").addEventListener("click", () => copyLink($("stream-copy"), streamLink()));
  $("toggle-mic").addEventListener("click", () => setMic(!meeting.audioOn));
  $("toggle-cam").addEventListener("click", () => setCam(!meeting.videoOn));
  $("toggle-screen").addEventListener("click", () => toggleScreen());
  $("toggle-record").addEventListener("click", () => toggleRecording());
  $("toggle-chat").addEventListener("click", () => setChatOpen(!chatOpen()));
  $("chat-close").addEventListener("click", () => setChatOpen(false));
  $("leave").addEventListener("click", () => leave());
  $("invite-copy").addEventListener("click", () => copyLink($("invite-copy")));
  $("viewers-read-chat").addEventListener("change", (e) => changeStreamChat(e.target, { viewersRead: e.target.checked }));
  $("stream-chat-write").addEventListener("change", (e) => changeStreamChat(e.target, { write: e.target.checked }));
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sendChat();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && chatOpen() && isNarrow()) setChatOpen(false);
  });
  if (!navigator.mediaDevices?.getDisplayMedia) hide($("toggle-screen"));
  $("toggle-mic").disabled = page.stream.getAudioTracks().length === 0;
  $("toggle-cam").disabled = page.stream.getVideoTracks().length === 0;
  setChatOpen(!isNarrow());
  // Going narrow (a phone turned, a window shrunk) closes the chat, which would cover the video.
  window.matchMedia("(max-width: 760px)").addEventListener("change", (e) => {
    if (e.matches) setChatOpen(false);
  });
  drawToolbar();
  drawRoster();
  new ResizeObserver(() => layoutGrid()).observe(document.querySelector(".grid-area"));
  addNotice(page.watching ? `You are watching as ${meeting.display}` : `You joined as ${meeting.display}`);
  const here = [...meeting.chatPeople].sort((a, b) => a.localeCompare(b));
  if (here.length > 0) addNotice(`Already here: ${here.join(", ")}`);
  window.addEventListener("pagehide", () => meeting.leave());
}

function wireMeeting(meeting) {
  meeting.addEventListener("participants", () => drawRoster());
  meeting.addEventListener("streams", (e) => {
    bindVideo(e.detail.id);
    drawRoster();
  });
  meeting.addEventListener("talking", (e) => {
    const tile = page.tiles.get(e.detail.id === meeting.selfId ? "self" : e.detail.id);
    if (tile) tile.classList.toggle("talking", e.detail.talking);
  });
  meeting.addEventListener("chat", (e) => addMessage(e.detail));
  meeting.addEventListener("notice", (e) => addNotice(e.detail.text));
  meeting.addEventListener("recording", (e) => drawRecording(e.detail.on));
  meeting.addEventListener("quality", (e) => drawQuality(e.detail));
  meeting.addEventListener("capabilities", (e) => {
    $("toggle-record").hidden = !e.detail.recorder;
  });
  meeting.addEventListener("state", (e) => drawState(e.detail.state));
  meeting.addEventListener("viewers", () => drawViewers());
  meeting.addEventListener("streamchat", () => drawStreamChatOptions());
}

/** "N watching", live, on the room page and the watch page. */
function drawViewers() {
  const n = page.meeting?.viewers ?? 0;
  const el = $("viewer-count");
  el.textContent = `${n} watching`;
  el.hidden = n === 0 && !page.watching;
  drawStreamLink();
}

/** The room page shows the stream link (known once the SFU said it) next to the room link. */
function drawStreamLink() {
  const link = page.watching ? "" : streamLink();
  $("copy-stream-link").hidden = !link;
  $("stream-invite").hidden = !link;
  $("stream-invite-text").hidden = !link;
  $("stream-link").value = link;
  drawStreamChatOptions();
}

/** The room's choices about its viewers' chat (participants only), and "To the viewers" among
 * the recipients when the room may write there. */
function drawStreamChatOptions() {
  const m = page.meeting;
  if (!m) return;
  $("stream-chat-options").hidden = page.watching || !m.streamId;
  $("viewers-read-chat").checked = m.streamChatSettings.viewersRead;
  $("stream-chat-write").checked = m.streamChatSettings.write;
  drawChatRecipients();
}

async function changeStreamChat(box, change) {
  box.disabled = true;
  try {
    await page.meeting.setStreamChat(change);
  } catch (e) {
    addNotice(`The setting was not changed (${e.message}).`);
  } finally {
    box.disabled = false;
    drawStreamChatOptions();
  }
}

function drawState(state) {
  const banner = $("banner");
  if (state === "reconnecting") {
    banner.textContent = "Connection lost. Reconnecting…";
    banner.className = "banner warning";
    show(banner);
    drawQuality({ level: "poor" });
  } else if (state === "joined") {
    hide(banner);
    drawRoster();
  } else if (state === "failed" && page.meeting && $("lobby").hidden) {
    showEnded("The connection could not be restored", "The meeting is still there: press Rejoin to try again.", true);
  }
}

/** Adds, updates and removes tiles to match the roster. */
function drawRoster() {
  const meeting = page.meeting;
  if (!meeting) return;
  const grid = $("grid");
  const wanted = new Set([...(page.watching ? [] : ["self"]), ...meeting.participants.keys()]);
  for (const [id, tile] of page.tiles) {
    if (!wanted.has(id)) {
      tile.remove();
      page.tiles.delete(id);
    }
  }
  let self = page.tiles.get("self");
  if (!self && !page.watching) {
    self = makeTile("self");
    grid.prepend(self);
    page.tiles.set("self", self);
    const video = self.querySelector("video");
    video.muted = true;
    video.srcObject = page.stream;
  }
  if (self) drawTile(self, { display: `${meeting.display} (you)`, audio: meeting.audioOn && page.stream.getAudioTracks().length > 0, video: (meeting.videoOn && page.stream.getVideoTracks().length > 0) || meeting.screen, screen: meeting.screen, self: true });
  for (const p of meeting.participants.values()) {
    let tile = page.tiles.get(p.id);
    if (!tile) {
      tile = makeTile(p.id);
      grid.append(tile);
      page.tiles.set(p.id, tile);
      bindVideo(p.id);
    }
    const hasVideo = p.stream.getVideoTracks().length > 0;
    drawTile(tile, { display: p.display, audio: p.audio && p.publishing, video: p.video && p.publishing && hasVideo, screen: p.screen, talking: p.talking });
  }
  grid.dataset.count = String(page.tiles.size);
  $("invite").hidden = meeting.participants.size > 0;
  drawChatRecipients();
  layoutGrid();
}

function makeTile(id) {
  const tile = document.createElement("figure");
  tile.className = "tile";
  tile.dataset.id = id;
  tile.innerHTML = `
    <video autoplay playsinline></video>
    <div class="avatar" aria-hidden="true"></div>
    <figcaption class="tile-label">
      <span class="mic-state" data-icon="mic-off" hidden></span>
      <span class="name"></span>
    </figcaption>`;
  drawIcons(tile);
  tile.querySelector(".mic-state").setAttribute("role", "img");
  tile.querySelector(".mic-state").setAttribute("aria-label", "microphone muted");
  return tile;
}

function drawTile(tile, { display, audio, video, screen, talking, self }) {
  tile.querySelector(".name").textContent = display;
  tile.querySelector(".avatar").textContent = initials(display);
  tile.querySelector(".mic-state").hidden = audio;
  tile.dataset.muted = String(!audio);
  tile.dataset.video = String(video);
  tile.dataset.display = display;
  tile.classList.toggle("video-off", !video);
  tile.classList.toggle("screen", !!screen);
  tile.classList.toggle("mirrored", !!self && !screen);
  if (talking !== undefined) tile.classList.toggle("talking", talking);
  tile.setAttribute("aria-label", `${display}${audio ? "" : ", microphone muted"}${video ? "" : ", camera off"}`);
}

function bindVideo(id) {
  const tile = page.tiles.get(id);
  const p = page.meeting?.participants.get(id);
  if (!tile || !p) return;
  const video = tile.querySelector("video");
  if (video.srcObject !== p.stream) video.srcObject = p.stream;
  if (p.stream.getTracks().length > 0) video.play().catch(() => showAudioUnlock());
}

/** Browsers may refuse to play sound before a click; one button fixes every tile. */
function showAudioUnlock() {
  if ($("audio-unlock")) return;
  const b = document.createElement("button");
  b.id = "audio-unlock";
  b.className = "button primary audio-unlock";
  b.textContent = "Click to hear the others";
  b.addEventListener("click", () => {
    for (const v of document.querySelectorAll(".tile video")) v.play().catch(() => {});
    b.remove();
  });
  document.querySelector(".grid-area").append(b);
}

function initials(name) {
  const words = name.replace(/\(.*?\)/g, "").trim().split(/\s+/).filter(Boolean);
  return (words.slice(0, 2).map((w) => [...w][0]).join("") || "?").toUpperCase();
}

/** Picks the column count that makes tiles largest in the space there is: 16:9 tiles, or 4:3
 * when the space is taller than wide (a phone held upright). */
function layoutGrid() {
  const area = document.querySelector(".grid-area");
  const grid = $("grid");
  const n = page.tiles.size;
  if (!area || n === 0) return;
  const gap = 8;
  const w = area.clientWidth - gap * 2;
  const h = area.clientHeight - gap * 2;
  const ratio = h > w ? 4 / 3 : 16 / 9;
  let best = { cols: 1, tileW: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const tileW = Math.min((w - gap * (cols - 1)) / cols, ((h - gap * (rows - 1)) / rows) * ratio);
    if (tileW > best.tileW) best = { cols, tileW };
  }
  grid.style.setProperty("--cols", String(best.cols));
  grid.style.setProperty("--tile-w", `${Math.max(80, Math.floor(best.tileW))}px`);
  grid.style.setProperty("--tile-ratio", ratio > 1.5 ? "16 / 9" : "4 / 3");
}

// MARK: toolbar

async function setMic(on) {
  await page.meeting.setAudio(on);
  drawToolbar();
  drawRoster();
}

async function setCam(on) {
  await page.meeting.setVideo(on);
  drawToolbar();
  drawRoster();
}

async function toggleScreen() {
  const meeting = page.meeting;
  if (page.screenTrack) {
    stopScreen();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    if (e.name !== "NotAllowedError" && e.name !== "AbortError") addNotice(`Screen sharing could not start (${e.name || e.message}).`);
    return;
  }
  const track = stream.getVideoTracks()[0];
  page.screenTrack = track;
  track.addEventListener("ended", () => stopScreen());
  await meeting.shareScreen(track);
  page.tiles.get("self").querySelector("video").srcObject = new MediaStream([track]);
  drawToolbar();
  drawRoster();
}

async function stopScreen() {
  const track = page.screenTrack;
  if (!track) return;
  page.screenTrack = null;
  track.stop();
  await page.meeting.shareScreen(null);
  page.tiles.get("self").querySelector("video").srcObject = page.stream;
  drawToolbar();
  drawRoster();
}

async function toggleRecording() {
  const meeting = page.meeting;
  const button = $("toggle-record");
  button.disabled = true;
  try {
    await meeting.setRecording(!meeting.recording);
  } catch (e) {
    addNotice(`Recording could not ${meeting.recording ? "stop" : "start"}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function drawToolbar() {
  const m = page.meeting;
  const mic = $("toggle-mic");
  mic.classList.toggle("off", !m.audioOn);
  mic.querySelector(".label").textContent = m.audioOn ? "Mute" : "Unmute";
  setIcon(mic.querySelector(".icon"), m.audioOn ? "mic" : "mic-off");
  const cam = $("toggle-cam");
  cam.classList.toggle("off", !m.videoOn);
  cam.querySelector(".label").textContent = m.videoOn ? "Stop video" : "Start video";
  setIcon(cam.querySelector(".icon"), m.videoOn ? "camera" : "camera-off");
  const screen = $("toggle-screen");
  screen.classList.toggle("active", !!page.screenTrack);
  screen.querySelector(".label").textContent = page.screenTrack ? "Stop sharing" : "Share screen";
}

function drawRecording(on) {
  $("recording-indicator").hidden = !on;
  const b = $("toggle-record");
  b.classList.toggle("active", on);
  b.querySelector(".label").textContent = on ? "Stop recording" : "Record";
}

function drawQuality({ level, rtt, loss }) {
  const q = $("quality");
  q.hidden = false;
  q.dataset.level = level;
  const words = { good: "good", fair: "fair", poor: "poor", unknown: "unknown" }[level] || level;
  const detail = rtt != null ? ` (round trip ${Math.round(rtt * 1000)} ms, loss ${((loss || 0) * 100).toFixed(1)}%)` : "";
  q.setAttribute("aria-label", `Connection quality: ${words}${detail}`);
  q.title = `Connection ${words}${detail}`;
  q.querySelector(".quality-text").textContent = words;
}

async function leave() {
  const meeting = page.meeting;
  $("leave").disabled = true;
  await meeting.leave();
  for (const t of page.stream.getTracks()) t.stop();
  page.screenTrack?.stop();
  showEnded("You left the meeting", "The room stays open for the others as long as someone is in it.", true);
}

function showEnded(title, text, canRejoin) {
  hide($("lobby"));
  hide($("meeting"));
  $("ended-title").textContent = title;
  $("ended-text").textContent = text;
  $("rejoin").hidden = !canRejoin;
  show($("ended"));
  $("ended-title").setAttribute("tabindex", "-1");
  $("ended-title").focus();
}

// MARK: chat

function chatOpen() {
  return !$("chat-panel").classList.contains("closed");
}

function isNarrow() {
  return window.matchMedia("(max-width: 760px)").matches;
}

function setChatOpen(open) {
  $("chat-panel").classList.toggle("closed", !open);
  $("toggle-chat").setAttribute("aria-pressed", String(open));
  $("toggle-chat").classList.toggle("active", open);
  if (open) {
    page.unread = 0;
    drawUnread();
    if (!isNarrow() || document.activeElement === $("toggle-chat")) $("chat-input").focus({ preventScroll: true });
  }
  requestAnimationFrame(() => layoutGrid());
}

function drawUnread() {
  const badge = $("chat-unread");
  badge.hidden = page.unread === 0;
  badge.textContent = String(page.unread);
  $("toggle-chat").setAttribute("aria-label", page.unread ? `Chat, ${page.unread} unread` : "Chat");
}

function drawChatRecipients() {
  const select = $("chat-to");
  const current = select.value;
  const toViewers = select.selectedOptions[0]?.dataset.target === "stream";
  const names = [...(page.meeting?.chatPeople || [])].sort((a, b) => a.localeCompare(b));
  const m = page.meeting;
  const canWriteToViewers = !!(m && !page.watching && m.streamId && m.streamChatSettings.write);
  select.replaceChildren(new Option(canWriteToViewers ? "To everyone in the room" : "To everyone", ""));
  let viewers = null;
  if (canWriteToViewers) {
    viewers = new Option("To the viewers (stream chat)", "");
    viewers.dataset.target = "stream";
    select.append(viewers);
  }
  for (const n of names) select.append(new Option(`To ${n} (private)`, n));
  if (toViewers && viewers) viewers.selected = true;
  else select.value = names.includes(current) ? current : "";
}

async function sendChat() {
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  const option = $("chat-to").selectedOptions[0];
  const toStream = option?.dataset.target === "stream";
  const to = toStream ? undefined : $("chat-to").value || undefined;
  input.value = "";
  try {
    await page.meeting.sendChat(text, to, { toStream });
  } catch (e) {
    input.value = text;
    addNotice(e.code === 425 ? "Slow down: too many messages at once." : `The message was not sent (${e.message}).`);
  }
}

function addMessage({ from, text, private: isPrivate, to, date, self, stream, fromRoom, roomChat, toStream }) {
  const li = document.createElement("li");
  const kinds = { mine: self, private: isPrivate, stream, "from-room": fromRoom, "room-chat": roomChat, "to-stream": toStream };
  li.className = ["chat-msg", ...Object.keys(kinds).filter((k) => kinds[k])].join(" ");
  const head = document.createElement("div");
  head.className = "message-head";
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = self ? (isPrivate ? `You → ${to}` : "You") : isPrivate ? `${from} → you` : from;
  const when = document.createElement("time");
  const d = date ? new Date(date) : new Date();
  when.dateTime = d.toISOString();
  when.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  head.append(who, when);
  // On the room page: "viewer" (the stream chat), "room" (another participant's message to the
  // viewers), "to viewers" (mine); on the watch page: "room" (the room wrote to us), "room chat"
  // (the room's own chat, read-only).
  const tagText = isPrivate ? "private" : toStream ? "to viewers" : fromRoom ? "room" : roomChat ? "room chat" : stream ? "viewer" : null;
  if (tagText) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = tagText;
    head.append(tag);
  }
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  li.append(head, body);
  appendToLog(li);
  if (!self && !chatOpen()) {
    page.unread++;
    drawUnread();
  }
}

function addNotice(text) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = text;
  appendToLog(li);
}

function appendToLog(li) {
  const log = $("chat-log");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// MARK: copy link

async function copyLink(button, link = roomLink()) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(link);
    ok = true;
  } catch {
    // No clipboard API (plain http): select the text so Ctrl+C works.
    const field = link === roomLink() ? $("invite-link") : $("stream-link");
    field.value = link;
    if (!$("meeting").hidden) {
      field.select();
      ok = document.execCommand?.("copy") ?? false;
    }
  }
  $("copy-status").textContent = ok ? "Link copied" : `Copy this link: ${link}`;
  const label = button.querySelector(".label") || button;
  const before = label.textContent;
  label.textContent = ok ? "Copied!" : "Copy failed";
  setTimeout(() => {
    label.textContent = before;
  }, 2000);
}

// MARK: helpers

function show(el) {
  el.hidden = false;
}

function hide(el) {
  el.hidden = true;
}

/** For tests and debugging from the console; the page never uses it. */
function debugHook(meeting) {
  const received = [];
  Session.tap = (msg) => received.push(msg);
  return {
    meeting,
    /** Every Janus message this page received. */
    received,
    stats: () => meeting.receivedStats(),
    dropConnection: () => meeting.simulateNetworkFailure(),
    iceServers: () => meeting.iceServers || [],
  };
}
