// A small client for the Janus API as Atrium serves it (docs/api/janus.md): a session over
// WebSocket (subprotocol janus-protocol) or HTTP long poll, keepalives, plugin handles, requests
// that resolve with the plugin's answer (synchronous `success` or the event that follows an
// `ack`), and events dispatched per handle. It knows nothing of WebRTC or of any plugin.

const KEEPALIVE_MS = 25000;

/** An error answered by the server: a Janus error (`janus: "error"`) or a plugin's error payload. */
export class JanusError extends Error {
  constructor(code, reason, data) {
    super(reason || `error ${code}`);
    this.name = "JanusError";
    this.code = code;
    this.data = data;
  }
}

/** The connection to the server failed or was lost. */
export class TransportError extends Error {
  constructor(message) {
    super(message);
    this.name = "TransportError";
  }
}

function transactionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One WebSocket carrying JSON messages; replies are matched by transaction. */
class WebSocketTransport {
  constructor(url, timeoutMs) {
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.onmessage = null;
    this.onclose = null;
  }

  open() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.url, "janus-protocol");
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.close();
        reject(new TransportError(`no answer from ${this.url}`));
      }, this.timeoutMs);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.ws = ws;
        resolve();
      };
      ws.onerror = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new TransportError(`cannot connect to ${this.url}`));
      };
      ws.onmessage = (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          return;
        }
        if (this.onmessage) this.onmessage(msg);
      };
      ws.onclose = () => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new TransportError(`cannot connect to ${this.url}`));
          return;
        }
        if (this.onclose) this.onclose();
      };
    });
  }

  // Replies come back through onmessage; the session matches them by transaction.
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new TransportError("not connected");
    this.ws.send(JSON.stringify(msg));
  }

  close() {
    if (!this.ws) return;
    this.ws.onclose = null;
    this.ws.close();
  }
}

/** HTTP: POSTs to the API path, and a long poll (GET base/<session>?maxev=10) for events. */
class LongPollTransport {
  constructor(base, timeoutMs) {
    this.base = base;
    this.timeoutMs = timeoutMs;
    this.onmessage = null;
    this.onclose = null;
    this.sessionId = null;
    this.closed = false;
    this.aborter = new AbortController();
  }

  async open() {
    // A ping proves the server answers before a session is made.
    const reply = await this.post(this.base, { janus: "ping", transaction: transactionId() });
    if (reply.janus !== "pong") throw new TransportError(`unexpected answer from ${this.base}`);
  }

  async post(url, msg) {
    let response;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    try {
      response = await fetch(url, {
        method: "POST",
        body: JSON.stringify(msg),
        headers: { "Content-Type": "application/json" },
        signal: AbortSignal.any ? AbortSignal.any([timeout, this.aborter.signal]) : timeout,
      });
    } catch {
      throw new TransportError(`cannot reach ${url}`);
    }
    if (!response.ok) throw new TransportError(`${url} answered HTTP ${response.status}`);
    return response.json();
  }

  send(msg) {
    let url = this.base;
    if (msg.session_id) url += `/${msg.session_id}`;
    if (msg.handle_id) url += `/${msg.handle_id}`;
    this.post(url, msg).then(
      (reply) => {
        if (msg.janus === "create" && reply.janus === "success") this.startPolling(reply.data.id);
        if (this.onmessage) this.onmessage(reply);
      },
      () => this.lost(),
    );
  }

