"""Start the real Janus 1.1.2 (Debian package) as a reference server for tests.

``start_janus(tmp_path)`` writes a minimal, loopback-only configuration folder
into *tmp_path*, launches ``/usr/bin/janus`` on it and returns a
:class:`JanusServer` once ``GET /janus/info`` answers.  It is usable both as a
plain function (call ``.stop()`` yourself) and as a context manager::

    with start_janus(tmp_path) as janus:
        requests.get(janus.http_url + "/info")

What the generated configuration does:

* ``general.configs_folder`` is the generated folder itself (so the HTTP and
  WebSocket transports read *our* port/IP settings, not the Debian ones in
  /etc/janus); the echotest and textroom plugin configurations are copied
  from /etc/janus into it.  ``plugins_folder`` / ``transports_folder`` /
  ``events_folder`` / ``loggers_folder`` point at the Debian folders.
* Janus only loads files whose name ends in ``.so`` (the Debian ``.so``
  entries are symlinks to ``*.so.1.1.2``; the versioned names are skipped
  by the loader).  Every plugin ``.so`` except echotest and textroom is listed
  in ``plugins: { disable = ... }``; every transport except http and
  websockets in ``transports: { disable = ... }``; all loggers are disabled
  and event handlers are off (``events.broadcast = false``).
* ``session_timeout = 60`` (the default), ``reclaim_session_timeout = 0``.
* HTTP transport on 127.0.0.1:<free port>, base path /janus, no HTTPS, no
  admin.  WebSocket transport on 127.0.0.1:<free port>, no WSS, no admin.
* ``general.interface = "127.0.0.1"`` (no local-IP autodetection) and
  ``nat.ice_enforce_list = "lo"``: ICE only ever gathers on loopback; no
  STUN/TURN servers are configured.  ``start_janus(..., ice_ip="10.99.0.1")``
  gathers on that one address instead (interface and enforce list both set to
  it): media tests need it, because browsers and aioice never offer loopback
  host candidates.  The HTTP and WebSocket transports stay on 127.0.0.1.
* Logging goes to stdout (redirected to ``<tmp_path>/janus.log``), colours
  off (``-o``), no log file (no ``-L``), no external loggers; debug_level 4,
  or ``$ATRIUM_E2E_JANUS_DEBUG_LEVEL``.
* More plugins: ``start_janus(..., plugins=["libjanus_videoroom.so"])`` enables
  further plugin libraries (their Debian configuration is copied when there
  is one).  ``videoroom_rooms=[{"room": 1234, "description": ..., ...}]``
  enables ``janus.plugin.videoroom`` (libjanus_videoroom.so) with exactly
  these rooms, written as ``room-<id>: { ... }`` categories of a generated
  ``janus.plugin.videoroom.jcfg`` (every other key of a room dict is a room
  property under Janus's own name; lists become comma-separated strings);
  ``videoroom_general={"admin_key": ...}`` fills its ``general`` category
  (``None`` values are left out).  This takes the same room dicts as
  Atrium's SFU plugin configuration (conftest.sfu_plugin_entry).
* ``start_janus(..., ice_lite=True)`` sets ``nat.ice_lite``: Janus answers
  connectivity checks and never sends its own, as Atrium does (the load
  benchmark uses it so both servers do the same ICE work).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from ports import free_port

JANUS_BIN = "/usr/bin/janus"
DEBIAN_CONFIGS = Path("/etc/janus")
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS_FOLDER = JANUS_LIB / "plugins"
TRANSPORTS_FOLDER = JANUS_LIB / "transports"
EVENTS_FOLDER = JANUS_LIB / "events"
LOGGERS_FOLDER = JANUS_LIB / "loggers"

ENABLED_PLUGINS = ("libjanus_echotest.so", "libjanus_textroom.so")
ENABLED_TRANSPORTS = ("libjanus_http.so", "libjanus_websockets.so")
PLUGIN_CONFIGS = ("janus.plugin.echotest.jcfg", "janus.plugin.textroom.jcfg")


def _loadable(folder: Path) -> list[str]:
    """The names Janus would try to load from *folder* (ending in .so)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".so"))


