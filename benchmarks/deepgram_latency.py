"""Deepgram-compatible streaming, timed: how late finals arrive, whether a client keeps pace, when an idle stream
is closed. (These were timed asserts in ``tests/test_deepgram.py``; the test keeps what a user notices.)

    .venv/bin/python benchmarks/deepgram_latency.py [--runs 3] [--speed 2]

Starts its own server (``media-server serve`` with ``ingest.idle_timeout_s`` 4, as the test suite's), then per run:

- ``final_latency_s``: four telephone utterances (1.6 s pauses) streamed with Deepgram's own SDK as linear16 8 kHz
  in 100 ms messages at ``--speed`` x real time; for each utterance, the wall time from the end of its audio (as
  sent) to the arrival of its last final. The suite asserted a median under 3.0 s at 2x.
- ``pace_error_s``: how far the sender fell behind its schedule at the half-way point (the suite: under 1.0 s).
- ``idle_close_s``: a stream that sends 0.3 s of silence and then nothing: the time until the server closes it
  (1011, NET-0001). The suite: 3.5 to 6.5 s with a 4 s idle timeout.

Prints one JSON document: each run's figures and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment  # noqa: E402
from deepgram.listen.v1.types import ListenV1Results  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from tests.conftest import Server, start_server, stop_server  # noqa: E402
from tests.speech import program, tel8k  # noqa: E402

CHUNK_S = 0.1
IDLE_TIMEOUT_S = 4


def client(server: Server) -> AsyncDeepgramClient:
    environment = DeepgramClientEnvironment(
        base=server.url, production=server.ws_url, agent=server.ws_url, agent_rest=server.url
    )
    return AsyncDeepgramClient(api_key=server.keys["ingest"], environment=environment)


async def received(socket: Any, out: list[tuple[float, Any]]) -> None:
    try:
        async for message in socket:
            out.append((time.monotonic(), message))
    except ConnectionClosed:
        pass


async def send_paced(socket: Any, data: bytes, bytes_per_s: int, speed: float) -> float:
    step = int(bytes_per_s * CHUNK_S) // 2 * 2
    t0 = time.monotonic()
    for i, offset in enumerate(range(0, len(data), step)):
        await socket.send_media(data[offset : offset + step])
        await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_S / speed - time.monotonic()))
    return t0


async def final_latency(server: Server, speed: float) -> dict[str, Any]:
    utts = tel8k()
    prog = program([utts[1], utts[6], utts[5], utts[4]], gap_s=1.6, lead_s=0.4)
    audio = prog.pcm.astype("<i2").tobytes()
    half = len(audio) // 4 * 2
    messages: list[tuple[float, Any]] = []
    params = dict(model="nova-3", encoding="linear16", sample_rate=8000, interim_results=True, endpointing=500)
    async with client(server).listen.v1.connect(**params) as socket:
        reader = asyncio.create_task(received(socket, messages))
        t0 = await send_paced(socket, audio[:half], 16000, speed)
        t_half = await send_paced(socket, audio[half:], 16000, speed)
        await socket.send_close_stream()
        await asyncio.wait_for(reader, 30)
    finals = [
        (t, m)
        for t, m in messages
        if isinstance(m, ListenV1Results) and m.is_final and m.channel.alternatives[0].transcript
    ]
    latencies = []
    for start, end, _ in prog.spans:
        mine = [t for t, m in finals if start - 0.5 <= m.start <= end]
        if mine:
            latencies.append(round(mine[-1] - (t0 + end / speed), 3))
    return {
        "final_latency_s": latencies,
        "utterances": len(prog.spans),
        "pace_error_s": round(abs(t_half - (t0 + half / 16000 / speed)), 3),
    }


async def idle_close(server: Server) -> dict[str, Any]:
    messages: list[tuple[float, Any]] = []
    params = dict(model="nova-3", encoding="linear16", sample_rate=8000)
    async with client(server).listen.v1.connect(**params) as socket:
        reader = asyncio.create_task(received(socket, messages))
        await socket.send_media(bytes(int(0.3 * 16000)))
        sent = time.monotonic()
        await asyncio.wait_for(reader, 30)
        closed = time.monotonic()
        ws = socket._websocket
        return {"idle_close_s": round(closed - sent, 3), "close": [ws.close_code, ws.close_reason or ""]}


async def run(runs: int, speed: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)})
        try:
            results = []
            for _ in range(runs):
                latency, idle = await asyncio.gather(final_latency(server, speed), idle_close(server))
                results.append({**latency, **idle})
        finally:
            stop_server(server)
    medians = [statistics.median(r["final_latency_s"]) for r in results if r["final_latency_s"]]
    return {
        "speed": speed,
        "idle_timeout_s": IDLE_TIMEOUT_S,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "runs": results,
        "median_final_latency_s": round(statistics.median(medians), 3) if medians else None,
        "max_pace_error_s": max(r["pace_error_s"] for r in results),
        "median_idle_close_s": round(statistics.median(r["idle_close_s"] for r in results), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speed", type=float, default=2.0, help="audio sent at this many times real time")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.runs, args.speed)), indent=2))


if __name__ == "__main__":
    main()
