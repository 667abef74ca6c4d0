"""Atrium and Janus 1.1.2 under the same load, side by side, with the floor (`make bench-compare`).

Run inside a private network namespace (the Makefile does it; nothing leaves the machine), with
media on 10.99.0.1. Both servers start with equivalent configurations (the VideoRoom as
janus.plugin.videoroom, ICE lite, HTTP API on loopback, warnings-only logging); then, at the same
time, one `atrium-bench run` per server (it creates a room, joins the publishers, ramps the
subscribers through BENCH_SUBSCRIBERS and measures each step) and `atrium-bench floor` (SRTP protect
+ sendmmsg of the same packets with no server, AES-GCM as negotiated). Running them together means
each figure is taken under the same machine conditions; the load is a small part of the two cores.

Then, with the same two servers, an N×N meeting: BENCH_NXN rooms of participants who all publish
and each receive the others (`atrium-bench run --meshed`; 4x6 by default: 4 rooms of 6, 24
publishers and 120 forwarded streams per server), at a lighter video shape (a grid of six shows
small pictures).

Last, scaling: how many forwarded packets per second each server holds at most 0.5 % loss, for
Atrium with one media thread, with two, and for Janus (its default threading), with packets
delayed no more than 250 ms (p99; past that a server queues rather than holds). One server at a
time has the machine: BENCH_SCALING_ROOMS rooms of one publisher, whose subscribers ramp through
BENCH_SCALING_SUBSCRIBERS per room; the highest rate of a step within the loss bound counts.

Prints side-by-side tables and writes bench-results.json at the repository root:
{"atrium": {...}, "janus": {...}, "floor": {...}, "nxn": {"atrium": {...}, "janus": {...}}, ...},
each server object holding the headline step (the last of the ramp: 1 publisher -> 50 subscribers
by default) at its top level and every step under "steps".

Environment: BENCH_SUBSCRIBERS (10,50), BENCH_PUBLISHERS (1), BENCH_ROOMS (1), BENCH_WINDOW_S (10), BENCH_ROUNDS (3: windows per step, the median is reported),
BENCH_WARMUP_S (3), BENCH_VIDEO_KBPS (1500), BENCH_VIDEO_PPS (150), BENCH_FPS (30),
BENCH_NXN (4x6: rooms x participants; 0 for none), BENCH_NXN_VIDEO_KBPS (500), BENCH_NXN_VIDEO_PPS (50),
BENCH_SCALING_ROOMS (4; 0 for no scaling run), BENCH_SCALING_SUBSCRIBERS (25,50,100,150,175,...,350;
the ramp of each server ends after a step past 5 % loss or 500 ms p99),
BENCH_SCALING_WINDOW_S (4), BENCH_SERVERS (atrium,janus), BENCH_FLOOR_PROFILE (SRTP_AEAD_AES_128_GCM), BENCH_RESULTS (bench-results.json), BENCH_BUILD (release: the
.build folder whose atrium, atrium-bench and libatrium_sfu.so are used).
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import janus_reference  # noqa: E402

IP = "10.99.0.1"
SUBSCRIBERS = os.environ.get("BENCH_SUBSCRIBERS", "10,50")
PUBLISHERS = os.environ.get("BENCH_PUBLISHERS", "1")
ROOMS = os.environ.get("BENCH_ROOMS", "1")
WINDOW_S = os.environ.get("BENCH_WINDOW_S", "10")
ROUNDS = os.environ.get("BENCH_ROUNDS", "3")
WARMUP_S = os.environ.get("BENCH_WARMUP_S", "3")
VIDEO_KBPS = os.environ.get("BENCH_VIDEO_KBPS", "1500")
VIDEO_PPS = os.environ.get("BENCH_VIDEO_PPS", "150")
FPS = os.environ.get("BENCH_FPS", "30")
SERVERS = [s for s in os.environ.get("BENCH_SERVERS", "atrium,janus").split(",") if s]
NXN = os.environ.get("BENCH_NXN", "4x6")
NXN_VIDEO_KBPS = os.environ.get("BENCH_NXN_VIDEO_KBPS", "500")
NXN_VIDEO_PPS = os.environ.get("BENCH_NXN_VIDEO_PPS", "50")
RESULTS = ROOT / os.environ.get("BENCH_RESULTS", "bench-results.json")
SCALING_ROOMS = os.environ.get("BENCH_SCALING_ROOMS", "4")
SCALING_SUBSCRIBERS = os.environ.get("BENCH_SCALING_SUBSCRIBERS", "25,50,100,150,175,200,225,250,275,300,350")
SCALING_WINDOW_S = os.environ.get("BENCH_SCALING_WINDOW_S", "4")
LOSS_BOUND = 0.5  # percent
# A step whose packets wait this long is queueing, not holding the rate, whatever arrives in the
# end: a meeting with a quarter second of added delay is not one anybody would call held.
LATENCY_BOUND_MS = 250

HEADLINE_KEYS = ("cpu_us_per_forwarded_packet", "packets_forwarded", "forwarded_packets_per_s", "loss_percent",
                 "latency_p50_ms", "latency_p99_ms", "memory_kb_per_subscriber", "join_ms_p50", "join_ms_p99",
                 "server_cpu_percent", "client_cpu_percent")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build_dir() -> Path:
    folder = ROOT / ".build" / os.environ.get("BENCH_BUILD", "release")
    for name in ("atrium", "atrium-bench", "libatrium_sfu.so"):
        if not (folder / name).exists():
            raise SystemExit(f"{folder / name} is missing: run `swift build -c release` (make release) first")
    return folder


def shape_args(video_kbps: str = VIDEO_KBPS, video_pps: str = VIDEO_PPS) -> list[str]:
    return ["--video-kbps", video_kbps, "--video-pps", video_pps, "--fps", FPS,
            "--warmup", WARMUP_S, "--window", WINDOW_S, "--rounds", ROUNDS, "--bind", IP]


def bench_command(folder: Path, work: Path, label: str, url: str, pid: int) -> tuple[list[str], Path]:
    out = work / f"{label}.json"
    return ([str(folder / "atrium-bench"), "run", "--url", url, "--pid", str(pid), "--label", label,
             "--publishers", PUBLISHERS, "--rooms", ROOMS, "--subscribers", SUBSCRIBERS, "--json", str(out)] + shape_args(), out)


def nxn_size() -> tuple[int, int] | None:
    """BENCH_NXN as (rooms, participants per room), or None for no N×N run."""
    if NXN in ("", "0"):
        return None
    rooms, _, people = NXN.partition("x")
    if not (rooms.isdigit() and people.isdigit() and int(rooms) > 0 and int(people) > 1):
        raise SystemExit(f"BENCH_NXN={NXN!r}: expected ROOMSxPARTICIPANTS, e.g. 4x6, or 0")
    return int(rooms), int(people)


def nxn_command(folder: Path, work: Path, label: str, url: str, pid: int, rooms: int, people: int) -> tuple[list[str], Path]:
    out = work / f"nxn-{label}.json"
    # Room ids apart from the 1->N run's, which the server may still be tearing down.
    return ([str(folder / "atrium-bench"), "run", "--url", url, "--pid", str(pid), "--label", label, "--meshed",
             "--first-room", "5242", "--rooms", str(rooms), "--publishers", str(people), "--subscribers", str(people),
             "--json", str(out)] + shape_args(NXN_VIDEO_KBPS, NXN_VIDEO_PPS), out)


def floor_command(folder: Path, work: Path, profile: str) -> tuple[list[str], Path]:
    out = work / "floor.json"
    return ([str(folder / "atrium-bench"), "floor", "--subscribers", SUBSCRIBERS, "--profile", profile,
             "--json", str(out)] + shape_args(), out)


def run_together(commands: dict[str, tuple[list[str], Path]]) -> dict:
    """Runs the measurements side by side, so every server meets the same machine at the same
    moment (on a shared VM the background moves a figure by ±50 % from one minute to the next)."""
    procs = {name: subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for name, (cmd, _) in commands.items()}
    failed = [name for name, p in procs.items() if p.wait(timeout=1800) != 0]
    if failed:
        raise SystemExit(f"atrium-bench failed for {', '.join(failed)}")
    return {name: json.loads(out.read_text()) for name, (_, out) in commands.items()}


def start_atrium(folder: Path, work: Path, threads: int | None = None) -> tuple[subprocess.Popen, str]:
    """Atrium with the SFU; `threads` media loops (None: its default, one per core), each on an
    ephemeral port (the candidates tell atrium-bench which)."""
    http = free_port()
    media: dict = {"bind": IP, "udp_port": 0, "advertised_addresses": [IP]}
    if threads is not None:
        media["threads"] = threads
    config = {
        "server_name": "bench", "log_level": "warning", "plugins_dir": str(folder),
        "http": {"bind": "127.0.0.1", "port": http}, "websocket": {"bind": "127.0.0.1", "port": free_port()},
        "media": media,
        # One load generator on one address plays hundreds of participants in one session.
        "sessions": {"max_handles_per_session": 4096},
        "limits": {"handles_per_address": 100_000, "requests_per_second": 100_000, "burst": 100_000,
                   "address_requests_per_second": 100_000, "address_burst": 100_000},
        "plugins": [{"library": "libatrium_sfu.so", "aliases": ["janus.plugin.videoroom"], "config": {}}],
    }
    path = work / f"atrium-{threads}.json"
    path.write_text(json.dumps(config))
    log = work / f"atrium-{threads}.log"
    proc = subprocess.Popen([str(folder / "atrium"), "--config", str(path)], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http}/janus"
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"atrium did not start:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/info", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)


def start_janus(work: Path, name: str = "janus") -> janus_reference.JanusServer:
    os.environ.setdefault("ATRIUM_E2E_JANUS_DEBUG_LEVEL", "3")  # warnings and errors, like Atrium's log_level
    return janus_reference.start_janus(work / name, ice_ip=IP, videoroom_rooms=[], ice_lite=True)


def held(step: dict) -> bool:
    """Within the loss bound, and with added latency (p99) within its bound."""
    loss, p99 = step.get("loss_percent"), step.get("latency_p99_ms")
    return loss is not None and loss <= LOSS_BOUND and p99 is not None and p99 <= LATENCY_BOUND_MS


def held_rate(result: dict) -> float:
    """The highest forwarded packet rate of a step the server held (0 if none was)."""
    rates = [s["forwarded_packets_per_s"] for s in result["steps"] if held(s)]
    return round(max(rates, default=0.0), 1)


def scaling(folder: Path, work: Path) -> dict:
    """Each server alone on the machine, under a ramp of many 1->N rooms: the rate it holds."""
    runs = {}
    for name in ("threads_1", "threads_2", "janus"):
        out = work / f"scaling-{name}.json"
        server = None
        try:
            if name == "janus":
                server = start_janus(work, "janus-scaling")
                url, pid = server.http_url, server.proc.pid
            else:
                server, url = start_atrium(folder, work, threads=int(name[-1]))
                pid = server.pid
            cmd = [str(folder / "atrium-bench"), "run", "--url", url, "--pid", str(pid), "--label", name,
                   "--first-room", "7000", "--rooms", SCALING_ROOMS, "--publishers", "1", "--subscribers", SCALING_SUBSCRIBERS,
                   "--json", str(out), "--video-kbps", VIDEO_KBPS, "--video-pps", VIDEO_PPS, "--fps", FPS,
                   "--warmup", "2", "--window", SCALING_WINDOW_S, "--rounds", "1", "--bind", IP,
                   "--stop-above-loss", "5", "--stop-above-latency", "500"]
            if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
                raise SystemExit(f"atrium-bench failed for the scaling run of {name}")
            runs[name] = json.loads(out.read_text())
        finally:
            if isinstance(server, subprocess.Popen):
                server.terminate()
                server.wait(timeout=10)
            elif server is not None:
                server.stop()
    one, two, janus = (held_rate(runs[n]) for n in ("threads_1", "threads_2", "janus"))
    steps = {name: [{k: s.get(k) for k in ("subscribers_per_room", "forwarded_packets_per_s", "loss_percent", "latency_p99_ms",
                                           "server_cpu_percent", "client_cpu_percent")} for s in r["steps"]] for name, r in runs.items()}
    return {"threads_1_pps": one, "threads_2_pps": two, "ratio": round(two / one, 2) if one else None, "janus_pps": janus,
            "threads_2_over_janus": round(two / janus, 2) if janus else None, "loss_bound_percent": LOSS_BOUND,
            "latency_p99_bound_ms": LATENCY_BOUND_MS,
            "rooms": int(SCALING_ROOMS), "steps": steps}


def scaling_table(s: dict) -> str:
    lines = [f"\nScaling: {s['rooms']} rooms of 1 publisher, subscribers per room ramped; highest rate at <= {LOSS_BOUND} % loss "
             f"and p99 <= {LATENCY_BOUND_MS} ms",
             f"{'':>12} {'held pps':>10}   steps (subscribers/room: pps, loss %, p99 ms, server CPU %)"]
    for name, key in (("atrium x1", "threads_1"), ("atrium x2", "threads_2"), ("janus", "janus")):
        steps = "  ".join(f"{st['subscribers_per_room']}: {fmt(st['forwarded_packets_per_s'])}, {fmt(st['loss_percent'])}, "
                          f"{fmt(st['latency_p99_ms'])}, {fmt(st['server_cpu_percent'])}"
                          for st in s["steps"][key])
        lines.append(f"{name:>12} {fmt(s[key + '_pps']):>10}   {steps}")
    lines.append(f"two threads over one: {fmt(s['ratio'])}; two threads over Janus: {fmt(s['threads_2_over_janus'])}")
    return "\n".join(lines)


def headline(result: dict) -> dict:
    """The server object for bench-results.json: the last step's figures on top, every step below."""
    last = result["steps"][-1]
    top = {k: last.get(k) for k in HEADLINE_KEYS if k in last}
    if result.get("meshed"):
        top["scenario"] = (f"{last['rooms']} room(s) of {last['publishers_per_room']}, everyone publishing and "
                           f"receiving the others")
    else:
        top["scenario"] = f"{PUBLISHERS} publisher(s) -> {last['subscribers_per_room']} subscribers x {ROOMS} room(s)"
    return {**top, **{k: v for k, v in result.items() if k != "steps"}, "steps": result["steps"]}


