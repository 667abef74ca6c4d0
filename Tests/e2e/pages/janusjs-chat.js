// Drives janus.js against Atrium's chat plugin and records everything in window.results.
// Query string: server (http(s)://…/janus or ws(s)://…), room, display, debug (janus.js levels,
// default "all"). Selenium calls window.sendChat(text) and window.finish() and reads window.results.
(function () {
  "use strict";
  var R = window.results;
  var q = new URLSearchParams(window.location.search);
  var server = q.get("server");
  var room = q.get("room") || "lobby";
  var display = q.get("display") || "janusjs";
  var debug = q.get("debug") || "all";
  R.params = { server: server, room: room, display: display, debug: debug };
  var janus = null;
  var handle = null;

  function status(s) {
    R.state = s;
    var el = document.getElementById("status");
    if (el) el.textContent = s;
  }
  function fail(where, err) {
    R.errors.push(where + ": " + (typeof err === "string" ? err : JSON.stringify(err)));
    status("failed");
  }

  function send(body, done) {
    handle.send({
      message: body,
      success: function (data) {
        R.replies.push({ request: body.request, data: data === undefined ? null : data });
        if (data && data.chat === "error") fail("reply to " + body.request, data);
        if (done) done(data);
      },
      error: function (err) { fail("send " + body.request, err); },
    });
  }

  window.sendChat = function (text, to) {
    if (!handle) { fail("sendChat", "no handle"); return; }
    var body = { request: "message", text: text };
    if (to) body.to = to;
    send(body);
  };

  window.finish = function () {
    if (!janus) { R.destroyed = "no session"; return; }
    janus.destroy({
      success: function () { R.destroyed = "ok"; },
      error: function (err) { R.destroyed = "error: " + err; fail("destroy", err); },
    });
  };

  function start() {
    if (!server) { fail("params", "missing ?server="); return; }
    Janus.init({
      debug: debug === "none" ? false : (debug === "all" ? "all" : debug.split(",")),
      callback: function () {
        status("initialized");
        if (!Janus.isWebrtcSupported()) { fail("init", "WebRTC not supported"); return; }
        janus = new Janus({
          server: server,
          iceServers: [],
          destroyOnUnload: true,
          success: function () {
            R.sessionId = janus.getSessionId();
            status("connected");
            janus.attach({
              plugin: "atrium.plugin.chat",
              opaqueId: "janusjs-e2e-" + Janus.randomString(8),
              success: function (h) {
                handle = h;
                R.handleId = h.getId();
                R.plugin = h.getPlugin();
                status("attached");
                send({ request: "join", room: room, display: display }, function (data) {
                  R.joinReply = data === undefined ? null : data;
                  if (data && data.chat === "joined") status("joined");
                });
              },
              error: function (err) { fail("attach", err); },
              onmessage: function (msg, jsep) {
                R.events.push({ data: msg, jsep: jsep || null });
              },
              ondetached: function () { R.detached = true; },
            });
          },
          error: function (err) { fail("session", err); },
          destroyed: function () { status("destroyed"); },
        });
      },
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
