// Shared by the janus.js test pages (after janusjs-chat-capture.js and janus.js): the page state
// and failures in window.results, window.finish() (destroys the session), and startJanus, which
// runs janus.js's Janus.init → new Janus → attach and records the session and handle.
(function () {
  "use strict";
  var R = window.results;
  var janus = null;

  window.pageStatus = function (s) {
    R.state = s;
    var el = document.getElementById("status");
    if (el) el.textContent = s;
  };

  window.pageFail = function (where, err) {
    R.errors.push(where + ": " + (typeof err === "string" ? err : JSON.stringify(err)));
    window.pageStatus("failed");
  };

  window.finish = function () {
    if (!janus) { R.destroyed = "no session"; return; }
    janus.destroy({
      success: function () { R.destroyed = "ok"; },
      error: function (err) { R.destroyed = "error: " + err; window.pageFail("destroy", err); },
    });
  };

  // `attach` holds janus.attach's options; its success(handle) runs after the handle is recorded.
  // Missing error/ondetached callbacks get the usual recording ones. `options` may set
  // iceServers and iceTransportPolicy for new Janus().
  window.startJanus = function (server, debug, attach, options) {
    options = options || {};
    function start() {
      if (!server) { window.pageFail("params", "missing ?server="); return; }
      Janus.init({
        debug: debug === "none" ? false : (debug === "all" ? "all" : debug.split(",")),
        callback: function () {
          window.pageStatus("initialized");
          if (!Janus.isWebrtcSupported()) { window.pageFail("init", "WebRTC not supported"); return; }
          janus = new Janus({
            server: server,
            iceServers: options.iceServers || [],
            iceTransportPolicy: options.iceTransportPolicy,
            destroyOnUnload: true,
            success: function () {
              R.sessionId = janus.getSessionId();
              window.pageStatus("connected");
              var attached = attach.success;
              attach.success = function (h) {
                R.handleId = h.getId();
                R.plugin = h.getPlugin();
                window.pageStatus("attached");
                attached(h);
              };
              attach.error = attach.error || function (err) { window.pageFail("attach", err); };
              attach.ondetached = attach.ondetached || function () { R.detached = true; };
              janus.attach(attach);
            },
            error: function (err) { window.pageFail("session", err); },
            destroyed: function () { window.pageStatus("destroyed"); },
          });
        },
      });
    }
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  };
})();

// The candidate pair ICE selected on `pc`, from getStats: {state, local, remote}, each side's
// address, port, protocol and candidate type (and tcpType locally); null before there is one.
function selectedPairOf(pc) {
  if (!pc) return Promise.resolve(null);
  return pc.getStats().then(function (report) {
    var byId = {};
    var pairId = null;
    report.forEach(function (s) {
      byId[s.id] = s;
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    var pair = pairId && byId[pairId];
    if (!pair) return null;
    var local = byId[pair.localCandidateId] || {};
    var remote = byId[pair.remoteCandidateId] || {};
    return { state: pair.state, roundTripTime: pair.currentRoundTripTime === undefined ? null : pair.currentRoundTripTime,
             local: { address: local.address, port: local.port, protocol: local.protocol, type: local.candidateType,
                      tcpType: local.tcpType || null },
             remote: { address: remote.address, port: remote.port, protocol: remote.protocol, type: remote.candidateType } };
  });
}