def _disable_list(folder: Path, keep: tuple[str, ...] = ()) -> str:
    return ",".join(n for n in _loadable(folder) if n not in keep)


class JanusServer:
    """A running Janus reference instance (loopback only)."""

    def __init__(self, proc: subprocess.Popen, cfg_dir: Path, http_port: int,
                 ws_port: int, log_path: Path):
        self.proc = proc
        self.cfg_dir = cfg_dir
        self.http_port = http_port
        self.ws_port = ws_port
        self.log_path = log_path
        self.http_url = f"http://127.0.0.1:{http_port}/janus"
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        # Janus has the real echotest plugin; Atrium's fixture exposes another
        # id under the same attribute name so tests can treat both alike.
        self.plugin_for_handles = "janus.plugin.echotest"

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # Janus shuts down cleanly on SIGINT
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def __enter__(self) -> "JanusServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _jcfg_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _jcfg_category(name: str, items: dict) -> str:
    body = "".join(f"\t{key} = {_jcfg_value(value)}\n" for key, value in items.items() if value is not None)
    return f"{name}: {{\n{body}}}\n"


def videoroom_jcfg(rooms: list[dict], general: dict | None = None) -> str:
    """janus.plugin.videoroom.jcfg text for *rooms* (dicts with a "room" id and room properties)."""
    text = _jcfg_category("general", general or {})
    for room in rooms:
        props = {k: v for k, v in room.items() if k != "room"}
        text += _jcfg_category(f"room-{room['room']}", props)
    return text


def write_config(cfg_dir: Path, http_port: int, ws_port: int,
                 session_timeout: int = 60, ice_ip: str | None = None,
                 plugins: tuple[str, ...] | list[str] = (),
                 videoroom_rooms: list[dict] | None = None,
                 videoroom_general: dict | None = None, ice_lite: bool = False,
                 api_ip: str = "127.0.0.1") -> None:
    interface = ice_ip or "127.0.0.1"
    enforce = ice_ip or "lo"
    # ATRIUM_E2E_JANUS_DEBUG_LEVEL=5 (verbose) or 7 (huge) when a test needs Janus's reasons.
    debug_level = int(os.environ.get("ATRIUM_E2E_JANUS_DEBUG_LEVEL", "4"))
    enabled = tuple(ENABLED_PLUGINS) + tuple(plugins)
    if videoroom_rooms is not None and "libjanus_videoroom.so" not in enabled:
        enabled += ("libjanus_videoroom.so",)
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "janus.jcfg").write_text(f"""\
general: {{
	configs_folder = "{cfg_dir}"
	plugins_folder = "{PLUGINS_FOLDER}"
	transports_folder = "{TRANSPORTS_FOLDER}"
	events_folder = "{EVENTS_FOLDER}"
	loggers_folder = "{LOGGERS_FOLDER}"
	log_to_stdout = true
	debug_level = {debug_level}
	debug_colors = false
	interface = "{interface}"
	server_name = "JanusReference"
	session_timeout = {session_timeout}
	reclaim_session_timeout = 0
	candidates_timeout = 45
}}
certificates: {{
}}
media: {{
}}
nat: {{
	nice_debug = false
	ice_enforce_list = "{enforce}"
	ice_lite = {"true" if ice_lite else "false"}
}}
plugins: {{
	disable = "{_disable_list(PLUGINS_FOLDER, enabled)}"
}}
transports: {{
	disable = "{_disable_list(TRANSPORTS_FOLDER, ENABLED_TRANSPORTS)}"
}}
loggers: {{
	disable = "{_disable_list(LOGGERS_FOLDER)}"
}}
events: {{
	broadcast = false
	disable = "{_disable_list(EVENTS_FOLDER)}"
}}
""")
    (cfg_dir / "janus.transport.http.jcfg").write_text(f"""\
general: {{
	json = "indented"
	base_path = "/janus"
	http = true
	port = {http_port}
	ip = "{api_ip}"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
""")
    (cfg_dir / "janus.transport.websockets.jcfg").write_text(f"""\
general: {{
	json = "indented"
	ws = true
	ws_port = {ws_port}
	ws_ip = "{api_ip}"
	wss = false
}}
admin: {{
	admin_ws = false
	admin_wss = false
}}
cors: {{
}}
""")
    configs = list(PLUGIN_CONFIGS)
    for library in plugins:  # libjanus_<name>.so reads janus.plugin.<name>.jcfg
        name = library.removeprefix("libjanus_").removesuffix(".so")
        configs.append(f"janus.plugin.{name}.jcfg")
    for name in configs:
        src = DEBIAN_CONFIGS / name
        if src.exists():
            shutil.copyfile(src, cfg_dir / name)
        else:
            (cfg_dir / name).write_text("general: {\n}\n")
    if videoroom_rooms is not None:
        (cfg_dir / "janus.plugin.videoroom.jcfg").write_text(videoroom_jcfg(videoroom_rooms, videoroom_general))


