"""Meetings over impaired networks: a server host and participant hosts (hosts.py) on one bridge,
bandwidth caps and random loss on any one participant's link, real Chromium on each host running
the janus.js VideoRoom page (pages/janusjs-videoroom.*), and what each subscriber's browser says
it received, sampled ten times a second.

Topology: the "server" host holds a bridge br0 (10.40.0.1/24) and one veth port per participant
host; a participant's address is 10.40.0.<2+i>. A port's egress in the server host is that
participant's downlink, the egress of the participant's own eth0 its uplink.

Impairments (`Shaper`): this kernel has no netem (and Debian's nft is not installed), so a link
is an htb class at the cap (10 Gbit/s: none) whose byte FIFO holds 100 ms at that rate, as a
home router's buffer does; random loss is a second class whose FIFO holds nothing, chosen by a
classic-BPF filter for IPv4 UDP datagrams whose random number mod 10000 is under the loss share.
A delay (`DelayRelay`) takes a host of its own between the participant and the bridge: a small
program there passes every Ethernet frame from one side to the other after the delay (raw packet
sockets; segmentation offload is off on that path, so no frame exceeds the MTU).

Used by test_network.py (short, in `make test`) and bench_network.py (`make bench-network`).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from browser import LIBRARIES, PAGES
from conftest import ATRIUM_BIN, BUILD_DIR, require_build, sfu_plugin_entry, stop_process, wait_until
from hosts import Host
from janus_reference import JANUS_BIN, write_config
from remote_meeting import RemoteChromium

SERVER_IP = "10.40.0.1"
PAGES_PORT = 8000
API_PORT = 8088
WS_PORT = 8188
ROOM = 4321
# Janus's own videoroom demo with ?simulcast=true&room=4321 asks for a room like this one: the
# shipped room 1234 caps publishers at 128 kbit/s, too little for a top layer worth measuring.
ROOM_CONFIG = {"room": ROOM, "description": "Network tests", "publishers": 6, "bitrate": 2_000_000, "fir_freq": 10}


def participant_ip(index: int) -> str:
    return f"10.40.0.{2 + index}"


class Shaper:
    """What one device sends: a rate cap and a random loss share, changeable while media flows."""

    def __init__(self, host: Host, device: str):
        self.host, self.device = host, device
        self.tc("qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "1")
        self.tc("class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit", "quantum", "1514")
        self.tc("class", "add", "dev", device, "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit", "quantum", "1514")
        self.tc("qdisc", "add", "dev", device, "parent", "1:1", "handle", "10:", "bfifo", "limit", "1000000")
        self.tc("qdisc", "add", "dev", device, "parent", "1:2", "handle", "20:", "pfifo", "limit", "0")
        self.rate_kbit: int | None = None
        self.loss = 0.0

    def tc(self, *args: str):
        self.host.run("tc", *args)

    def cap(self, rate_kbit: int | None):
        """Caps the link at `rate_kbit` (None: no cap). The FIFO holds 100 ms at the cap."""
        rate = f"{rate_kbit}kbit" if rate_kbit else "10gbit"
        limit = max(int((rate_kbit or 10_000_000) * 1000 * 0.1 / 8), 3000)
        self.tc("class", "change", "dev", self.device, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate,
                "quantum", "1514")
        self.tc("qdisc", "change", "dev", self.device, "parent", "1:1", "handle", "10:", "bfifo", "limit", str(min(limit, 1_000_000)))
        self.rate_kbit = rate_kbit

    def lose(self, share: float):
        """Drops `share` (0..1) of the IPv4 UDP datagrams at random."""
        subprocess.run(self.host.command("tc", "filter", "del", "dev", self.device, "parent", "1:", "prio", "1"),
                       capture_output=True)
        if share > 0:
            self.tc("filter", "add", "dev", self.device, "parent", "1:", "protocol", "ip", "prio", "1",
                    "bpf", "bytecode", self._random_udp(int(share * 10_000)), "classid", "1:2")
        self.loss = share

    @staticmethod
    def _random_udp(per_10000: int) -> str:
        program = [
            (0x28, 0, 0, 12),               # ldh [12]: ethertype
            (0x15, 0, 5, 0x0800),           # IPv4, else no match
            (0x30, 0, 0, 23),               # ldb [23]: IP protocol
            (0x15, 0, 3, 17),               # UDP, else no match
            (0x20, 0, 0, 0xFFFFF000 + 56),  # ld rand (SKF_AD_OFF + SKF_AD_RANDOM)
            (0x94, 0, 0, 10_000),           # mod 10000
            (0x35, 1, 0, per_10000),        # >= share: no match, else drop
            (0x06, 0, 0, 0xFFFFFFFF),       # ret -1: the filter's class (1:2, the dropping one)
            (0x06, 0, 0, 0),                # ret 0: no match (default class)
        ]
        return f"{len(program)}," + ",".join(f"{c} {jt} {jf} {k}" for c, jt, jf, k in program)

    def dropped(self) -> dict:
        """Datagrams dropped by the loss class and by the cap's full FIFO so far."""
        import re
        out = self.host.run("tc", "-s", "qdisc", "show", "dev", self.device)
        counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"qdisc \w+ (\d+):.*?dropped (\d+)", out, re.S)}
        return {"loss": counts.get("20", 0), "queue": counts.get("10", 0)}


