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
  var handle = null;

  var status = window.pageStatus;
  var fail = window.pageFail;

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

  window.startJanus(server, debug, {
    plugin: "atrium.plugin.chat",
    opaqueId: "janusjs-e2e-" + Janus.randomString(8),
    success: function (h) {
      handle = h;
      send({ request: "join", room: room, display: display }, function (data) {
        R.joinReply = data === undefined ? null : data;
        if (data && data.chat === "joined") status("joined");
      });
    },
    onmessage: function (msg, jsep) {
      R.events.push({ data: msg, jsep: jsep || null });
    },
  });
})();
