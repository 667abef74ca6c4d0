"""atrium-bench, the load generator behind `make bench`, against both servers and on its own.

The benchmark's figures only mean something if the tool does what it claims, so these short runs
check it end to end in the test namespace: one publisher, then 2 and 3 subscribers, 2-second
windows. Every subscriber must receive every stamped packet the publisher sent (the count at the
subscribers matches the count sent times the fan-out), with the loss, latency, join-time, memory
and CPU figures present and consistent. Nothing here asserts a speed.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import BUILD_DIR, MEDIA_IP, MEDIA_THREADS, base_config, free_udp_port, require_build, require_media_ip, sfu_plugin_entry
from janus_reference import start_janus

# Every packet sent in a 2 s window must be counted at each subscriber within it: with other tests
# starving the server of CPU, packets at the window's edge arrive after it closes.
pytestmark = pytest.mark.alone

BENCH = BUILD_DIR / "atrium-bench"
STEPS = (2, 3)


def run_bench(tmp_path, *args: str) -> dict:
    require_build(BENCH)
    out = tmp_path / "bench.json"
    proc = subprocess.run([str(BENCH), *args, "--json", str(out), "--bind", MEDIA_IP],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"atrium-bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result, "the JSON on stdout and in --json differ"
    return result


def run_against(tmp_path, url: str, pid: int, label: str) -> dict:
    return run_bench(tmp_path, "run", "--url", url, "--pid", str(pid), "--label", label,
                     "--subscribers", ",".join(map(str, STEPS)), "--window", "2", "--warmup", "1")


def check_run(result: dict, label: str) -> None:
    assert result["server"] == label
    assert result["srtp_profile"] in ("SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80")
    assert [s["subscribers_per_room"] for s in result["steps"]] == list(STEPS)
    for step in result["steps"]:
        n = step["subscribers_per_room"]
        sent = step["packets_sent_by_publishers"]
        # 150 video + 50 audio packets/s over a ~2 s window.
        assert 300 <= sent <= 500, step
        # Each subscriber got each packet once; only packets in flight at the window's edges differ.
        assert abs(step["packets_forwarded"] - n * sent) <= max(10, 0.05 * n * sent), step
        assert step["loss_percent"] < 1, step
        assert 0 < step["latency_p50_ms"] <= step["latency_p99_ms"], step
        assert step["join_ms_p50"] > 0 and step["join_ms_p99"] >= step["join_ms_p50"], step
        assert step["cpu_us_per_forwarded_packet"] > 0 and step["server_cpu_percent"] > 0, step
        assert step["server_rss_kb"] > 0 and "memory_kb_per_subscriber" in step, step


def test_bench_drives_atrium(start_atrium, tmp_path):
    require_media_ip()
    config = base_config([sfu_plugin_entry(rooms=[])], media={"udp_port": free_udp_port(MEDIA_THREADS)}, log_level="info")
    server = start_atrium(config)
    result = run_against(tmp_path, server.http_url, server.proc.pid, "atrium")
    check_run(result, "atrium")
    assert server.alive()


def test_bench_drives_janus(tmp_path):
    require_media_ip()
    janus = start_janus(tmp_path / "janus", ice_ip=MEDIA_IP, videoroom_rooms=[], ice_lite=True)
    try:
        result = run_against(tmp_path, janus.http_url, janus.proc.pid, "janus")
        check_run(result, "janus")
    finally:
        janus.stop()


def test_bench_drives_meshed_rooms(start_atrium, tmp_path):
    """Two N×N rooms of three: everyone publishes, and each receives the other two."""
    require_media_ip()
    config = base_config([sfu_plugin_entry(rooms=[])], media={"udp_port": free_udp_port(MEDIA_THREADS)}, log_level="info")
    server = start_atrium(config)
    result = run_bench(tmp_path, "run", "--url", server.http_url, "--pid", str(server.proc.pid), "--label", "atrium",
                       "--rooms", "2", "--publishers", "3", "--subscribers", "3", "--meshed", "--window", "2", "--warmup", "1")
    assert result["meshed"] is True
    [step] = result["steps"]
    assert step["rooms"] == 2 and step["publishers_per_room"] == 3 and step["subscribers"] == 6, step
    sent = step["packets_sent_by_publishers"]
    # Six publishers at 200 packets/s over a ~2 s window, each packet to the two others of its room.
    assert 6 * 300 <= sent <= 6 * 500, step
    assert abs(step["packets_forwarded"] - 2 * sent) <= max(30, 0.05 * 2 * sent), step
    assert step["loss_percent"] < 1, step
    assert server.alive()


def test_floor_protects_and_delivers_every_packet(tmp_path):
    require_media_ip()
    result = run_bench(tmp_path, "floor", "--subscribers", "2,4", "--window", "1", "--warmup", "0.5")
    assert result["server"] == "floor"
    for step in result["steps"]:
        n = step["subscribers_per_room"]
        assert step["packets_forwarded"] % n == 0, step  # every packet went to every receiver
        assert 150 * n <= step["packets_forwarded"] <= 250 * n, step
        # What was sent in warm-up and window reached the receivers (protected, so longer than sent).
        assert step["packets_delivered_total"] >= step["packets_forwarded"], step
        assert step["cpu_us_per_forwarded_packet"] > 0, step


@pytest.mark.parametrize("args, message", [
    (["run", "--url", "http://127.0.0.1:9/janus", "--pid", "1"], "connect"),
    (["run", "--url", "ws://127.0.0.1:9", "--pid", "1"], "only http://"),
    (["run", "--pid", "1", "--subscribers", "5,2"], "increasing"),
    (["floor", "--profile", "NOPE"], "unknown SRTP profile"),
    (["run", "--pid", "1", "--meshed", "--publishers", "3", "--subscribers", "2"], "--meshed takes one subscriber step"),
])
def test_bench_refuses_what_it_cannot_do(args, message):
    require_build(BENCH)
    proc = subprocess.run([str(BENCH), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