RELAY = r"""
import array, heapq, select, socket, struct, sys, time
a, b, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(array.array("H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF

def finished(frame):
    # A veth leaves TCP and UDP checksums to "hardware" (offload): a frame taken off one by a raw
    # socket may carry a partial one, which the next host would drop. Every IPv4 TCP/UDP checksum
    # is written anew (native byte order on both sides of the sum, so it comes out right).
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    protocol = frame[23]
    total = struct.unpack("!H", frame[16:18])[0]
    at = {6: 16, 17: 6}.get(protocol)
    start, end = 14 + ihl, 14 + total
    if at is None or end > len(frame) or end - start < at + 2:
        return frame
    segment = bytearray(frame[start:end])
    segment[at:at + 2] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, protocol, len(segment))
    value = checksum(pseudo + bytes(segment))
    if protocol == 17 and value == 0:
        value = 0xFFFF
    segment[at:at + 2] = struct.pack("=H", value)
    return frame[:start] + bytes(segment) + frame[end:]

sockets = []
for name in (a, b):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
    s.bind((name, 0))
    s.setblocking(False)
    sockets.append(s)
other = {sockets[0]: sockets[1], sockets[1]: sockets[0]}
queue, n = [], 0
print("relaying", flush=True)
while True:
    timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
    ready, _, _ = select.select([*sockets, sys.stdin], [], [], timeout)
    now = time.monotonic()
    for s in ready:
        if s is sys.stdin:
            line = sys.stdin.readline()
            if not line:
                sys.exit(0)
            delay = float(line) / 1000
            continue
        while True:
            try:
                frame, address = s.recvfrom(65535)
            except BlockingIOError:
                break
            if address[2] == socket.PACKET_OUTGOING:  # our own sends, seen again
                continue
            n += 1
            heapq.heappush(queue, (now + delay, n, other[s], finished(frame)))
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, out, frame = heapq.heappop(queue)
        try:
            out.send(frame)
        except OSError:
            pass
"""


