"""`make bench-network`: what subscribers see when one participant's network is bad, Atrium and
Janus 1.1.2 side by side in the same run (network.py builds the hosts, the browsers and the
measurements). Writes network-results.json and prints a table; docs/benchmarks.md says how to
read it.

One meeting per server: a publisher sending simulcast (janus.js, rids h/m/l of a 960x540 camera)
and two subscribers, "impaired" and "free", each Chromium on a host of its own. The scenarios run
one after another on that meeting, each after both subscribers are back on the top layer:

  (a) loss     3 % random loss on the impaired subscriber's downlink with an 80 ms round trip
               (a relay host delays its frames 40 ms each way: this kernel has no netem), 30 s
  (b) cap      the impaired subscriber's downlink capped at 400 kbit/s, 60 s
  (c) step     its downlink at 2.5 Mbit/s, then 300 kbit/s for 30 s, then 2.5 Mbit/s for 30 s
  (d) bursts   10 % loss in bursts of 2 s (3 s apart) on its downlink, 30 s
  (e) uplink   the publisher's uplink capped at 500 kbit/s, 30 s

Usage: python bench_network.py [--servers atrium,janus] [--only a,b] [--repeat N] [--out network-results.json]
(--repeat runs each scenario N times and reports the median of each figure.)
Runs as root in a network namespace of its own (the Makefile's target sets that up).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from network import Meeting, Network, meeting_on, page_now, publisher_fps, settle_time, window_of

TOP_WIDTH = 960


def wait_top(meeting: Meeting, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        widths = [window_of(s.js("return window.takeSamples()"), meeting.feed).last_width for s in meeting.subscribers]
        if all(w == TOP_WIDTH for w in widths):
            return True
        # Widths come from a second of samples: the next look is a second on.
        time.sleep(1)
    return False


class Run:
    """One scenario's stretch of time: page clocks at marks, samples taken at the end."""

    def __init__(self, meeting: Meeting):
        self.meeting = meeting
        self.impaired, self.free = meeting.subscribers
        for s in meeting.subscribers:
            s.js("window.takeSamples()")
        self.marks: dict[str, tuple[float, float]] = {}
        self.mark("start")
        self.published = meeting.publisher.js_async("window.publisherSample()")

    def mark(self, name: str):
        self.marks[name] = (page_now(self.impaired), page_now(self.free))

    def finish(self):
        self.mark("end")
        self.samples = (self.impaired.js("return window.takeSamples()"), self.free.js("return window.takeSamples()"))
        first, last = self.published, self.meeting.publisher.js_async("window.publisherSample()")
        before = {e["rid"]: e["framesEncoded"] for e in first["encodings"]}
        top = [e for e in last["encodings"] if e["rid"] == "h"]
        elapsed = (last["t"] - first["t"]) / 1000
        # The frame rate the publisher encoded its top layer at over the same stretch.
        self.publisher_fps = round((top[0]["framesEncoded"] - before.get("h", 0)) / elapsed, 1) if top and elapsed > 0 else 0.0

    def window(self, who: int, start: str, end: str = "end"):
        return window_of(self.samples[who], self.meeting.feed, self.marks[start][who], self.marks[end][who])


def scenario_loss(network: Network, meeting: Meeting, share: float = 0.03, seconds: int = 30, rtt_ms: int = 80) -> dict:
    network.relays["impaired"].delay(rtt_ms / 2)
    # ICE's checks measure the round trip every few seconds: let the browser see the new one.
    time.sleep(5)
    rtt = meeting.subscribers[0].js_async("window.subscriberPair()").get("roundTripTime")
    run = Run(meeting)
    network.down["impaired"].lose(share)
    time.sleep(seconds)
    network.down["impaired"].lose(0)
    run.finish()
    network.relays["impaired"].delay(0)
    w, pub_fps = run.window(0, "start"), run.publisher_fps
    return {**w.as_dict(), "publisher_fps": pub_fps, "fps_ratio": round(w.fps / pub_fps, 3) if pub_fps else None,
            "rtt_ms": round(rtt * 1000) if rtt is not None else None, "free": run.window(1, "start").as_dict()}


