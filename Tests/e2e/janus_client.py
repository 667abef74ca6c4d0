"""The e2e suite's Janus API client: one core, a synchronous face and an asynchronous one.

* The core: `request(...)` builds a request (a fresh transaction, `session_id`/`handle_id` where
  the verb needs them), `http_path` moves those ids into the HTTP path, `is_reply` tells a reply
  (success, error, ack, server_info, pong) from an event, and `JanusError`.
* The synchronous face, for tests that look at the wire: `HttpJanus` (`post`/`get` return the
  status, the parsed JSON and the raw body) and `WsJanus` (`send`, `recv`, `request`, over the
  ``janus-protocol`` subprotocol).
* The asynchronous face, for tests that keep a session going beside media: `open_janus(url)` gives
  an `HttpAsyncJanus` (POSTs through `HttpJanus` in a worker thread, the long poll in a daemon
  thread) or a `WsAsyncJanus` (keepalive every 25 s like janus.js), both `AsyncJanus`: `create`,
  `attach`, `message`, `trickle`, `hangup`, `detach`, `destroy`, and every event in ``.events``
  with `wait_event`/`events_for`.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import threading
import time
from typing import Any, Callable

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

# --------------------------------------------------------------------------------------------
# The core

REPLY_KINDS = {"success", "error", "ack", "server_info", "pong"}
# Verbs sent outside a session (the rest carry session_id, and handle_id when given).
SESSIONLESS = {"create", "info", "ping"}


class JanusError(AssertionError):
    pass


def transaction() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=12))


def request(janus: str, session: int | None = None, handle: int | None = None, **fields) -> dict:
    """A request with a fresh transaction; `session_id` and `handle_id` where the verb takes them."""
    msg = {"janus": janus, "transaction": transaction(), **fields}
    if session is not None and janus not in SESSIONLESS:
        msg["session_id"] = session
        if handle is not None:
            msg["handle_id"] = handle
    return msg


def http_path(msg: dict) -> tuple[str | None, dict]:
    """The HTTP form of a request: its ids become the path (`<session>/<handle>`), the rest the body."""
    body = dict(msg)
    session, handle = body.pop("session_id", None), body.pop("handle_id", None)
    if session is None:
        return None, body
    return (f"{session}/{handle}" if handle is not None else str(session)), body


def is_reply(msg: Any) -> bool:
    """A reply to a request (as opposed to an event, which may carry the same transaction)."""
    return isinstance(msg, dict) and msg.get("janus") in REPLY_KINDS


def _parse(raw: bytes | str):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# The synchronous face

class HttpJanus:
    """``HttpJanus("http://127.0.0.1:8088/janus")``.

    ``post(suffix, obj_or_raw)`` / ``get(suffix)`` return
    ``(http_status, parsed_json_or_None, raw_body_bytes)``; the last response
    object (headers etc.) is kept in ``.last``.
    """

    def __init__(self, url: str, timeout: float = 15.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.last: requests.Response | None = None

    def _full(self, suffix: str | int | None) -> str:
        if suffix in (None, ""):
            return self.url
        suffix = str(suffix)
        if suffix.startswith("?"):
            return self.url + suffix
        return self.url + "/" + suffix.lstrip("/")

    def _result(self, r: requests.Response):
        self.last = r
        return r.status_code, _parse(r.content), r.content

    def post(self, suffix: str | int | None, body: Any, *, headers=None,
             timeout: float | None = None):
        if isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        r = self.http.post(self._full(suffix), data=data, headers=h,
                           timeout=timeout or self.timeout, allow_redirects=False)
        return self._result(r)

    def get(self, suffix: str | int | None = None, *, headers=None,
            timeout: float | None = None):
        r = self.http.get(self._full(suffix), headers=headers or {},
                          timeout=timeout or self.timeout, allow_redirects=False)
        return self._result(r)

    def request(self, method: str, suffix: str | int | None = None, *,
                data: bytes | None = None, headers=None,
                timeout: float | None = None):
        r = self.http.request(method, self._full(suffix), data=data,
                              headers=headers or {},
                              timeout=timeout or self.timeout,
                              allow_redirects=False)
        return self._result(r)

    def close(self):
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class WsJanus:
    """Synchronous WebSocket client speaking the ``janus-protocol`` subprotocol."""

    def __init__(self, url: str, subprotocol: str | None = "janus-protocol",
                 open_timeout: float = 5.0):
        self.url = url
        self.ws = ws_connect(
            url,
            subprotocols=[subprotocol] if subprotocol else None,
            open_timeout=open_timeout,
            max_size=None,
            compression=None,
            legacy=True,  # plain object, closed explicitly by close()
        )

    @property
    def subprotocol(self):
        return self.ws.subprotocol

    def send(self, msg: Any) -> None:
        if isinstance(msg, (str, bytes)):
            self.ws.send(msg if isinstance(msg, str) else msg.decode())
        else:
            self.ws.send(json.dumps(msg))

    def recv(self, timeout: float = 5.0):
        """Next message, parsed (raw text if it is not JSON).

        Raises TimeoutError if nothing arrives in time."""
        raw = self.ws.recv(timeout=timeout)
        parsed = _parse(raw)
        return parsed if parsed is not None else raw

    def recv_all(self, quiet: float = 0.5, limit: float = 5.0) -> list:
        """Collect messages until none arrives for *quiet* seconds."""
        out, end = [], time.monotonic() + limit
        while time.monotonic() < end:
            try:
                out.append(self.recv(timeout=quiet))
            except TimeoutError:
                break
        return out

    def recv_until(self, pred: Callable[[Any], bool], timeout: float = 5.0) -> list:
        """Receive until ``pred(msg)`` is true; returns every message received
        (the matching one last).  Raises TimeoutError otherwise."""
        out, end = [], time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message; got {out!r}")
            msg = self.recv(timeout=left)
            out.append(msg)
            if pred(msg):
                return out

    def request(self, msg: dict, timeout: float = 5.0):
        """Send *msg* and return the reply carrying its transaction."""
        self.send(msg)
        tx = msg.get("transaction")
        got = self.recv_until(lambda m: isinstance(m, dict) and m.get("transaction") == tx,
                              timeout)
        return got[-1]

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# The asynchronous face

class AsyncJanus:
    """The async face: a session's requests, the event log and waiting for events; the transports
    below supply `_request`, `_start_events` and `close`."""

    def __init__(self, url: str):
        self.url = url
        self.session_id: int | None = None
        self.events: list[dict] = []
        self._changed = asyncio.Event()

    # transport-specific
    async def _request(self, msg: dict, handle: int | None = None, timeout: float = 10.0) -> dict:
        raise NotImplementedError

    async def _start_events(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _deliver(self, event: dict) -> None:
        self.events.append(event)
        self._changed.set()

    async def request(self, janus: str, handle: int | None = None, timeout: float = 10.0, **fields) -> dict:
        return await self._request(request(janus, self.session_id, handle, **fields), handle, timeout)

    async def create(self) -> int:
        reply = await self.request("create")
        if reply.get("janus") != "success":
            raise JanusError(f"create failed: {reply}")
        self.session_id = reply["data"]["id"]
        await self._start_events()
        return self.session_id

    async def attach(self, plugin: str) -> int:
        reply = await self.request("attach", plugin=plugin)
        if reply.get("janus") != "success":
            raise JanusError(f"attach {plugin} failed: {reply}")
        return reply["data"]["id"]

    async def message(self, handle: int, body: dict, jsep: dict | None = None) -> dict:
        fields: dict[str, Any] = {"body": body}
        if jsep is not None:
            fields["jsep"] = jsep
        return await self.request("message", handle, **fields)

    async def trickle(self, handle: int, candidate: dict) -> dict:
        return await self.request("trickle", handle, candidate=candidate)

    async def hangup(self, handle: int) -> dict:
        return await self.request("hangup", handle)

    async def detach(self, handle: int) -> dict:
        return await self.request("detach", handle)

    async def destroy(self) -> dict:
        return await self.request("destroy")

    async def wait_event(self, pred: Callable[[dict], bool], timeout: float, start: int = 0) -> dict:
        """The first event at index >= start matching pred, waiting up to timeout seconds."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if pred(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching event within {timeout}s; events: {self.events[start:]!r}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def events_for(self, handle: int, kind: str | None = None, start: int = 0) -> list[dict]:
        return [e for e in self.events[start:]
                if e.get("sender") == handle and (kind is None or e.get("janus") == kind)]