def ratio(x: dict, y: dict, key: str = "cpu_us_per_forwarded_packet"):
    return round(x[key] / y[key], 3) if x.get(key) and y.get(key) else None


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


ROWS = [("forwarded packets/s", "forwarded_packets_per_s"), ("CPU µs per forwarded packet", "cpu_us_per_forwarded_packet"),
            ("server CPU % of a core", "server_cpu_percent"), ("loss %", "loss_percent"),
            ("added latency p50 ms", "latency_p50_ms"), ("added latency p99 ms", "latency_p99_ms"),
            ("memory kB per subscriber", "memory_kb_per_subscriber"), ("join ms p50", "join_ms_p50"),
            ("join ms p99", "join_ms_p99"), ("load generator CPU %", "client_cpu_percent")]


def table(results: dict) -> str:
    rows = ROWS
    servers = [s for s in ("atrium", "janus", "floor") if s in results]
    lines = []
    steps = results[servers[0]]["steps"]
    for i, step in enumerate(steps):
        n = step["subscribers_per_room"]
        lines.append(f"\n{PUBLISHERS} publisher -> {n} subscribers ({ROOMS} room), "
                     f"{VIDEO_KBPS} kbit/s VP8-shaped at {VIDEO_PPS} pkt/s + 50 audio pkt/s per publisher")
        header = f"{'':30}" + "".join(f"{s:>14}" for s in servers)
        if "atrium" in results and "janus" in results:
            header += f"{'atrium/janus':>14}"
        if "atrium" in results and "floor" in results:
            header += f"{'atrium/floor':>14}"
        lines.append(header)
        for title, key in rows:
            values = [results[s]["steps"][i].get(key) if i < len(results[s]["steps"]) else None for s in servers]
            if all(v is None for v in values):
                continue
            line = f"{title:30}" + "".join(f"{fmt(v):>14}" for v in values)
            if key == "cpu_us_per_forwarded_packet":
                a = values[servers.index("atrium")] if "atrium" in servers else None
                if "janus" in servers:
                    j = values[servers.index("janus")]
                    line += f"{(fmt(a / j) if a and j else '-'):>14}"
                if "floor" in servers:
                    f = values[servers.index("floor")]
                    line += f"{(fmt(a / f) if a and f else '-'):>14}"
            lines.append(line)
    return "\n".join(lines)


