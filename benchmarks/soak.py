"""A long run with call churn and a slow subscriber: does the server stay flat? (issue 18)

Run from the repository root::

    .venv/bin/python benchmarks/soak.py --minutes 30 --calls 4 --call-s 40

It starts its own `media-server serve` (temp data dir) and, until ``--minutes`` have passed, keeps ``--calls``
real-time two-party Twilio calls going (``benchmarks/call_load.py``'s calls: tel8k_sim speech, each call's events
read back over a websocket); every ``--abort-every``-th call is cut in the middle (the websocket dropped without a
stop, as a crashed platform does). Beside them a slow subscriber reads the team's events websocket one message every
``--slow-read-s`` seconds, so the server drops it (close 1013, "reconnect with ?after=") and it reconnects from the
last id it got, over and over.

Every ``--sample-s`` seconds it records the server's RSS, open file descriptors and threads (psutil) and the event
loop's lag over the last minute (``/v1/status`` ``eventLoop``: how late a 250 ms timer fires). One JSON document
goes to stdout: the samples, and per series its first, last and max and its slope per hour (a least-squares line
over the samples after the first ``--warmup-s``, when the model, caches and pools have been filled); calls
completed and cut; final latency p50/p95 and WER over every completed call (call_load.py's scoring); the slow
subscriber's drops and the events it got. Flat means: RSS slope a few MB/h at most, descriptors back to where
they were, lag p95 like at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import call_load  # noqa: E402
from benchmarks.call_load import CallOutcome, http_json, log  # noqa: E402
from media_server.client.stream import stream_call  # noqa: E402


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    t = np.array([p[0] for p in points]) / 3600.0
    y = np.array([p[1] for p in points])
    return round(float(np.polyfit(t, y, 1)[0]), 2)


def series(samples: list[dict[str, Any]], name: str, warmup_s: float) -> dict[str, Any]:
    values = [(s["t_s"], s[name]) for s in samples if s.get(name) is not None]
    if not values:
        return {}
    steady = [(t, v) for t, v in values if t >= warmup_s]
    return {
        "first": values[0][1],
        "after_warmup": steady[0][1] if steady else None,
        "last": values[-1][1],
        "max": max(v for _, v in values),
        "slope_per_hour": slope_per_hour(steady),
    }


class Soak:
    def __init__(self, args: argparse.Namespace, url: str, token: str, pid: int) -> None:
        self.args = args
        self.url = url
        self.ws = url.replace("http://", "ws://")
        self.token = token
        self.pid = pid
        self.utterances = call_load.load_tel8k(args.speech_dir)
        self.rng = random.Random(args.seed)
        self.outcomes: list[CallOutcome] = []
        self.cut = 0
        self.failed = 0
        self.started = 0
        self.samples: list[dict[str, Any]] = []
        self.slow_drops = 0
        self.slow_events = 0
        self.t0 = time.monotonic()

    async def one_call(self, abort: bool) -> None:
        self.started += 1
        plan = call_load.plan_calls(self.utterances, 1, self.args.call_s, 0.8, 0.0, self.rng, f"soak{self.started}")[0]
        if not abort:
            outcome = await call_load.run_call(
                plan, self.url, self.ws, self.token, time.monotonic(), 3 * self.args.call_s
            )
            if outcome.error or outcome.ended_status != "completed":
                self.failed += 1
            self.outcomes.append(outcome)
            return
        # Cut in the middle: the stream task is cancelled, its websocket dropped without a stop.
        half = plan.recording.duration / 2
        stream = asyncio.create_task(
            stream_call(
                plan.recording, self.url, "twilio", self.token, call_id=plan.call_id, metadata=call_load.CONSENT
            )
        )
        await asyncio.sleep(half)
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stream
        self.cut += 1

    async def caller(self, index: int, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            abort = self.args.abort_every > 0 and (n * self.args.calls + index) % self.args.abort_every == 0
            try:
                await self.one_call(abort)
            except Exception as exc:  # (one failed call is counted, the soak goes on)
                self.failed += 1
                log(f"call failed: {exc!r}")

    async def slow_subscriber(self, deadline: float) -> None:
        after = 0
        while time.monotonic() < deadline:
            try:
                async with connect(f"{self.ws}/v1/events?after={after}", subprotocols=["token", self.token]) as ws:  # type: ignore[list-item]
                    async for raw in ws:
                        event = json.loads(raw)
                        after = int(event.get("id", after) or after)
                        self.slow_events += 1
                        await asyncio.sleep(self.args.slow_read_s)
                        if time.monotonic() > deadline:
                            return
            except ConnectionClosed:
                self.slow_drops += 1
            except (InvalidHandshake, OSError) as exc:
                log(f"slow subscriber: {exc!r}")
                await asyncio.sleep(1)

    def sample(self) -> None:
        entry: dict[str, Any] = {"t_s": round(time.monotonic() - self.t0, 1)}
        try:
            process = psutil.Process(self.pid)
            entry["rss_mb"] = round(process.memory_info().rss / 2**20, 1)
            entry["fds"] = process.num_fds()
            entry["threads"] = process.num_threads()
        except psutil.Error:
            pass
        with contextlib.suppress(OSError, ValueError):
            status = http_json(f"{self.url}/v1/status", self.token, timeout=10)
            loop = status.get("eventLoop") or {}
            entry["loop_lag_ms_p50"] = loop.get("lagMsP50")
            entry["loop_lag_ms_p95"] = loop.get("lagMsP95")
            entry["loop_lag_ms_max"] = loop.get("lagMsMax")
            entry["live_calls"] = status.get("liveCalls")
        entry["calls_done"] = len(self.outcomes) + self.cut
        self.samples.append(entry)
        log(f"sample: {entry}")

    async def sampler(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.sample()
            await asyncio.sleep(self.args.sample_s)

    async def run(self) -> dict[str, Any]:
        deadline = self.t0 + self.args.minutes * 60
        await asyncio.gather(
            self.sampler(deadline),
            self.slow_subscriber(deadline),
            *(self.caller(i, deadline) for i in range(self.args.calls)),
        )
        await asyncio.sleep(10)  # (the last calls are stored; connections close)
        self.sample()
        warmup = self.args.warmup_s
        return {
            "benchmark": "soak",
            "minutes": self.args.minutes,
            "concurrent_calls": self.args.calls,
            "call_s": self.args.call_s,
            "calls_completed": len(self.outcomes) - self.failed,
            "calls_cut": self.cut,
            "calls_failed": self.failed,
            "slow_subscriber": {"drops": self.slow_drops, "events_read": self.slow_events},
            "rss_mb": series(self.samples, "rss_mb", warmup),
            "fds": series(self.samples, "fds", warmup),
            "threads": series(self.samples, "threads", warmup),
            "loop_lag_ms_p95": series(self.samples, "loop_lag_ms_p95", warmup),
            "loop_lag_ms_max": series(self.samples, "loop_lag_ms_max", warmup),
            "transcripts": call_load.score(self.outcomes),
            "machine": call_load.machine_info(),
            "samples": self.samples,
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--calls", type=int, default=4, help="calls at once")
    p.add_argument("--call-s", type=float, default=40.0, help="each call's length")
    p.add_argument("--abort-every", type=int, default=5, help="every n-th call is cut in the middle; 0: none")
    p.add_argument("--slow-read-s", type=float, default=2.0, help="the slow subscriber's time per event")
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=180.0, help="samples before this are left out of the slopes")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--speech-dir", type=Path, default=call_load.DEFAULT_SPEECH)
    args = p.parse_args()
    env = {"MEDIA_SERVER_EVENTS__SUBSCRIBER_QUEUE": "64"}  # (a slow subscriber is found sooner)
    server, url, token = call_load.start_server(call_load.free_port(), 120, env)
    try:
        result = asyncio.run(Soak(args, url, token, server.process.pid).run())
    finally:
        server.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