def scenario_cap(network: Network, meeting: Meeting, kbit: int = 400, seconds: int = 60) -> dict:
    run = Run(meeting)
    network.down["impaired"].cap(kbit)
    time.sleep(seconds)
    run.mark("lift")
    network.down["impaired"].cap(None)
    run.finish()
    start, lift = run.marks["start"][0], run.marks["lift"][0]
    down = settle_time(run.samples[0], meeting.feed, start, lambda w: 0 < w < TOP_WIDTH, until=lift)
    after = window_of(run.samples[0], meeting.feed, start + (down or 0) * 1000, lift) if down is not None else None
    free = run.window(1, "start", "lift")
    return {"settled_s": down, "after_settling": after.as_dict() if after else None,
            "freezes_per_minute": round(after.freezes / (after.seconds / 60), 2) if after and after.seconds else None,
            "during": run.window(0, "start", "lift").as_dict(), "free": free.as_dict(),
            "free_kept_top": min(free.widths or [0]) == TOP_WIDTH}


def scenario_step(network: Network, meeting: Meeting) -> dict:
    network.down["impaired"].cap(2500)
    # The scenario is a stretch of time under one cap: nothing to await, the time is the test.
    time.sleep(10)
    run = Run(meeting)
    network.down["impaired"].cap(300)
    # As above: 30 s under the low cap.
    time.sleep(30)
    run.mark("lift")
    network.down["impaired"].cap(2500)
    # As above: 30 s after it lifts.
    time.sleep(30)
    network.down["impaired"].cap(None)
    run.finish()
    start, lift = run.marks["start"][0], run.marks["lift"][0]
    down = settle_time(run.samples[0], meeting.feed, start, lambda w: 0 < w < TOP_WIDTH, until=lift)
    # "Back" means something only after going down: a server that never left the top layer froze instead.
    back = settle_time(run.samples[0], meeting.feed, lift, lambda w: w == TOP_WIDTH) if down is not None else None
    return {"down_s": down, "back_s": back,
            "capped": run.window(0, "start", "lift").as_dict(), "recovered": run.window(0, "lift").as_dict()}


def scenario_bursts(network: Network, meeting: Meeting, seconds: int = 30) -> dict:
    run = Run(meeting)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        network.down["impaired"].lose(0.10)
        # A burst lasts 2 s and the next comes 3 s later: the timing is the scenario.
        time.sleep(2)
        network.down["impaired"].lose(0)
        # See above.
        time.sleep(3)
    run.finish()
    w, pub_fps = run.window(0, "start"), run.publisher_fps
    return {**w.as_dict(), "publisher_fps": pub_fps, "fps_ratio": round(w.fps / pub_fps, 3) if pub_fps else None}


def scenario_uplink(network: Network, meeting: Meeting, kbit: int = 500, seconds: int = 30) -> dict:
    run = Run(meeting)
    network.up["pub"].cap(kbit)
    time.sleep(seconds)
    encodings = publisher_fps(meeting.publisher, 2)
    network.up["pub"].cap(None)
    run.finish()
    return {"impaired": run.window(0, "start").as_dict(), "free": run.window(1, "start").as_dict(), "publisher": encodings}


SCENARIOS = {"a": ("loss", scenario_loss), "b": ("cap", scenario_cap), "c": ("step", scenario_step),
             "d": ("bursts", scenario_bursts), "e": ("uplink", scenario_uplink)}


def verdicts(r: dict) -> dict:
    """The issue's bars, per scenario that ran."""
    out = {}
    if "cap" in r:
        c = r["cap"]
        out["b"] = bool(c["settled_s"] is not None and c["settled_s"] <= 5 and (c["freezes_per_minute"] or 0) <= 1
                        and c["free_kept_top"])
    if "step" in r:
        s = r["step"]
        out["c"] = bool(s["down_s"] is not None and s["down_s"] <= 3 and s["back_s"] is not None and s["back_s"] <= 20)
    for key, name in (("a", "loss"), ("d", "bursts")):
        if name in r:
            x = r[name]
            out[key] = bool(x["fps_ratio"] is not None and x["fps_ratio"] >= 0.9 and x["audio_concealed"] <= 0.05)
    return out


