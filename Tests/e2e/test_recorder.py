"""The Recorder with real browsers: headless Chromium participants (janus.js, pages/janusjs-videoroom)
publish into Atrium's SFU, and the Recorder (a tap plugin) writes each one's audio and video to a WebM
as it happens. The files are checked with ffmpeg/ffprobe, mkvtoolnix and opus-tools, the tools a user
would play or inspect them with (Debian: ffmpeg mkvtoolnix opus-tools; `make test` installs them).

* Three participants in a room created with "record": true, recorded for about 20 s while a fourth
  session chats: each participant's file decodes with no error (`ffmpeg -xerror`, empty stderr),
  holds VP8 + Opus, starts with a keyframe, lasts (decoded) what the participant spent in the room
  (±0.5 s), seeks (Duration, Cues); the transcript holds every chat message, in order.
* SIGKILL mid-recording: the files still decode up to the last flush; `atrium recording repair`
  finishes them (Duration, Cues, no decode message at all).
* 10% loss on the way to the server while recording (VideoRoom enable_recording starts it): the
  file still decodes cleanly, NACKs and keyframe requests having done their job.
* The request API (start, stop, list, info, errors) on a handle and through the admin API.

Runs in the e2e network namespace; nothing leaves the machine.
"""
from __future__ import annotations

import calendar
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import ATRIUM_BIN, MEDIA_THREADS, base_config, chat_plugin_entry, free_udp_port, require_media_ip, sfu_plugin_entry
from test_chat import HttpParticipant
from browser import results, save_artifacts, wait_for
from test_sfu_chromium import LossyPort, start_pages

TOOLS = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "mkvmerge": "mkvtoolnix", "mkvinfo": "mkvtoolnix", "opusinfo": "opus-tools"}
ADMIN_KEY = "e2e-admin-key"
RECORDER = "atrium.plugin.recorder"


@pytest.fixture(scope="module", autouse=True)
def recording_tools():
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing: {', '.join(missing)}: apt-get install ffmpeg mkvtoolnix opus-tools (make deps-test)", pytrace=False)


def recorder_plugin_entry(**config) -> dict:
    return {"library": "libatrium_recorder.so", "aliases": [], "enabled": True, "optional": False, "config": config}


def recording_server(start_atrium, folder: Path, sfu_rooms: list[dict], **recorder):
    require_media_ip()
    config = base_config(
        [sfu_plugin_entry(admin_key=ADMIN_KEY, rooms=sfu_rooms), chat_plugin_entry(), recorder_plugin_entry(directory=str(folder), **recorder)],
        media={"udp_port": free_udp_port(MEDIA_THREADS), "consent_timeout_seconds": 30})
    return start_atrium(config)


def page_url(base: str, server: str, room: int, display: str) -> str:
    return f"{base}/janusjs-videoroom.html?" + urlencode({"server": server, "room": room, "display": display, "debug": "warn,error"})


def join_and_publish(drivers: dict, base: str, server, room: int) -> dict:
    for name, driver in drivers.items():
        driver.get(page_url(base, server.ws_url, room, name))
    for name, driver in drivers.items():
        wait_for(driver, name, "joined", lambda r: r["joined"], timeout=15)
    for name, driver in drivers.items():
        wait_for(driver, name, "publishing", lambda r: r["publisherUp"] and r["published"], timeout=25)
    return {name: results(driver)["publisherUpAt"] / 1000.0 for name, driver in drivers.items()}


def leave(driver) -> float:
    driver.execute_script("window.leave();")
    return results(driver)["leftAt"] / 1000.0


def admin_recorder(server, body: dict) -> dict:
    reply = server.admin({"janus": "message_plugin", "plugin": RECORDER, "request": body})
    assert reply["janus"] == "success", reply
    return reply["response"]


def recording_folders(base: Path) -> list[Path]:
    return sorted(p.parent for p in base.glob("*/*/meeting.json"))


def manifest(folder: Path) -> dict:
    return json.loads((folder / "meeting.json").read_text())


# --------------------------------------------------------------------------------------------
# What the tools say about a file

