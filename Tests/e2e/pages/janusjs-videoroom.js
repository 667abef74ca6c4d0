// A VideoRoom participant the way Janus's multistream demo (mvideoroomtest.js) is one: a publisher
// handle joins the room and publishes the fake camera and microphone (Chromium's
// --use-fake-device-for-media-stream) with {"request":"configure","audio":true,"video":true} and a
// JSEP offer; ONE subscriber handle subscribes to every other publisher's streams ("join" with
// streams on the first feed, "update" with subscribe:[...] for later ones), answers every offer of
// the plugin with {"request":"start","room":N} and plays each remote track in its own element.
//
// Query string: server (http(s)://…/janus or ws(s)://…), room (default 1234), display, pin,
// publish ("0": join as a publisher but never publish), simulcast ("1": three rid encodings h/m/l
// from a 1280x720 capture, as janus.js does for simulcast: true), width/height (capture size),
// substream (the substream asked for in every subscription), debug (janus.js levels, default
// "all").
//
// Everything is recorded in window.results (R): R.joined (the publisher's "joined" data),
// R.pubEvents / R.subEvents ({data, jsep: {type}|null} of every plugin event), R.feeds
// ({id: {display, streams}} from joined/publishers), R.subStreams ({mid: stream descriptor} from
// attached/updated), R.remoteTracks ([{mid, kind, on}]), R.published (our "configured" event came
// with an answer), R.subscriberUp (the subscriber's webrtcState(true)).
// Helpers for the test: window.feedStats() → Promise of {feedId: {display, video: {mid,
// framesDecoded, frameWidth, frameHeight, packetsReceived, packetsLost, nackCount}, audio: {mid,
// totalSamplesReceived, packetsReceived}}} from the subscriber PC's inbound-rtp stats (mapped to
// feeds through the mid → feed_id of attached/updated); window.publisherStats() → the publisher
// PC's outbound-rtp video encodings ({rid, frameWidth, framesEncoded, keyFramesEncoded, pliCount, ...}); window.
// subscriberPair() → the subscriber PC's selected candidate pair; window.configureSubscription(
// feedId, body) sends {"request":"configure", ...body, mid: <the feed's video mid>} on the
// subscriber handle; window.leave() sends {"request":"leave"} (R.publisherUpAt and R.leftAt are the
// page's Date.now() when its publisher PeerConnection came up and when it left).
(function () {
  "use strict";
  var R = window.results;
  var q = new URLSearchParams(window.location.search);
  var server = q.get("server");
  var room = parseInt(q.get("room") || "1234", 10);
  var display = q.get("display") || ("user-" + Janus.randomString(4));
  var pin = q.get("pin");
  var doPublish = q.get("publish") !== "0";
  var simulcast = q.get("simulcast") === "1";
  var width = parseInt(q.get("width") || "0", 10);
  var height = parseInt(q.get("height") || "0", 10);
  var substream = q.get("substream");
  var debug = q.get("debug") || "all";
  R.params = { server: server, room: room, display: display, publish: doPublish, simulcast: simulcast,
               width: width, height: height, substream: substream };
  R.joined = null;
  R.myId = null;
  R.privateId = null;
  R.pubEvents = [];
  R.subEvents = [];
  R.feeds = {};
  R.subStreams = {};
  R.remoteTracks = [];
  R.localTracks = [];
  R.published = false;
  R.publisherUp = false;
  R.subscriberUp = false;
  R.subscriberHandleId = null;
  R.subscribed = {};   // feedId → true once asked for

  var status = window.pageStatus;
  var fail = window.pageFail;
  var publisher = null;
  var subscriber = null;
  var creatingSubscriber = false;
  var pending = [];    // feeds waiting for the subscriber handle

  function pcOf(handle) {
    return handle && handle.webrtcStuff && handle.webrtcStuff.pc;
  }

  function rememberPublishers(list) {
    var fresh = [];
    (list || []).forEach(function (p) {
      if (p.dummy) return;
      R.feeds[p.id] = { display: p.display || null, streams: p.streams || [] };
      if (!R.subscribed[p.id]) fresh.push(p.id);
    });
    if (fresh.length) subscribeTo(fresh);
  }

  function streamsFor(feeds) {
    var out = [];
    feeds.forEach(function (id) {
      R.subscribed[id] = true;
      var s = { feed: id };
      if (substream !== null) s.substream = parseInt(substream, 10);
      out.push(s);
    });
    return out;
  }

  function subscribeTo(feeds) {
    if (creatingSubscriber) { pending = pending.concat(feeds); return; }
    if (subscriber) {
      subscriber.send({ message: { request: "update", subscribe: streamsFor(feeds) },
                        error: function (err) { fail("update", err); } });
      return;
    }
    creatingSubscriber = true;
    // janus.js handles do not point at their session; Janus.sessions maps session ids to them.
    var janus = Janus.sessions[R.sessionId];
    janus.attach({
      plugin: "janus.plugin.videoroom",
      opaqueId: "janusjs-videoroom-sub-" + Janus.randomString(8),
      success: function (h) {
        subscriber = h;
        R.subscriberHandleId = h.getId();
        var join = { request: "join", room: room, ptype: "subscriber", streams: streamsFor(feeds),
                     private_id: R.privateId };
        h.send({ message: join, error: function (err) { fail("subscribe", err); } });
      },
      error: function (err) { fail("attach subscriber", err); },
      webrtcState: function (on) { if (on) R.subscriberUp = true; },
      onmessage: function (msg, jsep) {
        R.subEvents.push({ data: msg, jsep: jsep ? { type: jsep.type } : null });
        if (msg.error) { fail("subscriber error", msg); return; }
        if (msg.videoroom === "attached") {
          creatingSubscriber = false;
          if (pending.length) { var later = pending; pending = []; subscribeTo(later); }
        }
        (msg.streams || []).forEach(function (s) { R.subStreams[s.mid] = s; });
        if (jsep) {
          subscriber.createAnswer({
            jsep: jsep,
            tracks: [{ type: "data" }],   // as the demo: audio/video are accepted recvonly
            success: function (answer) {
              subscriber.send({ message: { request: "start", room: room }, jsep: answer,
                                error: function (err) { fail("start", err); } });
            },
            error: function (err) { fail("createAnswer", err); },
          });
        }
      },
      onremotetrack: function (track, mid, on) {
        R.remoteTracks.push({ mid: mid, kind: track.kind, on: on });
        var id = "remote-" + mid;
        var el = document.getElementById(id);
        if (!on) { if (el) el.remove(); return; }
        if (el) return;   // janus.js calls this again when a track is unmuted
        el = document.createElement(track.kind === "video" ? "video" : "audio");
        el.id = id;
        el.autoplay = true;
        el.playsInline = true;
        if (track.kind === "video") { el.muted = true; el.width = 160; el.height = 120; }
        document.getElementById("remotes").appendChild(el);
        el.srcObject = new MediaStream([track]);
        var played = el.play();
        if (played && played.catch) played.catch(function (e) { R.playErrors = (R.playErrors || []).concat(String(e)); });
      },
      oncleanup: function () { R.subscriberCleanup = (R.subscriberCleanup || 0) + 1; },
    });
  }

  function publish() {
    var video = { type: "video", capture: true, recv: false, simulcast: simulcast };
    if (width && height) video.capture = { width: { ideal: width }, height: { ideal: height } };
    publisher.createOffer({
      tracks: [{ type: "audio", capture: true, recv: false }, video],
      success: function (jsep) {
        status("publishing");
        publisher.send({ message: { request: "configure", audio: true, video: true }, jsep: jsep,
                         error: function (err) { fail("publish", err); } });
      },
      error: function (err) { fail("createOffer", err); },
    });
  }

  window.startJanus(server, debug, {
    plugin: "janus.plugin.videoroom",
    opaqueId: "janusjs-videoroom-" + Janus.randomString(8),
    success: function (h) {
      publisher = h;
      var join = { request: "join", room: room, ptype: "publisher", display: display };
      if (pin) join.pin = pin;
      h.send({ message: join, error: function (err) { fail("join", err); } });
    },
    webrtcState: function (on) {
      if (on) {
        R.publisherUp = true;
        R.publisherUpAt = Date.now();
      }
    },
    onmessage: function (msg, jsep) {
      R.pubEvents.push({ data: msg, jsep: jsep ? { type: jsep.type } : null });
      if (msg.error) { fail("publisher error", msg); return; }
      if (msg.videoroom === "joined") {
        R.joined = msg;
        R.myId = msg.id;
        R.privateId = msg.private_id;
        status("joined");
        if (doPublish) publish();
        rememberPublishers(msg.publishers);
      } else if (msg.videoroom === "event" && msg.publishers) {
        rememberPublishers(msg.publishers);
      }
      if (jsep) {
        publisher.handleRemoteJsep({ jsep: jsep, error: function (err) { fail("handleRemoteJsep", err); } });
        R.published = msg.configured === "ok";
      }
    },
    onlocaltrack: function (track, on) {
      R.localTracks.push({ kind: track ? track.kind : null, on: on });
      if (track && track.kind === "video" && on) {
        var v = document.getElementById("local");
        v.srcObject = new MediaStream([track]);
      }
    },
  });

  // Leaves the room (the publisher's PeerConnection goes with it); R.leftAt is when it was asked.
  window.leave = function () {
    R.leftAt = Date.now();
    publisher.send({ message: { request: "leave" }, error: function (err) { fail("leave", err); } });
    if (subscriber) subscriber.detach();
  };

  window.feedStats = function () {
    var pc = pcOf(subscriber);
    if (!pc) return Promise.resolve({});
    return pc.getStats().then(function (report) {
      var out = {};
      report.forEach(function (s) {
        if (s.type !== "inbound-rtp" || s.mid === undefined) return;
        var sub = R.subStreams[s.mid];
        if (!sub || sub.feed_id === undefined) return;
        var feed = out[sub.feed_id] = out[sub.feed_id] || { display: sub.feed_display || null };
        if (s.kind === "video") {
          feed.video = { mid: s.mid, framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0,
                         frameHeight: s.frameHeight || 0, packetsReceived: s.packetsReceived || 0,
                         packetsLost: s.packetsLost || 0, nackCount: s.nackCount || 0,
                         keyFramesDecoded: s.keyFramesDecoded || 0,
                         codec: (report.get(s.codecId) || {}).mimeType || null };
        } else if (s.kind === "audio") {
          feed.audio = { mid: s.mid, totalSamplesReceived: s.totalSamplesReceived || 0,
                         packetsReceived: s.packetsReceived || 0, concealedSamples: s.concealedSamples || 0 };
        }
      });
      return out;
    });
  };

  window.publisherStats = function () {
    var pc = pcOf(publisher);
    if (!pc) return Promise.resolve([]);
    return pc.getStats().then(function (report) {
      var out = [];
      report.forEach(function (s) {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          out.push({ rid: s.rid || null, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
                     framesEncoded: s.framesEncoded || 0, keyFramesEncoded: s.keyFramesEncoded || 0,
                     pliCount: s.pliCount || 0, firCount: s.firCount || 0, nackCount: s.nackCount || 0,
                     bytesSent: s.bytesSent || 0, active: s.active,
                     qualityLimitationReason: s.qualityLimitationReason || null });
        }
      });
      return out;
    });
  };

  // A time series of what the subscriber PC receives, for network tests (network.py): every
  // `everyMs`, per feed, the video's decoded frames, size, freezes (Chromium's count and duration)
  // and repairs, the audio's samples and concealed samples. At most `limit` samples are kept.
  var samples = [];
  var sampling = null;
  window.startSampling = function (everyMs, limit) {
    if (sampling) clearInterval(sampling);
    samples = [];
    var busy = false;
    sampling = setInterval(function () {
      var pc = pcOf(subscriber);
      if (!pc || busy) return;
      busy = true;
      pc.getStats().then(function (report) {
        var sample = { t: performance.now(), feeds: {}, transport: null };
        report.forEach(function (s) {
          if (s.type === "transport") sample.transport = { bytesReceived: s.bytesReceived || 0 };
          if (s.type !== "inbound-rtp" || s.mid === undefined) return;
          var sub = R.subStreams[s.mid];
          if (!sub || sub.feed_id === undefined) return;
          var feed = sample.feeds[sub.feed_id] = sample.feeds[sub.feed_id] || {};
          if (s.kind === "video") {
            feed.frames = s.framesDecoded || 0;
            feed.framesReceived = s.framesReceived || 0;
            feed.framesDropped = s.framesDropped || 0;
            feed.width = s.frameWidth || 0;
            feed.height = s.frameHeight || 0;
            feed.freezes = s.freezeCount || 0;
            feed.freezeSeconds = s.totalFreezesDuration || 0;
            feed.bytes = s.bytesReceived || 0;
            feed.repaired = s.retransmittedPacketsReceived || 0;
            feed.rtxSsrc = s.rtxSsrc || null;
            feed.nacks = s.nackCount || 0;
            feed.lost = s.packetsLost || 0;
          } else if (s.kind === "audio") {
            feed.samples = s.totalSamplesReceived || 0;
            feed.concealed = s.concealedSamples || 0;
          }
        });
        samples.push(sample);
        if (samples.length > (limit || 6000)) samples.shift();
      }).finally(function () { busy = false; });
    }, everyMs || 100);
  };
  window.takeSamples = function () {
    var out = samples;
    samples = [];
    return out;
  };

  // What the publisher PC's outbound video does, per rid: frames encoded and size, for the frame
  // rate a subscriber is measured against.
  window.publisherSample = function () {
    return window.publisherStats().then(function (encodings) {
      return { t: performance.now(), encodings: encodings };
    });
  };

  window.subscriberPair = function () {
    return selectedPairOf(pcOf(subscriber));
  };

  window.configureSubscription = function (feedId, body) {
    var mid = null;
    Object.keys(R.subStreams).forEach(function (m) {
      var s = R.subStreams[m];
      if (s.feed_id === feedId && s.type === "video" && s.active !== false) mid = m;
    });
    if (mid === null) return "no video mid for feed " + feedId;
    var message = Object.assign({ request: "configure", mid: mid }, body);
    subscriber.send({ message: message, error: function (err) { fail("configure", err); } });
    return mid;
  };
})();
