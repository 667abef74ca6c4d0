"""Captures real aiortc offers (synthetic audio and video tracks, a data channel) into SDP fixture files."""
import asyncio, sys
import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

async def offer(kind):
    # No STUN/TURN servers: host candidates only (aiortc would otherwise default to a public STUN server).
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if kind == "audio-video":
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(VideoStreamTrack())
    else:
        pc.createDataChannel("chat")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers all candidates here
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp

async def main(out):
    for kind in ["audio-video", "datachannel"]:
        sdp = await offer(kind)
        with open(f"{out}/aiortc-{kind}.sdp", "w", newline="") as f:
            f.write(sdp)
        print(kind, len(sdp.splitlines()), "lines")
    print("aiortc", aiortc.__version__)

asyncio.run(main(sys.argv[1]))
