// Drives janus.js through the EchoTest the way the Janus echotest demo does: fake camera and
// microphone (Chromium's --use-fake-device-for-media-stream), offer, {"audio":true,"video":true},
// answer, remote video into <video id="remote">. Query string: server (http(s)://…/janus or
// ws(s)://…), plugin (default janus.plugin.echotest), data ("1": offer a data channel too),
// debug (janus.js levels, default "all"), candidates ("tcp": drop the answer's UDP candidates
// before janus.js applies it, so media can only flow over ICE-TCP), turn (an http(s)://…/janus URL:
// first ask the TURN plugin there for credentials, then use only relay candidates through it).
// Everything is recorded in window.results; window.videoStats() resolves to the remote video's
// inbound-rtp numbers from the handle's RTCPeerConnection.
(function () {
  "use strict";
  var R = window.results;
  var q = new URLSearchParams(window.location.search);
  var server = q.get("server");
  var plugin = q.get("plugin") || "janus.plugin.echotest";
  var debug = q.get("debug") || "all";
  var data = q.get("data") === "1";
  var tcpOnly = q.get("candidates") === "tcp";
  R.params = { server: server, plugin: plugin, data: data, debug: debug, candidates: tcpOnly ? "tcp" : "all" };
  R.webrtc = [];          // webrtcState callbacks: {on, reason}
  R.webrtcup = false;
  R.media = [];           // mediaState callbacks: {type, on, mid}
  R.ice = [];             // iceState callbacks
  R.localTracks = [];     // onlocaltrack: {kind, mid, on}
  R.remoteTracks = [];    // onremotetrack: {kind, mid, on}
  R.offerSent = false;
  R.offerReply = null;    // what handle.send's success got (undefined for an ack)
  R.answer = null;        // the jsep the plugin answered with
  R.cleanup = 0;
  R.dataOpen = [];        // ondataopen labels
  R.dataReceived = [];    // ondata payloads
  R.dataErrors = [];      // errors janus.js reports for handle.data()
  var handle = null;

  var status = window.pageStatus;
  var fail = window.pageFail;

  window.videoStats = function () {
    var pc = handle && handle.webrtcStuff && handle.webrtcStuff.pc;
    if (!pc) return Promise.resolve(null);
    return pc.getStats().then(function (report) {
      var out = null;
      report.forEach(function (s) {
        if (s.type === "inbound-rtp" && (s.kind === "video" || s.mediaType === "video")) {
          out = { framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0,
                  bytesReceived: s.bytesReceived || 0, frameWidth: s.frameWidth || 0,
                  frameHeight: s.frameHeight || 0 };
        }
      });
      return out;
    });
  };

  // The candidate pair ICE selected: {local, remote} protocol and type, from getStats.
  window.selectedPair = function () {
    return selectedPairOf(handle && handle.webrtcStuff && handle.webrtcStuff.pc);
  };

  window.videoElement = function () {
    var v = document.getElementById("remote");
    return { videoWidth: v.videoWidth, videoHeight: v.videoHeight, paused: v.paused,
             readyState: v.readyState, currentTime: v.currentTime, hasStream: !!v.srcObject };
  };

  window.sendData = function (text) {
    handle.data({ text: text, error: function (err) { R.dataErrors.push(String(err)); } });
  };

  function offer() {
    var tracks = [
      { type: "audio", capture: true, recv: true },
      { type: "video", capture: true, recv: true },
    ];
    if (data) tracks.push({ type: "data" });
    handle.createOffer({
      tracks: tracks,
      success: function (jsep) {
        status("offering");
        handle.send({
          message: { audio: true, video: true },
          jsep: jsep,
          success: function (data) { R.offerSent = true; R.offerReply = data === undefined ? null : data; },
          error: function (err) { fail("send offer", err); },
        });
      },
      error: function (err) { fail("createOffer", err); },
    });
  }

  // Credentials from the TURN plugin over the plain Janus HTTP API: create, attach, message.
  function turnCredentials(base) {
    function post(path, body) {
      return fetch(base + path, { method: "POST", body: JSON.stringify(Object.assign({ transaction: Janus.randomString(12) }, body)) })
        .then(function (r) { return r.json(); });
    }
    return post("", { janus: "create" }).then(function (s) {
      var session = "/" + s.data.id;
      return post(session, { janus: "attach", plugin: "atrium.plugin.turn" }).then(function (h) {
        return post(session + "/" + h.data.id, { janus: "message", body: { request: "credentials" } });
      }).then(function (reply) {
        post(session, { janus: "destroy" });
        return reply.plugindata.data;
      });
    });
  }

  var turnServer = q.get("turn");
  var started = turnServer
    ? turnCredentials(turnServer).then(function (c) {
        R.turnCredentials = c;
        return { iceServers: c.iceServers, iceTransportPolicy: "relay" };
      })
    : Promise.resolve({});
  started.then(function (options) { window.startJanus(server, debug, {
    plugin: plugin,
    opaqueId: "janusjs-echotest-" + Janus.randomString(8),
    success: function (h) {
      handle = h;
      offer();
    },
    iceState: function (state) { R.ice.push(state); },
    mediaState: function (type, on, mid) { R.media.push({ type: type, on: on, mid: mid }); },
    webrtcState: function (on, reason) {
      R.webrtc.push({ on: on, reason: reason || null });
      if (on) { R.webrtcup = true; status("webrtcup"); }
    },
    onmessage: function (msg, jsep) {
      R.events.push({ data: msg, jsep: jsep ? { type: jsep.type } : null });
      if (msg && msg.error) fail("plugin error", msg);
      if (jsep) {
        R.answer = { type: jsep.type, sdp: jsep.sdp };
        if (tcpOnly) {
          jsep = { type: jsep.type, sdp: jsep.sdp.split("\r\n").filter(function (line) {
            return !/^a=candidate:\S+ \d+ udp /i.test(line);
          }).join("\r\n") };
        }
        handle.handleRemoteJsep({ jsep: jsep, error: function (err) { fail("handleRemoteJsep", err); } });
      }
    },
    onlocaltrack: function (track, on) {
      R.localTracks.push({ kind: track ? track.kind : null, on: on });
    },
    onremotetrack: function (track, mid, on) {
      R.remoteTracks.push({ kind: track.kind, mid: mid, on: on });
      var v = document.getElementById("remote");
      // janus.js calls this again when a track is unmuted: attach each track once only.
      if (track.kind === "video" && on && v.dataset.track !== track.id) {
        v.dataset.track = track.id;
        v.srcObject = new MediaStream([track]);
        var played = v.play();
        if (played && played.catch) played.catch(function (e) { fail("video.play", String(e)); });
      }
    },
    ondataopen: function (label) { R.dataOpen.push(label); },
    ondata: function (payload) { R.dataReceived.push(payload); },
    oncleanup: function () { R.cleanup += 1; },
  }, options); }, function (err) { fail("turn credentials", String(err)); });
})();
