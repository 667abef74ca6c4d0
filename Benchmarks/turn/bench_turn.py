"""The same UDP load through Atrium's TURN plugin and through coturn, with the same client.

Run by `make bench-turn` inside a private network namespace (nothing leaves the machine). Both
servers relay on 10.99.0.1 to one turnutils_peer echo; turnutils_uclient (coturn's own load
client) drives N clients over channels with long-term credentials. Runs alternate A/B and the
first run of each is a warm-up, as coturn's own performance notes advise.

Reported per run: messages sent/received, loss, uclient's round-trip average, wall time, and the
server's CPU time (user+system from /proc) per relayed packet, the figure that compares the
servers' work independently of the client's pace.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IP = "10.99.0.1"
CLIENTS = int(os.environ.get("TURN_BENCH_CLIENTS", "20"))
MESSAGES = int(os.environ.get("TURN_BENCH_MESSAGES", "2000"))
LENGTH = int(os.environ.get("TURN_BENCH_LENGTH", "120"))
INTERVAL_MS = os.environ.get("TURN_BENCH_INTERVAL_MS", "2")
ROUNDS = int(os.environ.get("TURN_BENCH_ROUNDS", "3"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((IP, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_udp(port: int):
    time.sleep(0.5)
    for _ in range(50):
        r = subprocess.run(["turnutils_stunclient", "-p", str(port), IP], capture_output=True, text=True, timeout=5)
        if "reflexive" in r.stdout + r.stderr:
            return
        time.sleep(0.1)
    raise SystemExit(f"no STUN answer on {IP}:{port}")


def start_atrium(work: Path, port: int) -> subprocess.Popen:
    binary = ROOT / ".build/release/atrium"
    plugins = ROOT / ".build/release"
    if not binary.exists():
        binary, plugins = ROOT / ".build/debug/atrium", ROOT / ".build/debug"
        print("note: no release build; measuring the debug build (run `swift build -c release` first)")
    config = {
        "server_name": "turn-bench", "log_level": "warning", "plugins_dir": str(plugins),
        "http": {"bind": "127.0.0.1", "port": free_port()}, "websocket": {"bind": "127.0.0.1", "port": free_port()},
        "media": {"udp_port": 0},
        "plugins": [{"library": "libatrium_turn.so", "config": {
            "listen": [IP], "udp_port": port, "tcp_port": None, "relay_addresses": [IP], "min_port": 42000, "max_port": 42999,
            "users": {"alice": "secretpw"}, "realm": "atrium", "allowed_peer_ips": [f"{IP}/32"],
            "max_allocations_per_user": 1000, "max_allocations": 10000, "bandwidth_bytes_per_second": 0,
            # One load client on one address plays every user, and its allocations outlive a run.
            "max_allocations_per_address": 10000}}],
    }
    path = work / "atrium.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen([str(binary), "--config", str(path)], stdout=open(work / "atrium.log", "wb"), stderr=subprocess.STDOUT)


def start_coturn(work: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([
        "turnserver", "-n", f"--listening-ip={IP}", f"--relay-ip={IP}", f"--listening-port={port}", "--min-port=43000",
        "--max-port=43999", "--lt-cred-mech", "--user=alice:secretpw", "--realm=atrium", "--no-cli", "--no-tls", "--no-dtls",
        "--no-tcp", f"--log-file={work / 'coturn.log'}", "--simple-log", "--total-quota=0", "--user-quota=0",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def run_load(port: int, peer_port: int) -> dict:
    args = ["turnutils_uclient", "-p", str(port), "-u", "alice", "-w", "secretpw", "-e", IP, "-r", str(peer_port),
            "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", str(LENGTH), "-z", INTERVAL_MS, "-c", "-X", IP]
    started = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    out = r.stdout + r.stderr
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", out, re.M)
    rtt = re.search(r"Average round trip delay ([\d.]+) ms", out)
    lost = re.search(r"Total lost packets (\d+)", out)
    if r.returncode != 0 or not totals:
        raise SystemExit(f"uclient failed ({r.returncode}):\n{out[-2000:]}")
    sent, received = map(int, totals[-1])
    return {"sent": sent, "received": received, "lost": int(lost.group(1)) if lost else -1,
            "rtt_ms": float(rtt.group(1)) if rtt else float("nan"), "wall_s": wall}


def main():
    work = Path(tempfile.mkdtemp(prefix="turn-bench-"))
    peer_port = free_port()
    peer = subprocess.Popen(["turnutils_peer", "-L", IP, "-p", str(peer_port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    servers = {}
    try:
        a_port, c_port = free_port(), free_port()
        servers["atrium"] = (start_atrium(work, a_port), a_port)
        servers["coturn"] = (start_coturn(work, c_port), c_port)
        for name, (proc, port) in servers.items():
            wait_udp(port)
        print(f"load: {CLIENTS} clients x {MESSAGES} messages of {LENGTH} B every {INTERVAL_MS} ms, channels, UDP; "
              f"{ROUNDS} rounds after a warm-up, alternating")
        results: dict[str, list[dict]] = {"atrium": [], "coturn": []}
        for round_ in range(ROUNDS + 1):
            for name, (proc, port) in (servers.items() if round_ % 2 == 0 else reversed(list(servers.items()))):
                before = cpu_seconds(proc.pid)
                r = run_load(port, peer_port)
                r["cpu_s"] = cpu_seconds(proc.pid) - before
                # Each message crosses the server twice (client to peer, peer back to client).
                r["cpu_us_per_packet"] = 1e6 * r["cpu_s"] / max(1, 2 * r["received"])
                if round_ > 0:
                    results[name].append(r)
                print(f"{'warm-up' if round_ == 0 else f'round {round_}'} {name:7} sent {r['sent']} received {r['received']} "
                      f"lost {r['lost']} rtt {r['rtt_ms']:.3f} ms wall {r['wall_s']:.1f} s server cpu {r['cpu_s']:.2f} s "
                      f"= {r['cpu_us_per_packet']:.2f} us/relayed packet")
        print("\nsummary (median of rounds):")
        for name, rows in results.items():
            def median(key):
                values = sorted(x[key] for x in rows)
                return values[len(values) // 2]
            print(f"  {name:7} {median('cpu_us_per_packet'):.2f} us server CPU per relayed packet, rtt {median('rtt_ms'):.3f} ms, "
                  f"loss {sum(x['lost'] for x in rows)} of {sum(x['sent'] for x in rows)}")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        peer.terminate()


if __name__ == "__main__":
    sys.exit(main())
