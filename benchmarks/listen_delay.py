"""Listen-in delay and cost: how late does a manager hear the call, and what does each listener cost?

Run from the repository root::

    .venv/bin/python benchmarks/listen_delay.py --listeners 1,5,10,20 --duration 30

For each L in ``--listeners`` it streams one call over the L16 websocket ingest in real time (the rep
speaks a 0.5 s tone every 2 s, the customer is silent) and attaches L aiortc listeners over WebRTC
(``POST /v1/calls/{id}/listen``). Delay: for each tone, the wall time at which a listener's first frame
louder than the silence arrived, minus the wall time at which the tone's first audio was sent; it includes
Opus encoding, RTP over loopback, aiortc's jitter buffer and decoding on the listener's side. The server runs
in this process (aioice is made to offer loopback, as in the tests), so CPU is the server and its listeners
together; ``cpu_per_listener`` is the slope between the sweep's points. One JSON document goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media_server.client.stream import stream_call  # noqa: E402
from media_server.client.wav import Recording  # noqa: E402
from tests.inprocess import InProcessServer, inprocess_server, loopback_ice  # noqa: E402

RATE = 16000
PERIOD_S, TONE_S = 2.0, 0.5
THRESHOLD = 0.02


def call_audio(duration: float) -> tuple[Recording, list[float]]:
    rep = np.zeros(int(duration * RATE), dtype=np.int16)
    onsets = []
    t = np.arange(int(TONE_S * RATE)) / RATE
    burst = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    start = 2.0
    while start + TONE_S < duration - 1.0:
        i = int(start * RATE)
        rep[i : i + burst.size] = burst
        onsets.append(start)
        start += PERIOD_S
    return Recording([rep, np.zeros_like(rep)], RATE), onsets


async def listener(srv: InProcessServer, call_id: str, levels: list[tuple[float, float]]) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")

    async def read(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray().astype(np.float64) / 32768
                levels.append((time.time(), float(np.sqrt(np.mean(pcm**2)))))

    pc.on("track", lambda track: asyncio.ensure_future(read(track)))
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        response = await http.post(
            f"/v1/calls/{call_id}/listen",
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {srv.keys['manager']}"},
        )
    response.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return pc


async def run(srv: InProcessServer, listeners: int, duration: float) -> dict[str, Any]:
    recording, onsets = call_audio(duration)
    call_id = f"bench-{uuid.uuid4().hex[:8]}"
    meta = {"repConsent": "granted", "customerConsent": "granted"}
    streaming = asyncio.create_task(stream_call(recording, srv.ws_url, "l16", srv.keys["ingest"], call_id, meta))
    while call_id not in srv.app.state.services.calls.live:  # noqa: ASYNC110 (the server's loop is another thread's)
        await asyncio.sleep(0.02)
    logs: list[list[tuple[float, float]]] = [[] for _ in range(listeners)]
    pcs = [await listener(srv, call_id, log) for log in logs]
    process = psutil.Process()
    await asyncio.sleep(1.5)  # connected and settled before measuring CPU
    process.cpu_percent()
    cpu_from = time.time()
    result = await streaming
    cpu = process.cpu_percent()
    cpu_s = time.time() - cpu_from
    delays, missed = [], 0
    for onset in onsets:
        sent = result.sent_at(onset)
        if sent < cpu_from:
            continue  # before every listener was connected
        for log in logs:
            heard = next((t for t, level in log if t >= sent - 0.05 and level > THRESHOLD), None)
            if heard is None or heard > sent + PERIOD_S - TONE_S:
                missed += 1
            else:
                delays.append(heard - sent)
    for pc in pcs:
        await pc.close()
    d = np.array(delays) * 1000
    return {
        "listeners": listeners,
        "tones_heard": len(delays),
        "tones_missed": missed,
        "delay_ms_p50": round(float(np.percentile(d, 50)), 1) if d.size else None,
        "delay_ms_p95": round(float(np.percentile(d, 95)), 1) if d.size else None,
        "delay_ms_max": round(float(d.max()), 1) if d.size else None,
        "cpu_percent": round(cpu, 1),
        "cpu_window_s": round(cpu_s, 1),
        "rss_mb": round(process.memory_info().rss / 2**20),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory() as tmp, loopback_ice():
        with inprocess_server(Path(tmp), {"listen": {"max_sessions": 200}}, ("manager", "ingest")) as srv:
            for n in args.listeners:
                print(f"{n} listener(s)...", file=sys.stderr)
                results.append(await run(srv, n, args.duration))
    slope = None
    if len(results) > 1:
        a, b = results[0], results[-1]
        slope = round((b["cpu_percent"] - a["cpu_percent"]) / (b["listeners"] - a["listeners"]), 2)
    return {
        "benchmark": "listen_delay",
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "duration_s": args.duration,
        "results": results,
        "cpu_per_listener_percent": slope,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default="1,5,10", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