class DelayRelay:
    """Frames between two interfaces of a host, each way after `one_way_ms` (settable while it runs)."""

    def __init__(self, host: Host, a: str, b: str):
        self.proc = host.popen([sys.executable, "-c", RELAY, a, b, "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "relaying", "the delay relay did not start"
        self.one_way_ms = 0.0

    def delay(self, one_way_ms: float):
        self.proc.stdin.write(f"{one_way_ms}\n")
        self.proc.stdin.flush()
        self.one_way_ms = one_way_ms

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            stop_process(self.proc)


class Network:
    """The server host with its bridge, and one host per participant name; the `delayed` ones
    reach the bridge through a host of their own that can delay their frames (`relays`)."""

    def __init__(self, names: list[str], delayed: tuple[str, ...] = ()):
        self.server = Host("server")
        self.hosts: dict[str, Host] = {}
        self.wans: dict[str, Host] = {}
        self.relays: dict[str, DelayRelay] = {}
        self.down: dict[str, Shaper] = {}
        self.up: dict[str, Shaper] = {}
        try:
            self.server.run("ip", "link", "add", "br0", "type", "bridge", "forward_delay", "0")
            self.server.run("ip", "addr", "add", f"{SERVER_IP}/24", "dev", "br0")
            self.server.run("ip", "link", "set", "br0", "up")
            for i, name in enumerate(names):
                host = Host(name)
                self.hosts[name] = host
                port = f"p{i}"
                if name in delayed:
                    wan = self.wans[name] = Host(f"wan-{name}")
                    self.server.run("ip", "link", "add", port, "type", "veth", "peer", "name", "up0", "netns", str(wan.holder.pid))
                    wan.run("ip", "link", "add", "down0", "type", "veth", "peer", "name", "eth0", "netns", str(host.holder.pid))
                    for device in ("up0", "down0"):
                        wan.run("ip", "link", "set", device, "addrgenmode", "none")
                        wan.run("ip", "link", "set", device, "gso_max_size", "1500", "gso_max_segs", "1")
                        wan.run("ip", "link", "set", device, "up")
                    for h, device in ((self.server, port), (host, "eth0")):
                        h.run("ip", "link", "set", device, "gso_max_size", "1500", "gso_max_segs", "1")
                    self.server.run("ip", "link", "set", "br0", "gso_max_size", "1500", "gso_max_segs", "1")
                    self.relays[name] = DelayRelay(wan, "up0", "down0")
                else:
                    self.server.run("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", str(host.holder.pid))
                self.server.run("ip", "link", "set", port, "addrgenmode", "none")
                host.run("ip", "link", "set", "eth0", "addrgenmode", "none")
                self.server.run("ip", "link", "set", port, "master", "br0")
                self.server.run("ip", "link", "set", port, "up")
                host.run("ip", "addr", "add", f"{participant_ip(i)}/24", "dev", "eth0")
                host.run("ip", "link", "set", "eth0", "up")
                self.down[name] = Shaper(self.server, port)
                self.up[name] = Shaper(host, "eth0")
            wait_until(lambda: self.server.run("bridge", "link", "show").count("state forwarding") == len(names), 10,
                       "every bridge port forwarding")
        except BaseException:
            self.close()
            raise

    def close(self):
        for relay in self.relays.values():
            relay.stop()
        for host in [*self.hosts.values(), *self.wans.values()]:
            host.close()
        self.server.close()


FETCH = r"""
import sys, urllib.request
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
with urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=body), timeout=5) as answer:
    sys.stdout.write(answer.read().decode())
"""


def fetch(host: Host, url: str, body: str | None = None) -> str | None:
    """GET (or POST `body` to) `url` from inside `host`; the answer's text, None when it fails."""
    done = subprocess.run(host.command(sys.executable, "-c", FETCH, url, *([body] if body is not None else [])),
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


class PageSite:
    """The janus.js pages (with Debian's janus.js and adapter.js) over plain HTTP from the server
    host. Browsers are told to treat that origin as secure (getUserMedia needs it)."""

    def __init__(self, server: Host, tmp: Path):
        site = tmp / "pages"
        site.mkdir(parents=True, exist_ok=True)
        for page in PAGES.iterdir():
            if page.is_file():
                shutil.copy(page, site / page.name)
        for name, (installed, _) in LIBRARIES.items():
            shutil.copy(installed, site / name)
        self.proc = server.popen([sys.executable, "-m", "http.server", "--bind", SERVER_IP, "--directory", str(site), str(PAGES_PORT)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://{SERVER_IP}:{PAGES_PORT}"
        wait_until(lambda: fetch(server, f"{self.base}/janusjs-videoroom.html") is not None, 10, "the page server")

    def url(self, api: str, display: str, **extra) -> str:
        query = {"server": api, "room": ROOM, "display": display, "debug": "warn,error", **extra}
        return f"{self.base}/janusjs-videoroom.html?" + urlencode(query)

    def stop(self):
        stop_process(self.proc)


class AtriumServer:
    """Atrium with its SFU (room ROOM) in the server host, plain HTTP and WebSocket."""

    kind = "atrium"

    def __init__(self, server: Host, tmp: Path):
        require_build(ATRIUM_BIN)
        self.workdir = tmp / "atrium"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "server_name": "atrium-network", "log_level": "info", "plugins_dir": str(BUILD_DIR),
            "http": {"bind": SERVER_IP, "port": API_PORT, "private_from": [f"{SERVER_IP}/32"]}, "websocket": {"bind": SERVER_IP, "port": WS_PORT},
            "admin": {"secret": "network-admin"},
            "media": {"bind": "0.0.0.0", "udp_port": 10000, "advertised_addresses": [SERVER_IP]},
            "plugins": [sfu_plugin_entry(rooms=[ROOM_CONFIG])],
        }
        (self.workdir / "config.json").write_text(json.dumps(config, indent=2))
        self.log_path = self.workdir / "atrium.log"
        with open(self.log_path, "wb") as log:
            self.proc = server.popen([str(ATRIUM_BIN), "--config", str(self.workdir / "config.json")], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        self.host = server
        self.api = f"http://{SERVER_IP}:{API_PORT}/janus"
        wait_until(lambda: self.proc.poll() is not None or "Janus API over HTTP" in self.log(), 20, "atrium listening")
        assert self.proc.poll() is None, f"atrium exited:\n{self.log()}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, path: str, request: str) -> dict:
        """One admin API request, made from inside the server host (the API listens on SERVER_IP)."""
        body = json.dumps({"janus": request, "admin_secret": "network-admin", "transaction": "t"})
        answer = fetch(self.host, f"http://{SERVER_IP}:{API_PORT}/admin{path}", body)
        assert answer is not None, f"admin {request} {path}: no answer"
        return json.loads(answer)

    def bandwidth(self) -> list[dict]:
        """The send-side estimate of every PeerConnection that has one (admin API handle_info)."""
        out = []
        for session in self.admin("", "list_sessions").get("sessions", []):
            for handle in self.admin(f"/{session}", "list_handles").get("handles", []):
                webrtc = (self.admin(f"/{session}/{handle}", "handle_info").get("info") or {}).get("webrtc") or {}
                if isinstance(webrtc, dict) and webrtc.get("bandwidth"):
                    out.append({"handle": handle, **webrtc["bandwidth"]})
        return out

    def stop(self):
        stop_process(self.proc)


class JanusServer:
    """Janus 1.1.2's VideoRoom (room ROOM) in the server host, plain HTTP and WebSocket."""

    kind = "janus"

    def __init__(self, server: Host, tmp: Path):
        cfg = tmp / "janus-conf"
        write_config(cfg, API_PORT, WS_PORT, ice_ip=SERVER_IP, videoroom_rooms=[ROOM_CONFIG], api_ip=SERVER_IP)
        self.log_path = tmp / "janus.log"
        with open(self.log_path, "wb") as log:
            self.proc = server.popen([JANUS_BIN, "-F", str(cfg), "-C", str(cfg / "janus.jcfg"), "-o"], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp))
        self.api = f"http://{SERVER_IP}:{API_PORT}/janus"
        wait_until(lambda: self.proc.poll() is not None or fetch(server, f"{self.api}/info") is not None, 20, "janus listening")
        assert self.proc.poll() is None, f"janus exited:\n{self.log_path.read_text(errors='replace')[-3000:]}"

    def bandwidth(self) -> list[dict]:
        return []

    def stop(self):
        stop_process(self.proc)


SERVERS = {"atrium": AtriumServer, "janus": JanusServer}


@dataclass
class Participant:
    name: str
    driver: object
    publishes: bool

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, body: str):
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            f"Promise.resolve().then(() => {body}).then(done, (e) => done({{error: String(e)}}));")

    def results(self) -> dict:
        return self.js("return window.results")


def camera_file(tmp: Path, width: int, height: int, fps: int = 20) -> Path:
    """A y4m clip for Chromium's fake camera: a test pattern under moving noise, so every simulcast
    layer's encoder runs at its maximum bitrate the way a busy real scene does (Chromium's own fake
    pattern compresses to a fraction of that, and a cap would then not bind)."""
    path = tmp / f"camera-{width}x{height}.y4m"
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
                        "-vf", "noise=alls=8:allf=t", "-t", "4", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


class Meeting:
    """A publisher and subscribers, each Chromium in its own host, on one server."""

    def __init__(self, network: Network, site: PageSite, server, tmp: Path, publisher: str, subscribers: list[str],
                 width: int = 960, height: int = 540):
        self.browsers: dict[str, RemoteChromium] = {}
        self.people: dict[str, Participant] = {}
        secure = f"--unsafely-treat-insecure-origin-as-secure={site.base}"
        camera = f"--use-file-for-fake-video-capture={camera_file(tmp, width, height)}"
        try:
            for name in [publisher, *subscribers]:
                args = [secure, camera] if name == publisher else [secure]
                chromium = RemoteChromium(network.hosts[name], tmp / f"chromium-{name}", [], extra_args=args)
                self.browsers[name] = chromium
                person = chromium.person(name, site.base)
                publishes = name == publisher
                extra = {"simulcast": "1", "width": width, "height": height} if publishes else {"publish": "0"}
                person.driver.get(site.url(server.api, name, **extra))
                self.people[name] = Participant(name, person.driver, publishes)
            pub = self.people[publisher]
            wait_until(lambda: pub.results().get("published") and pub.results().get("publisherUp"), 30, f"{publisher} publishing")
            self.feed = pub.results()["myId"]
            for name in subscribers:
                who = self.people[name]
                wait_until(lambda: self._decodes(who), 30, f"{name} decoding {publisher}'s video")
                who.js("window.startSampling(100, 6000)")
        except BaseException:
            self.close()
            raise
        self.publisher = pub
        self.subscribers = [self.people[n] for n in subscribers]

    def _decodes(self, who: Participant) -> bool:
        stats = who.js_async("window.feedStats()")
        assert "error" not in stats, stats
        video = (stats.get(str(self.feed)) or {}).get("video") or {}
        return video.get("framesDecoded", 0) > 0

    def close(self):
        for chromium in self.browsers.values():
            chromium.close()


@contextlib.contextmanager
def meeting_on(kind: str, tmp: Path, publisher: str, subscribers: list[str], delayed: tuple[str, ...] = ()):
    """A Network of the participants, the pages and the server `kind` on it, and the Meeting;
    yields (network, server, meeting) and takes it all down after."""
    network = Network([publisher, *subscribers], delayed=delayed)
    site = server = meeting = None
    try:
        site = PageSite(network.server, tmp)
        server = SERVERS[kind](network.server, tmp)
        meeting = Meeting(network, site, server, tmp, publisher, subscribers)
        yield network, server, meeting
    finally:
        if meeting:
            meeting.close()
        if server:
            server.stop()
        if site:
            site.stop()
        network.close()


@dataclass
class Window:
    """What one subscriber received of the publisher's video and audio over a stretch of time."""
    seconds: float
    fps: float
    freezes: int
    longest_freeze: float
    chromium_freezes: int
    widths: list[int] = field(default_factory=list)
    audio_concealed: float = 0.0
    repaired: int = 0
    rtx: bool = False
    frames_received: int = 0
    frames_dropped: int = 0

    @property
    def last_width(self) -> int:
        return self.widths[-1] if self.widths else 0

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 1), "fps": round(self.fps, 1), "freezes": self.freezes,
                "longest_freeze_s": round(self.longest_freeze, 2), "chromium_freezes": self.chromium_freezes,
                "width_last": self.last_width, "width_min": min(self.widths or [0]), "width_max": max(self.widths or [0]),
                "audio_concealed": round(self.audio_concealed, 4), "repaired_packets": self.repaired, "rtx": self.rtx,
                "frames_received": self.frames_received, "frames_dropped": self.frames_dropped}