def start_janus(tmp_path, startup_timeout: float = 20.0,
                session_timeout: int = 60, ice_ip: str | None = None,
                plugins: tuple[str, ...] | list[str] = (),
                videoroom_rooms: list[dict] | None = None,
                videoroom_general: dict | None = None, ice_lite: bool = False) -> JanusServer:
    """Write a config into *tmp_path*, start Janus and wait for /janus/info.

    *plugins* enables more plugin libraries; *videoroom_rooms* (and
    *videoroom_general*) enable the VideoRoom with exactly those rooms."""
    tmp_path = Path(tmp_path)
    last_error = None
    for _attempt in range(3):  # retry if a chosen port got taken meanwhile
        http_port, ws_port = free_port(), free_port()
        while ws_port == http_port:
            ws_port = free_port()
        cfg_dir = tmp_path / "janus-conf"
        if cfg_dir.exists():
            shutil.rmtree(cfg_dir)
        write_config(cfg_dir, http_port, ws_port, session_timeout, ice_ip,
                     plugins, videoroom_rooms, videoroom_general, ice_lite)
        log_path = tmp_path / "janus.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            [JANUS_BIN, "-F", str(cfg_dir), "-C", str(cfg_dir / "janus.jcfg"),
             "-o"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=str(tmp_path), start_new_session=True)
        log.close()
        server = JanusServer(proc, cfg_dir, http_port, ws_port, log_path)
        deadline = time.monotonic() + startup_timeout
        ready = False
        while time.monotonic() < deadline and server.alive():
            try:
                r = requests.get(server.http_url + "/info", timeout=1)
                if r.status_code == 200 and r.json().get("janus") == "server_info":
                    ready = _ws_port_open(ws_port)
                    if ready:
                        break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.1)
        if ready:
            return server
        last_error = (f"Janus did not become ready (exit={proc.poll()}); "
                      f"log tail:\n{server.log_tail()}")
        server.stop()
    raise RuntimeError(last_error)


def _ws_port_open(port: int) -> bool:
    with contextlib.suppress(OSError):
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    return False


@contextlib.contextmanager
def janus_server(tmp_path, **kw):
    server = start_janus(tmp_path, **kw)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # manual poking: python janus_reference.py
    import tempfile
    with tempfile.TemporaryDirectory() as d, janus_server(d) as j:
        print("HTTP", j.http_url, "WS", j.ws_url, "log", j.log_path)
        try:
            while j.alive():
                time.sleep(1)  # a period: a person is poking at it by hand
        except KeyboardInterrupt:
            pass