class HttpAsyncJanus(AsyncJanus):
    """HTTP transport: POSTs run in a worker thread, the long poll in a daemon thread.

    ``poll_until(event) -> bool``: stop long-polling after the poll that delivered such an event.
    """

    def __init__(self, url: str, poll_until: Callable[[dict], bool] | None = None):
        super().__init__(url.rstrip("/"))
        self._http = HttpJanus(self.url)
        self._poll_until = poll_until
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def _request(self, msg: dict, handle: int | None = None, timeout: float = 10.0) -> dict:
        suffix, msg = http_path(msg)
        status, reply, raw = await asyncio.to_thread(self._http.post, suffix, msg, timeout=timeout)
        if status != 200 or not isinstance(reply, dict):
            raise JanusError(f"POST {suffix or ''} {msg.get('janus')}: HTTP {status} {raw[:300]!r}")
        return reply

    async def _start_events(self) -> None:
        loop = asyncio.get_running_loop()
        session = self.session_id

        def poll():
            http = HttpJanus(self.url, timeout=45)
            try:
                while not self._stop.is_set():
                    try:
                        status, reply, _ = http.get(f"{session}?maxev=10&rid={int(time.time() * 1000)}")
                    except Exception:  # noqa: BLE001 - server gone or poll cut: stop polling
                        return
                    if status != 200:
                        return
                    batch = reply if isinstance(reply, list) else [reply]
                    events = [e for e in batch if isinstance(e, dict) and e.get("janus") != "keepalive"]
                    for event in events:
                        try:
                            loop.call_soon_threadsafe(self._deliver, event)
                        except RuntimeError:  # the loop is closed
                            return
                    if self._poll_until and any(self._poll_until(e) for e in events):
                        return
            finally:
                http.close()

        self._poller = threading.Thread(target=poll, name=f"longpoll-{session}", daemon=True)
        self._poller.start()

    async def close(self) -> None:
        # A pending long poll is left to end by itself (the server holds it up to 30 s).
        self._stop.set()
        self._http.close()


