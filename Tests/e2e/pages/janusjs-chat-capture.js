// Loaded first: sets up window.results and mirrors the console into it, so the test can read every
// log line and error even where the WebDriver log API is unavailable.
(function () {
  "use strict";
  window.results = {
    state: "loading",      // loading → initialized → connected → attached → joined | failed | destroyed
    params: {},
    sessionId: null,
    handleId: null,
    joinReply: null,       // synchronous reply (plugindata.data) of the join request
    replies: [],           // every synchronous reply: {request, data}
    events: [],            // every plugin event delivered to onmessage: {data, jsep}
    errors: [],            // janus.js error callbacks, window errors, unhandled rejections
    janusErrors: [],       // lines janus.js logged through Janus.error (console.error)
    console: [],           // everything written to the console: {level, text, t}
    destroyed: null,       // result of janus.destroy(): "ok" or an error string
  };
  function text(args) {
    return Array.prototype.map.call(args, function (a) {
      if (typeof a === "string") return a;
      if (a instanceof Error) return a.name + ": " + a.message;
      try { return JSON.stringify(a); } catch (e) { return String(a); }
    }).join(" ");
  }
  ["log", "info", "warn", "error", "debug", "trace"].forEach(function (level) {
    var original = console[level] ? console[level].bind(console) : function () {};
    console[level] = function () {
      var line = text(arguments);
      window.results.console.push({ level: level, text: line, t: Date.now() });
      if (level === "error") window.results.janusErrors.push(line);
      original.apply(null, arguments);
    };
  });
  window.addEventListener("error", function (e) {
    window.results.errors.push("window.onerror: " + e.message + " at " + e.filename + ":" + e.lineno);
  });
  window.addEventListener("unhandledrejection", function (e) {
    window.results.errors.push("unhandledrejection: " + text([e.reason]));
  });
})();
