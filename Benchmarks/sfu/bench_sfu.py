"""The SFU's fan-out cost: one publisher, N subscribers, the server's CPU time per forwarded packet.

Run by `make bench-sfu` inside a private network namespace (nothing leaves the machine). Atrium
runs with its SFU plugin (libatrium_sfu.so, as janus.plugin.videoroom) and one room, media on
10.99.0.1; the release build when it has the plugin, else the debug build (with a note). One
aiortc publisher (rtc_peer.EchoPeer with joinandconfigure) sends a synthetic 640x480 30 fps VP8
video pinned to 1.5 Mbit/s plus an Opus tone, about 210 RTP packets/s; for each fan-out N (1, 2, 4,
8 by default, after N=0: the publisher alone) N aiortc subscribers join with streams [{feed}],
answer the plugin's offer with `start` and decode what they get. After a warm-up each N is measured
over a fixed window: the server's CPU time (utime+stime of the whole process from /proc/<pid>/stat,
cross-checked with the threads' schedstat) and the RTP packets it received and relayed
(atrium_media_rtp_received_total / atrium_media_rtp_sent_total on /metrics), so the figure is the
server's CPU time per forwarded (outgoing) packet, independent of the clients' pace.

The clients run in worker processes (this file with --worker): one for the publisher and
SFU_BENCH_WORKERS for the subscribers, all sharing the machine's cores with the server. Their CPU
time, the machine's (/proc/stat) and the server threads' run-queue wait are reported per N, so a
saturated machine shows.

Reported per N: RTP packets in/s and out/s at the server, out/(in x N), server CPU % (of one core),
microseconds per outgoing packet (and what forwarding adds over N=0), what each subscriber received
during the window and lost (aiortc's RTP statistics), the clients' and the machine's CPU; then a
least-squares line through the points: the marginal server CPU per extra forwarded packet. A JSON
document with every figure comes first, a table after it.

Environment: SFU_BENCH_FANOUT (1,2,4,8), SFU_BENCH_BASELINE (1: measure N=0 first), SFU_BENCH_ROUNDS
(1), SFU_BENCH_WINDOW_S (10), SFU_BENCH_WARMUP_S (3), SFU_BENCH_IDLE_S (5), SFU_BENCH_WORKERS (2),
SFU_BENCH_BITRATE (1500000), SFU_BENCH_WIDTH/HEIGHT/FPS (640/480/30), SFU_BENCH_AUDIO (1),
SFU_BENCH_DECODE (1; 0: subscribers reassemble frames but decode nothing, to spare the cores),
SFU_BENCH_RECORD (0; 1: the Recorder plugin is loaded and records the room, so the figures include
what taps and the Recorder's media-thread copy cost; its writer thread's CPU is in the server's).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IP = "10.99.0.1"
ROOM = 1234
FANOUT = [int(x) for x in os.environ.get("SFU_BENCH_FANOUT", "1,2,4,8").split(",") if x.strip()]
ROUNDS = int(os.environ.get("SFU_BENCH_ROUNDS", "1"))           # repeat the whole N series
BASELINE = os.environ.get("SFU_BENCH_BASELINE", "1") != "0"     # also N=0: the publisher alone
WINDOW_S = float(os.environ.get("SFU_BENCH_WINDOW_S", "10"))
IDLE_S = float(os.environ.get("SFU_BENCH_IDLE_S", "5"))          # the server with no client at all
WARMUP_S = float(os.environ.get("SFU_BENCH_WARMUP_S", "3"))
WORKERS = int(os.environ.get("SFU_BENCH_WORKERS", "2"))          # subscriber worker processes
BITRATE = int(os.environ.get("SFU_BENCH_BITRATE", "1500000"))    # pinned VP8 target, bit/s
WIDTH = int(os.environ.get("SFU_BENCH_WIDTH", "640"))
HEIGHT = int(os.environ.get("SFU_BENCH_HEIGHT", "480"))
FPS = float(os.environ.get("SFU_BENCH_FPS", "30"))
AUDIO = os.environ.get("SFU_BENCH_AUDIO", "1") != "0"
DECODE = os.environ.get("SFU_BENCH_DECODE", "1") != "0"          # 0: subscribers count frames, decode nothing


# --------------------------------------------------------------------------------------------
# Measuring (orchestrator side)

def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """user+system time of a whole process (every thread), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> dict[int, tuple[str, int, int]]:
    """{thread id: (name, ns on a CPU, ns waiting for one)} from /proc/<pid>/task/*/schedstat: the
    CPU time in nanoseconds' precision (a cross-check of cpu_seconds, whose ticks are 10 ms; a
    thread that ended takes its time with it), and the run-queue wait that shows a busy machine."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            run, wait = (int(x) for x in (task / "schedstat").read_text().split()[:2])
            out[int(task.name)] = ((task / "comm").read_text().strip(), run, wait)
        except (OSError, ValueError):
            pass
    return out


def thread_cpu_seconds(pid: int) -> float:
    return sum(t[1] for t in threads(pid).values()) / 1e9


def thread_deltas(before: dict, after: dict, wall: float) -> tuple[dict[str, float], float, float]:
    """({thread name: % of one core}, total CPU s, run-queue wait s) between two threads() readings."""
    by_name: dict[str, float] = {}
    run = wait = 0.0
    for tid, (name, r, w) in after.items():
        _, r0, w0 = before.get(tid, (name, 0, 0))
        by_name[name] = by_name.get(name, 0.0) + (r - r0) / 1e9
        run += (r - r0) / 1e9
        wait += (w - w0) / 1e9
    shown = {name: round(100 * v / wall, 2) for name, v in sorted(by_name.items(), key=lambda x: -x[1]) if v > 0}
    return shown, run, wait


def machine_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over every core, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks[:8])      # guest time is already inside user/nice
    hz = os.sysconf("SC_CLK_TCK")
    return (total - idle) / hz, total / hz


def metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


RTP_IN = "atrium_media_rtp_received_total"
RTP_OUT = "atrium_media_rtp_sent_total"
RTP_RTX = "atrium_media_rtp_retransmitted_total"
DGRAM_IN = "atrium_media_datagrams_received_total"
DGRAM_OUT = "atrium_media_datagrams_sent_total"
DROPPED = "atrium_media_datagrams_dropped_total"
SEND_ERRORS = "atrium_media_send_errors_total"


def build_dir() -> tuple[Path, str]:
    """The release build when it has both the binary and the SFU plugin, else the debug build."""
    for name in ("release", "debug"):
        folder = ROOT / ".build" / name
        if (folder / "atrium").exists() and (folder / "libatrium_sfu.so").exists():
            if name == "debug":
                print("note: no release build with libatrium_sfu.so; measuring the debug build "
                      "(run `swift build -c release` first)")
            return folder, name
    raise SystemExit("no build with atrium and libatrium_sfu.so in .build/release or .build/debug: build first")


def start_atrium(work: Path, folder: Path) -> tuple[subprocess.Popen, int, int]:
    http, ws = free_port(), free_port()
    config = {
        "server_name": "sfu-bench", "log_level": "warning", "plugins_dir": str(folder),
        "http": {"bind": "127.0.0.1", "port": http}, "websocket": {"bind": "127.0.0.1", "port": ws},
        "media": {"bind": IP, "udp_port": free_port(socket.SOCK_DGRAM, IP), "advertised_addresses": [IP],
                  "consent_timeout_seconds": 30},
        "plugins": [{"library": "libatrium_sfu.so", "aliases": ["janus.plugin.videoroom"],
                     "config": {"rooms": [{"room": ROOM, "publishers": 10}]}}],
    }
    if os.environ.get("SFU_BENCH_RECORD", "0") == "1":
        config["plugins"].append({"library": "libatrium_recorder.so",
                                  "config": {"directory": str(work / "recordings"), "rooms": [ROOM]}})
    path = work / "atrium.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([str(folder / "atrium"), "--config", str(path)],
                            stdout=open(work / "atrium.log", "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"atrium exited with {proc.returncode}:\n{(work / 'atrium.log').read_text()[-2000:]}")
        try:
            metrics(http)
            return proc, http, ws
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("atrium did not answer on /metrics within 20 s")


class Worker:
    """A client process (this file with --worker), driven by JSON lines on its stdin/stdout."""

    def __init__(self, name: str, work: Path):
        self.name = name
        self.log_path = work / f"{name}.log"
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"), text=True, bufsize=1)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put(None)

    def send(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 60) -> dict:
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit(f"{self.name}: no reply within {timeout} s; log:\n{self.log()}")
        if line is None:
            raise SystemExit(f"{self.name} exited ({self.proc.poll()}); log:\n{self.log()}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise SystemExit(f"{self.name}: {answer.get('error')}; log:\n{self.log()}")
        return answer

    def call(self, timeout: float = 60, **msg) -> dict:
        self.send(**msg)
        return self.reply(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send(op="quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def snapshot(atrium: subprocess.Popen, http: int, publisher: Worker, subs: list[Worker]) -> dict:
    for w in [publisher, *subs]:
        w.send(op="stats")
    stats = [w.reply(30) for w in [publisher, *subs]]
    snap = {"t": time.monotonic(), "server_cpu": cpu_seconds(atrium.pid),
            "server_threads": threads(atrium.pid), "metrics": metrics(http),
            "publisher_cpu": publisher.cpu(), "subscribers_cpu": sum(w.cpu() for w in subs),
            "machine": machine_cpu(), "pub": stats[0]["pub"], "subs": [s for r in stats[1:] for s in r["subs"]]}
    return snap


def measure(n: int, before: dict, after: dict) -> dict:
    wall = after["t"] - before["t"]
    d = {k: after["metrics"].get(k, 0) - before["metrics"].get(k, 0)
         for k in (RTP_IN, RTP_OUT, RTP_RTX, DGRAM_IN, DGRAM_OUT, DROPPED, SEND_ERRORS)}
    cpu = after["server_cpu"] - before["server_cpu"]
    by_thread, cpu_threads, run_wait = thread_deltas(before["server_threads"], after["server_threads"], wall)
    # The machine's share is busy/total of its own clock, so it never reads above 100% per core.
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    machine_pct = 100 * (os.cpu_count() or 1) * busy / total if total > 0 else float("nan")
    pub_cpu = after["publisher_cpu"] - before["publisher_cpu"]
    subs_cpu = after["subscribers_cpu"] - before["subscribers_cpu"]
    pub_sent = {k: after["pub"].get(k, 0) - before["pub"].get(k, 0) for k in after["pub"]}
    old = {s["id"]: s for s in before["subs"]}
    subscribers = []
    for s in after["subs"]:
        b = old.get(s["id"], {"received": {}, "lost": {}, "frames": {}})
        subscribers.append({kind: {"received": s["received"].get(kind, 0) - b["received"].get(kind, 0),
                                   "lost": s["lost"].get(kind, 0) - b["lost"].get(kind, 0),
                                   "frames": s["frames"].get(kind, 0) - b["frames"].get(kind, 0)}
                            for kind in sorted(set(s["received"]) | set(s["frames"]))})
    received = sum(k["received"] for s in subscribers for k in s.values())
    return {
        "subscribers": n, "window_s": round(wall, 3),
        "rtp_in_per_s": d[RTP_IN] / wall, "rtp_out_per_s": d[RTP_OUT] / wall,
        "rtp_in": int(d[RTP_IN]), "rtp_out": int(d[RTP_OUT]), "rtp_retransmitted": int(d[RTP_RTX]),
        "out_over_in_times_n": d[RTP_OUT] / (d[RTP_IN] * n) if d[RTP_IN] and n else None,
        "datagrams_in": int(d[DGRAM_IN]), "datagrams_out": int(d[DGRAM_OUT]),
        "datagrams_dropped": int(d[DROPPED]), "send_errors": int(d[SEND_ERRORS]),
        "server_cpu_s": cpu, "server_cpu_pct": 100 * cpu / wall,
        "server_cpu_us_per_out_packet": 1e6 * cpu / d[RTP_OUT] if d[RTP_OUT] else None,
        "server_cpu_us_per_in_packet": 1e6 * cpu / d[RTP_IN] if d[RTP_IN] else None,
        "server_cpu_s_schedstat": cpu_threads,
        "server_cpu_us_per_out_packet_schedstat": 1e6 * cpu_threads / d[RTP_OUT] if d[RTP_OUT] else None,
        "server_threads_cpu_pct": by_thread,
        "server_runqueue_wait_ms_per_s": 1e3 * run_wait / wall,
        "publisher_sent": pub_sent, "subscriber_received_total": received,
        "subscriber_lost_total": sum(k["lost"] for s in subscribers for k in s.values()),
        "per_subscriber": subscribers,
        "publisher_cpu_pct": 100 * pub_cpu / wall, "subscribers_cpu_pct": 100 * subs_cpu / wall,
        "machine_busy_pct": machine_pct,
        "other_cpu_pct": machine_pct - 100 * (cpu + pub_cpu + subs_cpu) / wall,
    }


def git_head() -> str | None:
    """The checked-out commit (read only: no index refresh). The build measured is usually of it,
    perhaps with uncommitted changes; the binaries' modification times say when it was made."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except OSError:
        return None


def mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))


def fit(rows: list[dict]) -> dict | None:
    """Least squares of server CPU (s/s) against outgoing packets/s: slope = marginal CPU per packet."""
    xs = [r["rtp_out_per_s"] for r in rows]
    ys = [r["server_cpu_pct"] / 100 for r in rows]
    if len(rows) < 2 or max(xs) == min(xs):
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"marginal_us_per_out_packet": 1e6 * slope, "intercept_cpu_pct": 100 * (my - slope * mx)}


def main():
    folder, build = build_dir()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((IP, 0))
    except OSError:
        raise SystemExit(f"{IP} is not a local address: run inside the benchmark namespace (`make bench-sfu`)")
    work = Path(tempfile.mkdtemp(prefix="sfu-bench-"))
    built = {"binary_mtime": mtime(folder / "atrium"), "plugin_mtime": mtime(folder / "libatrium_sfu.so")}
    atrium, http, ws = start_atrium(work, folder)
    url = f"ws://127.0.0.1:{ws}"
    workers: list[Worker] = []
    started = time.monotonic()
    try:
        publisher = Worker("publisher", work)
        subs = [Worker(f"subscribers{i}", work) for i in range(max(1, WORKERS))]
        workers = [publisher, *subs]
        for w in workers:
            w.send(op="ping")
        for w in workers:
            w.reply(60)
        before = (time.monotonic(), cpu_seconds(atrium.pid), thread_cpu_seconds(atrium.pid))
        time.sleep(IDLE_S)
        wall = time.monotonic() - before[0]
        idle = {"window_s": round(wall, 3), "server_cpu_pct": 100 * (cpu_seconds(atrium.pid) - before[1]) / wall,
                "server_cpu_pct_schedstat": 100 * (thread_cpu_seconds(atrium.pid) - before[2]) / wall}
        print(f"idle server (no client): {idle['server_cpu_pct']:.2f}% CPU "
              f"({idle['server_cpu_pct_schedstat']:.2f}% by schedstat) over {wall:.1f} s")
        pub = publisher.call(op="publish", url=url, room=ROOM, width=WIDTH, height=HEIGHT, fps=FPS,
                             bitrate=BITRATE, audio=AUDIO, timeout=60)
        feed = pub["feed"]
        print(f"publisher: feed {feed}, VP8 {WIDTH}x{HEIGHT} at {FPS:g} fps pinned to {BITRATE / 1e6:g} Mbit/s"
              f"{' + Opus' if AUDIO else ''}; subscribers in {len(subs)} worker processes, "
              f"{'decoding' if DECODE else 'not decoding'}; {build} build; warm-up {WARMUP_S:g} s, "
              f"window {WINDOW_S:g} s per N")
        time.sleep(WARMUP_S)
        rows = []
        series = ([0] if BASELINE and 0 not in FANOUT else []) + FANOUT
        for round_, n in ((r, n) for r in range(1, ROUNDS + 1) for n in series):
            share = [n // len(subs) + (1 if i < n % len(subs) else 0) for i in range(len(subs))]
            for w, k in zip(subs, share):
                if k:
                    w.send(op="subscribe", url=url, room=ROOM, feed=feed, count=k, audio=AUDIO)
            for w, k in zip(subs, share):
                if k:
                    w.reply(60)
            time.sleep(WARMUP_S)
            before = snapshot(atrium, http, publisher, subs)
            time.sleep(WINDOW_S)
            after = snapshot(atrium, http, publisher, subs)
            row = {"round": round_, **measure(n, before, after)}
            base = next((r for r in reversed(rows) if r["subscribers"] == 0), None)
            if base is not None and row["rtp_out"]:
                # What forwarding adds to the publisher-only load, per outgoing packet.
                extra = row["server_cpu_s"] - base["server_cpu_s"] * row["window_s"] / base["window_s"]
                row["server_cpu_us_per_out_packet_over_baseline"] = 1e6 * extra / row["rtp_out"]
            rows.append(row)
            for w in subs:
                w.call(op="unsubscribe", timeout=30)
            if atrium.poll() is not None:
                raise SystemExit(f"atrium died ({atrium.returncode}):\n{(work / 'atrium.log').read_text()[-2000:]}")
            progress(row, ROUNDS > 1)
        result = {
            "benchmark": "sfu-fanout", "build": build, "binary": str(folder / "atrium"), **built,
            "git_head": git_head(), "cores": os.cpu_count(),
            "video": {"codec": "VP8", "width": WIDTH, "height": HEIGHT, "fps": FPS, "bitrate": BITRATE},
            "audio": AUDIO, "decode": DECODE, "workers": len(subs), "warmup_s": WARMUP_S, "window_s": WINDOW_S,
            "rounds": ROUNDS, "idle": idle, "results": rows, "fit": fit(rows),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        if (mtime(folder / "atrium"), mtime(folder / "libatrium_sfu.so")) != tuple(built.values()):
            print(f"note: {folder} was rebuilt during the run; the figures are of the build from "
                  f"{built['binary_mtime']} (plugin {built['plugin_mtime']})")
        print(json.dumps(result, indent=1))
        summary(result)
    finally:
        for w in workers:
            w.stop()
        atrium.terminate()
        try:
            atrium.wait(timeout=10)
        except subprocess.TimeoutExpired:
            atrium.kill()


def progress(row: dict, rounds: bool):
    n = row["subscribers"]
    per_sub = [sum(k["received"] for k in s.values()) for s in row["per_subscriber"]]
    per_packet = row["server_cpu_us_per_out_packet"]
    busiest = ", ".join(f"{k} {v:.1f}%" for k, v in list(row["server_threads_cpu_pct"].items())[:3])
    label = (f"round {row['round']} " if rounds else "") + f"N={n}" + (" (publisher only)" if n == 0 else "")
    print(f"{label}: "
          f"in {row['rtp_in_per_s']:.0f}/s out {row['rtp_out_per_s']:.0f}/s, server CPU {row['server_cpu_pct']:.1f}%"
          f"{f' = {per_packet:.1f} us/out packet' if per_packet else ''} (threads: {busiest}); "
          f"subscribers received {per_sub}, lost {row['subscriber_lost_total']}; clients "
          f"{row['publisher_cpu_pct'] + row['subscribers_cpu_pct']:.0f}%, machine {row['machine_busy_pct']:.0f}% "
          f"of {100 * (os.cpu_count() or 1)}%")


def summary(result: dict):
    cores = result["cores"]
    idle = result["idle"]
    print(f"\nsummary ({result['build']} build, {cores} cores; idle server {idle['server_cpu_pct']:.2f}% CPU, "
          f"{idle['server_cpu_pct_schedstat']:.2f}% by schedstat):")
    print("  srv CPU %: the server's utime+stime, % of one core; us/out pkt: the same per outgoing RTP packet;")
    print("  (schedstat): the same from per-thread ns counters; over N=0: what forwarding adds to the")
    print("  publisher-only load, per outgoing packet; srv waited: the server threads' run-queue wait;")
    print(f"  clients: aiortc publisher + subscribers; machine: every process, of {100 * cores}%; other: the rest")
    print(f"  {'N':>2} {'in/s':>5} {'out/s':>6} {'out/(in*N)':>10} {'srv CPU %':>9} {'us/out pkt':>10} {'(schedstat)':>11} "
          f"{'over N=0':>8} {'srv waited':>10} {'received (each)':>16} {'lost':>4} {'clients %':>9} {'other %':>7} "
          f"{'machine %':>9}")
    nan = float("nan")
    for r in result["results"]:
        each = [sum(k["received"] for k in s.values()) for s in r["per_subscriber"]]
        shown = f"{min(each)}..{max(each)}" if len(set(each)) > 1 else str(each[0] if each else "-")
        ratio = r["out_over_in_times_n"]
        print(f"  {r['subscribers']:>2} {r['rtp_in_per_s']:>5.0f} {r['rtp_out_per_s']:>6.0f} "
              f"{ratio if ratio is not None else nan:>10.3f} {r['server_cpu_pct']:>9.1f} "
              f"{r['server_cpu_us_per_out_packet'] or nan:>10.1f} {r['server_cpu_us_per_out_packet_schedstat'] or nan:>11.1f} "
              f"{r.get('server_cpu_us_per_out_packet_over_baseline', nan):>8.1f} "
              f"{r['server_runqueue_wait_ms_per_s']:>5.0f} ms/s {shown:>16} {r['subscriber_lost_total']:>4} "
              f"{r['publisher_cpu_pct'] + r['subscribers_cpu_pct']:>9.0f} {r['other_cpu_pct']:>7.0f} "
              f"{r['machine_busy_pct']:>9.0f}")
    if result["rounds"] > 1:
        for n in sorted({r["subscribers"] for r in result["results"] if r["subscribers"]}):
            values = sorted(r["server_cpu_us_per_out_packet"] for r in result["results"] if r["subscribers"] == n)
            print(f"  N={n}: median {values[len(values) // 2]:.1f} us/out packet over {len(values)} rounds "
                  f"(min {values[0]:.1f}, max {values[-1]:.1f})")
    if result["fit"]:
        f = result["fit"]
        print(f"  marginal server CPU per extra outgoing packet (least squares over N): "
              f"{f['marginal_us_per_out_packet']:.1f} us; at zero subscribers {f['intercept_cpu_pct']:.1f}% CPU")


# --------------------------------------------------------------------------------------------
# Client worker: aiortc publisher and subscribers (runs with --worker)

def worker_main():
    sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
    asyncio.run(Clients().serve())


class TokenDecoder:
    """Stands in for aiortc's decoders when SFU_BENCH_DECODE=0: every whole frame the jitter buffer
    assembles comes out of track.recv() as a token, nothing is decoded."""

    def decode(self, encoded_frame) -> list:
        return [True]


class Clients:
    def __init__(self):
        self.publisher = None
        self.subs: list[dict] = []
        self.next_id = 0

    async def serve(self):
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()

        def read():
            for line in sys.stdin:
                loop.call_soon_threadsafe(commands.put_nowait, line)
            loop.call_soon_threadsafe(commands.put_nowait, None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            line = await commands.get()
            if line is None:
                break
            msg = json.loads(line)
            op = msg.pop("op")
            if op == "quit":
                await self.unsubscribe()
                if self.publisher is not None:
                    await self.publisher.close(hangup=True)
                break
            try:
                reply = await getattr(self, op)(**msg)
                reply = {"ok": True, **(reply or {})}
            except Exception as e:  # noqa: BLE001 - reported to the orchestrator
                reply = {"ok": False, "error": f"{op}: {type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()

    async def ping(self):
        import rtc_peer  # imports aiortc now, not during the first measurement
        del rtc_peer
        if not DECODE:
            import aiortc.rtcrtpreceiver
            aiortc.rtcrtpreceiver.get_decoder = lambda codec: TokenDecoder()
        return {}

    async def publish(self, url, room, width, height, fps, bitrate, audio):
        from aiortc.codecs import vpx
        from rtc_peer import EchoPeer
        # A pinned target: REMB can only move it within [MIN, MAX], so the packet rate stays steady.
        vpx.DEFAULT_BITRATE = vpx.MIN_BITRATE = vpx.MAX_BITRATE = bitrate
        self.publisher = await EchoPeer.connect(
            url, "janus.plugin.videoroom", audio=audio, video=True, width=width, height=height, fps=fps,
            body={"request": "joinandconfigure", "room": room, "ptype": "publisher", "display": "bench"})
        peer = self.publisher
        data = peer.answer_event.get("plugindata", {}).get("data", {})
        await peer.janus.wait_event(lambda e: e.get("janus") == "webrtcup" and e.get("sender") == peer.handle, 15)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum((await self.pub_counts()).values()) < 100:
            await asyncio.sleep(0.1)
        return {"feed": data["id"]}

    async def pub_counts(self) -> dict:
        counts: dict[str, int] = {}
        for sender in self.publisher.pc.getSenders():
            if sender.track is None:
                continue
            for s in (await sender.getStats()).values():
                if s.type == "outbound-rtp":
                    counts[sender.track.kind] = counts.get(sender.track.kind, 0) + s.packetsSent
        return counts

    async def subscribe(self, url, room, feed, count, audio):
        subs = await asyncio.gather(*(self.subscriber(url, room, feed) for _ in range(count)))
        self.subs += subs
        kinds = {"video", "audio"} if audio else {"video"}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(set(k for k, v in self.sub_counts(s)["received"].items() if v) >= kinds for s in subs):
                return {"subs": len(self.subs)}
            await asyncio.sleep(0.1)
        raise TimeoutError(f"subscribers not receiving {sorted(kinds)} within 20 s: "
                           f"{[self.sub_counts(s) for s in subs]}")

    async def subscriber(self, url, room, feed) -> dict:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import MediaStreamError
        from aiortc.rtcconfiguration import RTCBundlePolicy
        from janus_client import JanusError, open_janus

        janus = await open_janus(url)
        await janus.create()
        handle = await janus.attach("janus.plugin.videoroom")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.next_id += 1
        sub = {"id": f"{os.getpid()}-{self.next_id}", "janus": janus, "handle": handle, "pc": pc, "tasks": [],
               "frames": {}}

        async def consume(track):
            while True:
                try:
                    await track.recv()
                except MediaStreamError:
                    return
                sub["frames"][track.kind] = sub["frames"].get(track.kind, 0) + 1

        @pc.on("track")
        def on_track(track):
            sub["tasks"].append(asyncio.ensure_future(consume(track)))

        async def call(body, jsep=None):
            start = len(janus.events)
            reply = await janus.message(handle, body, jsep)
            if reply.get("janus") != "ack":
                raise JanusError(f"{body}: {reply}")
            return await janus.wait_event(lambda e: e.get("sender") == handle and e.get("janus") == "event"
                                          and e.get("transaction") == reply["transaction"], 15, start)

        attached = await call({"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]})
        jsep = attached.get("jsep") or {}
        if jsep.get("type") != "offer":
            raise JanusError(f"expected attached with an offer: {attached}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        started = await call({"request": "start"}, {"type": "answer", "sdp": pc.localDescription.sdp})
        if started.get("plugindata", {}).get("data", {}).get("started") != "ok":
            raise JanusError(f"start refused: {started}")
        return sub

    @staticmethod
    def sub_counts(sub) -> dict:
        received: dict[str, int] = {}
        lost: dict[str, int] = {}
        for t in sub["pc"].getTransceivers():
            # aiortc's per-SSRC receive statistics (its getStats keeps one SSRC per receiver).
            streams = getattr(t.receiver, "_RTCRtpReceiver__remote_streams", {})
            for s in streams.values():
                received[t.kind] = received.get(t.kind, 0) + s.packets_received
                lost[t.kind] = lost.get(t.kind, 0) + s.packets_lost
        return {"id": sub["id"], "received": received, "lost": lost, "frames": dict(sub["frames"])}

    async def stats(self):
        return {"pub": await self.pub_counts() if self.publisher else {},
                "subs": [self.sub_counts(s) for s in self.subs]}

    async def unsubscribe(self):
        subs, self.subs = self.subs, []

        async def close(sub):
            try:
                await sub["janus"].message(sub["handle"], {"request": "leave"})
            except Exception:  # noqa: BLE001 - best effort
                pass
            await sub["pc"].close()
            for task in sub["tasks"]:
                task.cancel()
            await asyncio.gather(*sub["tasks"], return_exceptions=True)
            try:
                await sub["janus"].destroy()
            except Exception:  # noqa: BLE001 - best effort
                pass
            await sub["janus"].close()

        await asyncio.gather(*(close(s) for s in subs))
        return {}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    if parser.parse_args().worker:
        sys.exit(worker_main())
    sys.exit(main())
