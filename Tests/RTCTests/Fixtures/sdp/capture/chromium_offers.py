"""Captures real Chromium offers (fake camera and mic) into SDP fixture files."""
import pathlib
import sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

out = sys.argv[1]
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
          "--allow-loopback-in-peer-connection", "--disable-gpu", "--disable-dev-shm-usage"]:
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    driver.set_script_timeout(30)
    driver.get(pathlib.Path(__file__).with_name("offers.html").resolve().as_uri())
    for kind in ["audio-video", "audio-only", "video-only", "audio-video-datachannel", "video-simulcast", "recvonly"]:
        sdp = driver.execute_async_script("const done = arguments[arguments.length-1]; offer(arguments[0]).then(done, e => done('ERROR ' + e));", kind)
        if sdp.startswith("ERROR"):
            raise SystemExit(f"{kind}: {sdp}")
        with open(f"{out}/chromium-{kind}.sdp", "w", newline="") as f:
            f.write(sdp)
        print(kind, len(sdp.splitlines()), "lines")
    print(driver.capabilities.get("browserVersion"))
finally:
    driver.quit()