def median_of(runs: list):
    """Field by field over repeated runs: the median of numbers, a bool true only if true in all,
    anything else as the first run had it."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in runs if isinstance(r, dict) and k in r]) for k in first}
    if isinstance(first, bool):
        return all(runs)
    numbers = [r for r in runs if isinstance(r, (int, float)) and not isinstance(r, bool)]
    if numbers and len(numbers) == len(runs):
        return statistics.median(numbers)
    if first is None and any(r is not None for r in runs):
        return None  # a time that did not come in some run did not come
    return first


def run_server(kind: str, only: list[str], tmp: Path, repeat: int = 1) -> dict:
    results: dict = {}
    with meeting_on(kind, tmp, "pub", ["impaired", "free"], delayed=("impaired",)) as (network, _, meeting):
        for key in only:
            name, scenario = SCENARIOS[key]
            runs = []
            for i in range(repeat):
                if not wait_top(meeting):
                    runs.append({"error": "the subscribers were not both on the top layer before the scenario"})
                    continue
                print(f"{kind}: ({key}) {name} {i + 1}/{repeat} ...", file=sys.stderr, flush=True)
                runs.append(scenario(network, meeting))
                # A pause between scenarios, so one's probes and switches do not open the next.
                time.sleep(5)
            results[name] = median_of(runs) if len(runs) > 1 else runs[0]
            if len(runs) > 1:
                results[name]["runs"] = runs
    results["verdicts"] = verdicts(results)
    return results


def table(results: dict) -> str:
    rows = [("scenario", "measure", *results["servers"])]

    def cell(kind: str, path: list[str]):
        v = results[kind]
        for p in path:
            v = (v or {}).get(p) if isinstance(v, dict) else None
        if isinstance(v, float):
            return f"{v:.2f}"
        return "-" if v is None else str(v)
    measures = [
        ("(a) 3% loss, 80 ms", "fps ratio", ["loss", "fps_ratio"]), ("", "rtt ms (browser)", ["loss", "rtt_ms"]), ("", "freezes", ["loss", "freezes"]),
        ("", "audio concealed", ["loss", "audio_concealed"]),
        ("(b) 400 kbit/s", "settled in s", ["cap", "settled_s"]), ("", "freezes/min after", ["cap", "freezes_per_minute"]),
        ("", "fps", ["cap", "during", "fps"]), ("", "free keeps top", ["cap", "free_kept_top"]),
        ("(c) 2.5M/300k/2.5M", "down in s", ["step", "down_s"]), ("", "back in s", ["step", "back_s"]),
        ("", "fps capped", ["step", "capped", "fps"]),
        ("(d) 10% bursts", "fps ratio", ["bursts", "fps_ratio"]), ("", "freezes", ["bursts", "freezes"]),
        ("", "audio concealed", ["bursts", "audio_concealed"]),
        ("(e) uplink 500k", "fps", ["uplink", "impaired", "fps"]), ("", "freezes", ["uplink", "impaired", "freezes"]),
        ("", "width last", ["uplink", "impaired", "width_last"]),
    ]
    for scenario, measure, path in measures:
        rows.append((scenario, measure, *(cell(k, path) for k in results["servers"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", default="atrium,janus")
    parser.add_argument("--only", default="a,b,c,d,e")
    parser.add_argument("--out", default="network-results.json")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario; the table shows medians")
    args = parser.parse_args()
    servers = args.servers.split(",")
    only = args.only.split(",")
    results: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.node(),
                     "servers": servers, "scenarios": {k: SCENARIOS[k][0] for k in only}}
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        for kind in servers:
            results[kind] = run_server(kind, only, Path(tmp) / kind, args.repeat)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"verdicts: {json.dumps({k: results[k]['verdicts'] for k in servers})}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