class WsAsyncJanus(AsyncJanus):
    """WebSocket transport (subprotocol janus-protocol); keepalive every 25 s like janus.js."""

    def __init__(self, url: str):
        super().__init__(url)
        self._ws = None
        self._pending: dict[str, asyncio.Future] = {}
        self._tasks: list[asyncio.Task] = []

    async def open(self) -> "WsAsyncJanus":
        from websockets.asyncio.client import connect
        self._ws = await connect(self.url, subprotocols=["janus-protocol"], max_size=None,
                                 compression=None, open_timeout=5)
        self._tasks.append(asyncio.create_task(self._reader()))
        return self

    async def _reader(self) -> None:
        try:
            async for raw in self._ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                future = self._pending.get(msg.get("transaction"))
                if future is not None and is_reply(msg):
                    del self._pending[msg["transaction"]]
                    if not future.done():
                        future.set_result(msg)
                else:
                    self._deliver(msg)
        except Exception:  # noqa: BLE001 - socket closed
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(JanusError("WebSocket closed"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(25)  # a period, not a wait: within every session timeout
            await self.request("keepalive")

    async def _request(self, msg: dict, handle: int | None = None, timeout: float = 10.0) -> dict:
        future = asyncio.get_running_loop().create_future()
        self._pending[msg["transaction"]] = future
        await self._ws.send(json.dumps(msg))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(msg["transaction"], None)

    async def _start_events(self) -> None:
        self._tasks.append(asyncio.create_task(self._keepalive()))

    async def close(self) -> None:
        for task in self._tasks[1:]:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._tasks:
            self._tasks[0].cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def open_janus(url: str, **kw) -> AsyncJanus:
    if url.startswith(("ws://", "wss://")):
        return await WsAsyncJanus(url).open()
    return HttpAsyncJanus(url, **kw)


__all__ = ["AsyncJanus", "ConnectionClosed", "HttpAsyncJanus", "HttpJanus", "JanusError", "WsAsyncJanus", "WsJanus",
           "http_path", "is_reply", "open_janus", "request", "transaction"]