FREEZE_SECONDS = 0.5


def window_of(samples: list[dict], feed: int, start: float | None = None, end: float | None = None) -> Window:
    """Measures a feed's samples (window.takeSamples) between page times `start` and `end` (ms).
    A freeze is 500 ms or more without a new decoded frame (the decode counter is read every
    100 ms, so a gap is known to within that)."""
    rows = [(s["t"], s["feeds"].get(str(feed)) or {}) for s in samples
            if (start is None or s["t"] >= start) and (end is None or s["t"] <= end)]
    rows = [(t, f) for t, f in rows if "frames" in f]
    if len(rows) < 2:
        return Window(0, 0, 0, 0, 0)
    (t0, first), (t1, last) = rows[0], rows[-1]
    seconds = (t1 - t0) / 1000
    freezes, longest = 0, 0.0
    changed_at = t0
    frames = first["frames"]
    for t, f in rows[1:]:
        if f["frames"] != frames:
            gap = (t - changed_at) / 1000
            if gap >= FREEZE_SECONDS:
                freezes += 1
                longest = max(longest, gap)
            changed_at, frames = t, f["frames"]
    tail = (t1 - changed_at) / 1000
    if tail >= FREEZE_SECONDS:
        freezes += 1
        longest = max(longest, tail)
    samples_received = last.get("samples", 0) - first.get("samples", 0)
    concealed = last.get("concealed", 0) - first.get("concealed", 0)
    return Window(
        seconds=seconds, fps=(last["frames"] - first["frames"]) / seconds if seconds > 0 else 0,
        freezes=freezes, longest_freeze=longest, chromium_freezes=last.get("freezes", 0) - first.get("freezes", 0),
        widths=[f.get("width", 0) for _, f in rows], audio_concealed=concealed / samples_received if samples_received > 0 else 0,
        repaired=last.get("repaired", 0) - first.get("repaired", 0), rtx=bool(last.get("rtxSsrc")),
        frames_received=last.get("framesReceived", 0) - first.get("framesReceived", 0),
        frames_dropped=last.get("framesDropped", 0) - first.get("framesDropped", 0))