  async startPolling(sessionId) {
    this.sessionId = sessionId;
    let failures = 0;
    while (!this.closed) {
      try {
        const response = await fetch(`${this.base}/${sessionId}?maxev=10&rid=${Date.now()}`, { signal: this.aborter.signal });
        if (!response.ok) throw new TransportError(`long poll answered ${response.status}`);
        const events = await response.json();
        failures = 0;
        for (const e of Array.isArray(events) ? events : [events]) {
          if (this.onmessage) this.onmessage(e);
        }
      } catch {
        if (this.closed) return;
        if (++failures >= 3) {
          this.lost();
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  lost() {
    if (this.closed) return;
    this.close();
    if (this.onclose) this.onclose();
  }

  close() {
    this.closed = true;
    this.aborter.abort();
  }
}

/**
 * A Janus session. `Session.connect` tries the WebSocket first and falls back to HTTP long poll.
 * Events: "closed" (the connection or the session is gone; detail {reason}).
 */
export class Session extends EventTarget {
  constructor(transport, kind) {
    super();
    this.transport = kind;
    this._t = transport;
    this._pending = new Map(); // transaction → {resolve, reject, expectsEvent}
    this._handles = new Map();
    this.id = null;
    this.closed = false;
    transport.onmessage = (msg) => {
      Session.tap?.(msg);
      this._receive(msg);
    };
    transport.onclose = () => this._lost("connection lost");
  }

  /**
   * Connects and creates a session. `options`: {websocketUrl?, httpUrl?, timeoutMs?}; at least one
   * URL. Throws TransportError when neither answers.
   */
  /** Debugging: when set, called with every message received on any session (tests read it). */
  static tap = null;

  static async connect({ websocketUrl, httpUrl, timeoutMs = 6000 }) {
    const attempts = [];
    if (websocketUrl) attempts.push(["websocket", () => new WebSocketTransport(websocketUrl, timeoutMs)]);
    if (httpUrl) attempts.push(["http", () => new LongPollTransport(httpUrl, timeoutMs)]);
    let lastError = new TransportError("no server address");
    for (const [kind, make] of attempts) {
      const transport = make();
      try {
        await transport.open();
      } catch (e) {
        lastError = e;
        continue;
      }
      const session = new Session(transport, kind);
      try {
        const reply = await session._request({ janus: "create" });
        session.id = reply.data.id;
      } catch (e) {
        transport.close();
        throw e;
      }
      session._keepalive = setInterval(() => {
        session._request({ janus: "keepalive", session_id: session.id }).catch(() => {});
      }, KEEPALIVE_MS);
      return session;
    }
    throw lastError;
  }

  /** `info`: the server's name, version and plugins (by id and alias). */
  info() {
    return this._request({ janus: "info" });
  }

  /** Attaches a handle to a plugin (id or alias). */
  async attach(plugin) {
    const reply = await this._request({ janus: "attach", session_id: this.id, plugin });
    const handle = new Handle(this, reply.data.id, plugin);
    this._handles.set(handle.id, handle);
    return handle;
  }

  /** Destroys the session and closes the connection. */
  async destroy() {
    if (this.closed) return;
    try {
      await Promise.race([
        this._request({ janus: "destroy", session_id: this.id }),
        new Promise((r) => setTimeout(r, 1500)),
      ]);
    } catch {
      // Gone already: nothing to destroy.
    }
    this._finish("destroyed");
  }

  /** Closes the connection without a word to the server, as a network failure would. */
  drop() {
    this._t.close();
    this._lost("connection dropped");
  }

  // Resolves with the answer to `msg`. A `message` (expectsEvent) is answered by `success` (a
  // synchronous plugin answer) or by `ack` and then an event with the same transaction.
  _request(msg, expectsEvent = false) {
    if (this.closed) return Promise.reject(new TransportError("session closed"));
    const transaction = transactionId();
    return new Promise((resolve, reject) => {
      this._pending.set(transaction, { resolve, reject, expectsEvent });
      try {
        this._t.send({ ...msg, transaction });
      } catch (e) {
        this._pending.delete(transaction);
        reject(e);
      }
    });
  }

  _receive(msg) {
    const pending = msg.transaction ? this._pending.get(msg.transaction) : undefined;
    switch (msg.janus) {
      case "ack":
        // An ack for a message means an event with this transaction follows; for anything else
        // (keepalive, trickle) it is the whole answer.
        if (pending && !pending.expectsEvent) {
          this._pending.delete(msg.transaction);
          pending.resolve(msg);
        }
        return;
      case "success":
      case "server_info":
      case "pong":
        if (pending) {
          this._pending.delete(msg.transaction);
          pending.resolve(msg);
        }
        return;
      case "error":
        if (pending) {
          this._pending.delete(msg.transaction);
          pending.reject(new JanusError(msg.error?.code, msg.error?.reason));
        }
        if (msg.error?.code === 458) this._lost("session gone");
        return;
      case "timeout":
        this._lost("session timed out");
        return;
      default:
        break;
    }
    const handle = this._handles.get(msg.sender);
    if (msg.janus === "event" && pending && pending.expectsEvent) {
      this._pending.delete(msg.transaction);
      pending.resolve(msg);
    }
    if (handle) handle._event(msg);
  }

  _lost(reason) {
    if (this.closed) return;
    this._finish(reason);
  }

  _finish(reason) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this._keepalive);
    this._t.close();
    for (const p of this._pending.values()) p.reject(new TransportError(reason));
    this._pending.clear();
    for (const h of this._handles.values()) h.detached = true;
    this.dispatchEvent(new CustomEvent("closed", { detail: { reason } }));
  }
}

/**
 * One plugin handle. Events (CustomEvent, detail = the Janus message):
 * "message" (a plugin event: detail.plugindata.data, detail.jsep), "webrtcup", "media",
 * "slowlink", "hangup", "detached".
 */
export class Handle extends EventTarget {
  constructor(session, id, plugin) {
    super();
    this.session = session;
    this.id = id;
    this.plugin = plugin;
    this.detached = false;
  }

  /**
   * Sends a `message` and resolves with {data, jsep}: the plugin's synchronous answer or the
   * event that carries this transaction. A plugin error payload (`error_code`) rejects with a
   * JanusError holding the code and the payload. Events still reach "message" listeners.
   */
  async request(body, jsep) {
    const msg = { janus: "message", session_id: this.session.id, handle_id: this.id, body };
    if (jsep) msg.jsep = jsep;
    const reply = await this.session._request(msg, true);
    const data = reply.plugindata?.data ?? {};
    if (data.error_code) throw new JanusError(data.error_code, data.error, data);
    return { data, jsep: reply.jsep };
  }

  /** Sends one ICE candidate (RTCIceCandidate or init), or null for end of candidates. */
  trickle(candidate) {
    const c = candidate ? (candidate.toJSON ? candidate.toJSON() : candidate) : { completed: true };
    return this.session
      ._request({ janus: "trickle", session_id: this.session.id, handle_id: this.id, candidate: c })
      .catch(() => {});
  }

  async hangup() {
    if (this.detached) return;
    await this.session._request({ janus: "hangup", session_id: this.session.id, handle_id: this.id }).catch(() => {});
  }

  async detach() {
    if (this.detached) return;
    this.detached = true;
    this.session._handles.delete(this.id);
    await this.session._request({ janus: "detach", session_id: this.session.id, handle_id: this.id }).catch(() => {});
  }

  _event(msg) {
    const name = msg.janus === "event" ? "message" : msg.janus;
    if (name === "detached") this.detached = true;
    this.dispatchEvent(new CustomEvent(name, { detail: msg }));
  }
}