def decode(path: Path) -> tuple[int, str]:
    """`ffmpeg -xerror` decoding every stream: (exit code, stderr)."""
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-map", "0", "-f", "null", "-"],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr.strip()


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=index,codec_name,codec_type,width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def video_packets(path: Path) -> list[tuple[float, str]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60)
    rows = []
    for line in out.stdout.split():
        pts, flags = line.split(",")[:2]
        rows.append((float(pts), flags))
    return rows


def decoded_audio_seconds(path: Path) -> float:
    """The real length of the audio: decoded samples (at 48 kHz, mono) — container durations can lie."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
                         capture_output=True, timeout=120)
    return len(out.stdout) / 2 / 48000


def decoded_seconds(path: Path) -> float:
    """How long the file plays: the end of its audio or of its last video frame, whichever is later."""
    video = video_packets(path)
    video_end = (video[-1][0] + 1 / 30) if video else 0.0
    return max(decoded_audio_seconds(path), video_end)


def matroska_structure(path: Path) -> str:
    info = subprocess.run(["mkvinfo", "--all", str(path)], capture_output=True, text=True, timeout=60)
    return info.stdout


def assert_plays_cleanly(path: Path, codecs: set[str]) -> None:
    code, stderr = decode(path)
    assert code == 0 and stderr == "", f"{path.name}: ffmpeg -xerror exit {code}: {stderr[:2000]}"
    streams = probe(path)["streams"]
    assert {s["codec_name"] for s in streams} == codecs, streams
    packets = video_packets(path)
    assert packets and packets[0][1].startswith("K"), f"{path.name}: first video packet {packets[:2]}"
    merged = json.loads(subprocess.run(["mkvmerge", "-J", str(path)], capture_output=True, text=True, timeout=60).stdout)
    assert merged["container"]["recognized"] and not merged.get("errors") and not merged.get("warnings"), merged


# --------------------------------------------------------------------------------------------
# 1. Three participants, a chat, 20 s

# The file must play as long as its participant was in the room, within 0.5 s: a measure a browser
# starved of CPU by tests beside it blurs (0.79 s once), so these run alone.
@pytest.mark.alone
def test_three_participants_each_get_a_playable_file_and_the_chat_a_transcript(start_atrium, tmp_path, page_server, chromium):  # noqa: F811
    room = 7001
    # The room's rec_dir (VideoRoom's option) is honoured: it is one of the allowed directories.
    folder = tmp_path / "meetings"
    server = recording_server(start_atrium, tmp_path / "recordings",
                              [{"room": room, "publishers": 6, "bitrate": 256000, "record": True, "rec_dir": str(folder)}],
                              allowed_directories=[str(folder)])
    chat = HttpParticipant(server.http_url)
    try:
        drivers = start_pages(chromium, ["alice", "bob", "carol"])
        up = join_and_publish(drivers, page_server, server, room)
        chat.send({"request": "join", "room": str(room), "display": "host"})
        sent: list[str] = []
        left: dict[str, float] = {}
        # Carol leaves after 12 s, Bob after 16 s, Alice after 20 s; a message every 2 s meanwhile.
        schedule = {12: "carol", 16: "bob", 20: "alice"}
        start = max(up.values())
        for second in range(1, 21):
            time.sleep(max(0.0, start + second - time.time()))
            if second % 2 == 1:
                text = f"message {len(sent) + 1} at {second}s <b>&</b>"
                chat.send({"request": "message", "text": text})
                sent.append(text)
            if second in schedule:
                left[schedule[second]] = leave(drivers[schedule[second]])
        # The last leave's final packets reach the Recorder before the stop; nothing marks the last
        # one written, so a margin stands in for it.
        time.sleep(1.5)
        status = admin_recorder(server, {"request": "list"})
        [running] = [r for r in status["recordings"] if r["state"] == "recording"]
        assert running["room"] == str(room) and running["reason"] == "room", status
        stopped = admin_recorder(server, {"request": "stop", "room": str(room)})
        assert stopped["recorder"] == "stopped" and stopped["recording"]["state"] == "finished", stopped

        [recording] = recording_folders(folder)
        m = manifest(recording)
        assert m["state"] == "finished" and m["room"] == str(room) and m["plugin"] == "atrium.plugin.sfu", m
        by_display = {p["display"]: p for p in m["participants"]}
        assert set(by_display) == {"alice", "bob", "carol"}, m
        for name in ("alice", "bob", "carol"):
            [entry] = by_display[name]["files"]
            path = recording / entry["file"]
            assert path.suffix == ".webm" and {t["codec"] for t in entry["tracks"]} == {"opus", "vp8"}, entry
            assert_plays_cleanly(path, {"vp8", "opus"})
            in_room = left[name] - up[name]
            played = decoded_seconds(path)
            print(f"{name}: in the room {in_room:.2f} s, file plays {played:.2f} s, offset {entry['offset_ms']} ms")
            assert abs(played - in_room) <= 0.5, f"{name}: file plays {played:.2f} s, participant was in the room {in_room:.2f} s"
            # Finished cleanly: Duration in the header (ffprobe's format duration) and Cues to seek with.
            assert abs(float(probe(path)["format"]["duration"]) - played) < 0.5
            assert "Cues" in matroska_structure(path)
            seek = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{played / 2:.1f}", "-i", str(path), "-frames:v", "1", "-f", "null", "-"],
                                  capture_output=True, text=True, timeout=60)
            assert seek.returncode == 0 and seek.stderr == "", seek.stderr
            # On the meeting timeline: the participant came in when the page says so (±1 s).
            started_at = calendar.timegm(time.strptime(m["started_at"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + m["started_at"][19:-1])
            assert abs(started_at + entry["offset_ms"] / 1000 - up[name]) < 1.5, (m["started_at"], entry, up[name])

        lines = [json.loads(line) for line in (recording / "chat.jsonl").read_text().splitlines()]
        assert [line["text"] for line in lines] == sent
        assert all(line["from"]["display"] == "host" for line in lines)
        assert [line["meeting_ms"] for line in lines] == sorted(line["meeting_ms"] for line in lines)
        vtt = (recording / "chat.vtt").read_text()
        assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(sent), vtt
        assert "<v host>message 1 at 1s &lt;b&gt;&amp;&lt;/b&gt;" in vtt, vtt
        assert m["chat"]["messages"] == len(sent)
        for name, driver in drivers.items():
            r = results(driver)
            assert r["errors"] == [] and r["janusErrors"] == [], f"{name}: {r['errors']} {r['janusErrors']}"
    except BaseException:
        save_artifacts(chromium, server, "recorder-three")
        raise
    finally:
        chat.close()


# --------------------------------------------------------------------------------------------
# 1b. Every codec of the SFU: VP9 and AV1 in WebM, H.264 in Matroska

@pytest.mark.alone
@pytest.mark.parametrize("codec, container", [("vp9", ".webm"), ("av1", ".webm"), ("h264", ".mkv")])
def test_each_video_codec_records_to_a_file_that_plays(start_atrium, tmp_path, page_server, chromium, codec, container):  # noqa: F811
    room = 7010
    folder = tmp_path / "recordings"
    server = recording_server(start_atrium, folder, [{"room": room, "publishers": 2, "videocodec": codec, "record": True}])
    try:
        drivers = start_pages(chromium, ["gil"])
        up = join_and_publish(drivers, page_server, server, room)
        time.sleep(5.0)  # five seconds of media to record: media comes in real time
        left = leave(drivers["gil"])
        time.sleep(1.0)  # the final packets reach the Recorder; nothing marks the last one written
        admin_recorder(server, {"request": "stop", "room": str(room)})
        [recording] = recording_folders(folder)
        [participant] = manifest(recording)["participants"]
        [entry] = participant["files"]
        path = recording / entry["file"]
        assert path.suffix == container, entry
        assert_plays_cleanly(path, {codec, "opus"})
        played = decoded_seconds(path)
        print(f"{codec}: {path.name} plays {played:.2f} s of {left - up['gil']:.2f} s")
        assert abs(played - (left - up["gil"])) <= 0.5
        if codec == "h264":
            assert "V_MPEG4/ISO/AVC" in matroska_structure(path)
    except BaseException:
        save_artifacts(chromium, server, f"recorder-{codec}")
        raise


# --------------------------------------------------------------------------------------------
# 2. SIGKILL

def test_sigkill_leaves_files_that_play_and_repair_finishes_them(start_atrium, tmp_path, page_server, chromium):  # noqa: F811
    room = 7002
    folder = tmp_path / "recordings"
    # Recorded because the Recorder's config lists the room.
    server = recording_server(start_atrium, folder, [{"room": room, "publishers": 6}], rooms=[room], flush_ms=500, fsync_ms=1000)
    try:
        drivers = start_pages(chromium, ["dora", "ed"])
        up = join_and_publish(drivers, page_server, server, room)
        time.sleep(8.0)  # eight seconds of media on disk before the kill: media comes in real time
        killed_at = time.time()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        [recording] = recording_folders(folder)
        assert manifest(recording)["state"] == "recording"
        files = sorted(recording.glob("participant-*.webm"))
        assert len(files) == 2, list(recording.iterdir())
        for path in files:
            code, stderr = decode(path)
            assert code == 0, f"{path.name}: ffmpeg -xerror exit {code} after SIGKILL: {stderr[:2000]}"
            played = decoded_seconds(path)
            recorded = killed_at - max(up.values())
            print(f"{path.name}: plays {played:.2f} s of about {recorded:.2f} s recorded before SIGKILL; ffmpeg said {stderr!r}")
            # Up to the last flush: flush_ms plus the interleaving holdback and the reorder wait.
            assert played >= recorded - 2.5, f"{path.name}: only {played:.2f} s of {recorded:.2f} s survived"
        repaired = subprocess.run([str(ATRIUM_BIN), "recording", "repair", str(recording)], capture_output=True, text=True, timeout=60)
        assert repaired.returncode == 0, repaired.stderr
        assert repaired.stdout.count("repaired") == 2, repaired.stdout
        for path in files:
            assert_plays_cleanly(path, {"vp8", "opus"})
            assert "Cues" in matroska_structure(path)
            assert abs(float(probe(path)["format"]["duration"]) - decoded_seconds(path)) < 0.5
        again = subprocess.run([str(ATRIUM_BIN), "recording", "repair", str(files[0])], capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "already finished" in again.stdout, again
    except BaseException:
        save_artifacts(chromium, server, "recorder-sigkill")
        raise


# --------------------------------------------------------------------------------------------
# 3. Loss on the way in

def test_recording_under_ten_percent_loss_decodes_cleanly(start_atrium, tmp_path, page_server, chromium):  # noqa: F811
    room = 7003
    folder = tmp_path / "recordings"
    # Also every stream in a file of its own (per_track): Ogg Opus for the audio.
    server = recording_server(start_atrium, folder, [{"room": room, "publishers": 6, "secret": "s"}], per_track=True)
    manager = HttpParticipant(server.http_url, plugin="janus.plugin.videoroom")
    try:
        drivers = start_pages(chromium, ["fay"])
        join_and_publish(drivers, page_server, server, room)
        with LossyPort(server.config["media"]["udp_port"], 10) as loss:
            # VideoRoom's enable_recording relabels the publisher: the Recorder starts.
            answer = manager.send({"request": "enable_recording", "room": room, "secret": "s", "record": True})
            assert answer.get("record") is True, answer
            time.sleep(10.0)  # ten seconds recorded under loss: media comes in real time
            dropped = loss.dropped()
        answer = manager.send({"request": "enable_recording", "room": room, "secret": "s", "record": False})
        assert answer.get("record") is False, answer
        assert dropped > 50, f"the loss filter dropped only {dropped} datagrams"
        [recording] = recording_folders(folder)
        deadline = time.time() + 10
        while manifest(recording)["state"] != "finished" and time.time() < deadline:
            time.sleep(0.2)
        m = manifest(recording)
        assert m["state"] == "finished" and m["reason"] == "room", m
        [participant] = m["participants"]
        [entry] = participant["files"]
        path = recording / entry["file"]
        assert_plays_cleanly(path, {"vp8", "opus"})
        played = decoded_seconds(path)
        frames = len(video_packets(path))
        print(f"{dropped} datagrams dropped; file plays {played:.2f} s with {frames} video frames; manifest {entry}")
        assert played > 8.0, played
        # Retransmissions and keyframe requests keep the picture going: most frames are there.
        assert frames > played * 10, f"{frames} frames in {played:.1f} s"
        tracks = {t["kind"]: t for t in m["tracks"]}
        assert set(tracks) == {"audio", "video"} and tracks["audio"]["file"].endswith(".opus"), m["tracks"]
        ogg = recording / tracks["audio"]["file"]
        code, stderr = decode(ogg)
        assert code == 0 and stderr == "", f"{ogg.name}: {stderr}"
        info = subprocess.run(["opusinfo", str(ogg)], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0 and "WARNING" not in info.stdout + info.stderr, info.stdout + info.stderr
        # The Ogg file's audio is as long as the participant file's (gaps concealed in both).
        assert abs(decoded_audio_seconds(ogg) - decoded_audio_seconds(path)) < 0.3
        video_only = recording / tracks["video"]["file"]
        code, stderr = decode(video_only)
        assert code == 0 and stderr == "" and video_packets(video_only)[0][1].startswith("K"), stderr
    except BaseException:
        save_artifacts(chromium, server, "recorder-loss")
        raise
    finally:
        manager.close()


# --------------------------------------------------------------------------------------------
# 4. Requests

def test_requests_on_a_handle_and_through_the_admin_api(start_atrium, tmp_path):
    folder = tmp_path / "recordings"
    server = recording_server(start_atrium, folder, [{"room": 7004}], secret="letmein")
    client = HttpParticipant(server.http_url, plugin=RECORDER)
    try:
        def error(body: dict) -> tuple[int, str]:
            answer = client.send(body)
            assert answer["recorder"] == "event", answer
            return answer["error_code"], answer["error"]

        assert error({"request": "dance"}) == (413, "Unknown request 'dance'")
        assert error({"nothing": 1})[0] == 415
        assert error({"request": "start"}) == (415, "Missing mandatory element (room)")
        assert error({"request": "start", "room": "7004"}) == (415, "Missing mandatory element (secret)")
        assert error({"request": "start", "secret": "nope", "room": "7004"}) == (419, "Unauthorized (wrong secret)")
        assert error({"request": "start", "secret": "letmein"}) == (415, "Missing mandatory element (room)")
        assert error({"request": "start", "secret": "letmein", "room": [1]})[0] == 414
        started = client.send({"request": "start", "secret": "letmein", "room": 7004})
        assert started["recorder"] == "started", started
        rec = started["recording"]
        assert rec["room"] == "7004" and rec["state"] == "recording" and rec["reason"] == "request", rec
        assert Path(rec["directory"]).is_dir() and Path(rec["directory"]).parent == folder / "7004"
        assert error({"request": "start", "secret": "letmein", "room": "7004"})[0] == 417
        # Listing every room's recordings, and reading one, need the secret too.
        assert error({"request": "list"}) == (415, "Missing mandatory element (room)")
        assert error({"request": "info", "id": rec["id"]}) == (415, "Missing mandatory element (secret)")
        listed = client.send({"request": "list", "secret": "letmein"})
        assert [r["id"] for r in listed["recordings"]] == [rec["id"]]
        info = client.send({"request": "info", "id": rec["id"], "secret": "letmein"})
        assert info["recording"]["format"] == "atrium-recording/1" and info["recording"]["state"] == "recording"
        assert error({"request": "info", "id": "nope"})[0] == 416
        # The admin API needs no secret.
        stopped = admin_recorder(server, {"request": "stop", "id": rec["id"]})
        assert stopped["recording"]["state"] == "finished"
        assert manifest(Path(rec["directory"]))["state"] == "finished"
        assert error({"request": "stop", "secret": "letmein", "room": "7004"})[0] == 416
        # A second recording of the room gets a folder of its own; nothing is overwritten.
        again = admin_recorder(server, {"request": "start", "room": "7004"})["recording"]
        assert again["directory"] != rec["directory"]
        admin_recorder(server, {"request": "stop", "room": "7004"})
        assert len(recording_folders(folder)) == 2
        assert server.metric("atrium_recorder_recordings") == 0
    finally:
        client.close()


def test_bad_recorder_config_is_refused_with_the_key_named(tmp_path):
    config = base_config([recorder_plugin_entry(directory=str(tmp_path), flush_ms=5)])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    done = subprocess.run([str(ATRIUM_BIN), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "flush_ms" in done.stderr, done.stderr
    config = base_config([recorder_plugin_entry(directory=str(tmp_path), colour="blue")])
    path.write_text(json.dumps(config))
    done = subprocess.run([str(ATRIUM_BIN), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and 'unknown key "colour"' in done.stderr, done.stderr