def settle_time(samples: list[dict], feed: int, since: float, accept, until: float | None = None) -> float | None:
    """Seconds from page time `since` until the feed's width first satisfies `accept` and keeps
    doing so up to `until` (or the last sample); None if it never does."""
    rows = [(s["t"], (s["feeds"].get(str(feed)) or {}).get("width", 0)) for s in samples
            if s["t"] >= since and (until is None or s["t"] <= until)]
    settled = None
    for t, width in rows:
        if accept(width):
            settled = settled if settled is not None else t
        else:
            settled = None
    return None if settled is None else (settled - since) / 1000


def page_now(who: Participant) -> float:
    return who.js("return performance.now()")


def publisher_fps(publisher: Participant, seconds: float) -> dict:
    """Frames per second the publisher encodes per rid, over `seconds`."""
    first = publisher.js_async("window.publisherSample()")
    time.sleep(seconds)
    second = publisher.js_async("window.publisherSample()")
    elapsed = (second["t"] - first["t"]) / 1000
    before = {e["rid"]: e for e in first["encodings"]}
    return {e["rid"]: {"fps": round((e["framesEncoded"] - before.get(e["rid"], {}).get("framesEncoded", 0)) / elapsed, 1),
                       "width": e["frameWidth"]} for e in second["encodings"]}
