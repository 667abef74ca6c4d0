"""Tiny Janus API clients used by the e2e tests (HTTP long-poll and WebSocket)."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect


def _parse(raw: bytes | str):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


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


__all__ = ["HttpJanus", "WsJanus", "ConnectionClosed"]