def nxn_table(results: dict, rooms: int, people: int) -> str:
    servers = [s for s in ("atrium", "janus") if s in results]
    lines = [f"\nN×N: {rooms} rooms of {people}, everyone publishing {NXN_VIDEO_KBPS} kbit/s at {NXN_VIDEO_PPS} pkt/s "
             f"+ 50 audio pkt/s and receiving the other {people - 1}",
             f"{'':30}" + "".join(f"{s:>14}" for s in servers) + (f"{'atrium/janus':>14}" if len(servers) == 2 else "")]
    for title, key in ROWS:
        values = [results[s]["steps"][-1].get(key) for s in servers]
        if all(v is None for v in values):
            continue
        line = f"{title:30}" + "".join(f"{fmt(v):>14}" for v in values)
        if key == "cpu_us_per_forwarded_packet" and len(servers) == 2:
            r = ratio(results["atrium"]["steps"][-1], results["janus"]["steps"][-1])
            line += f"{fmt(r):>14}"
        lines.append(line)
    return "\n".join(lines)


def main():
    folder = build_dir()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="atrium-bench-") as tmp:
        work = Path(tmp)
        atrium = janus = None
        nxn: dict = {}
        try:
            commands = {}
            if "atrium" in SERVERS:
                atrium, url = start_atrium(folder, work)
                commands["atrium"] = bench_command(folder, work, "atrium", url, atrium.pid)
            if "janus" in SERVERS:
                janus = start_janus(work)
                commands["janus"] = bench_command(folder, work, "janus", janus.http_url, janus.proc.pid)
            # The floor uses what browsers and both servers negotiate with atrium-bench: AES-GCM.
            commands["floor"] = floor_command(folder, work, os.environ.get("BENCH_FLOOR_PROFILE", "SRTP_AEAD_AES_128_GCM"))
            results = run_together(commands)
            size = nxn_size()
            if size and (atrium or janus):
                mesh = {}
                if atrium:
                    mesh["atrium"] = nxn_command(folder, work, "atrium", url, atrium.pid, *size)
                if janus:
                    mesh["janus"] = nxn_command(folder, work, "janus", janus.http_url, janus.proc.pid, *size)
                nxn = run_together(mesh)
        finally:
            if atrium:
                atrium.terminate()
                atrium.wait(timeout=10)
            if janus:
                janus.stop()
        scaled = scaling(folder, work) if SCALING_ROOMS not in ("", "0") and set(SERVERS) >= {"atrium", "janus"} else None
    print(table(results))
    if nxn:
        print(nxn_table(nxn, *nxn_size()))
    document = {name: headline(r) for name, r in results.items()}
    if nxn:
        document["nxn"] = {name: headline(r) for name, r in nxn.items()}
        if "atrium" in nxn and "janus" in nxn:
            document["nxn"]["atrium_over_janus_cpu_per_packet"] = ratio(nxn["atrium"]["steps"][-1], nxn["janus"]["steps"][-1])
    if scaled:
        print(scaling_table(scaled))
        document["scaling"] = scaled
    document["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
    for a, b in (("atrium", "janus"), ("atrium", "floor")):
        if a in results and b in results:
            document[f"{a}_over_{b}_cpu_per_packet"] = [
                ratio(x, y) for x, y in zip(results[a]["steps"], results[b]["steps"])]
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {RESULTS.relative_to(ROOT) if RESULTS.is_relative_to(ROOT) else RESULTS}")


if __name__ == "__main__":
    main()
