"""The decode scheduler on the real engine: how fast it decodes, and what a 50 ms interim age drops under overload.

    .venv/bin/python benchmarks/scheduler.py [--runs 3] [--cpu-threads 2]

(These were timed asserts in ``tests/test_scheduler.py``, which now checks the scheduler's rules on the fake
engine.) Per run, with Whisper (CTranslate2, the server's default model) behind a ``DecodeScheduler``:

- ``real_time_factor``: the telephone utterances of tests/data/speech decoded as finals one at a time: compute
  seconds per second of audio (the suite asserted under 1).
- overload: nine requests at once (every third a final) with ``interim_max_age_s`` 0.05: how many interims were
  dropped as stale and whether every final was decoded (the suite asserted some drops and no final lost).

Prints one JSON document: each run's figures and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.asr.engine import DecodeRequest, Hypothesis  # noqa: E402
from models.asr.scheduler import DecodeScheduler, InterimDropped  # noqa: E402
from models.asr.whisper_ct2 import WhisperCT2Engine  # noqa: E402
from models.audio import int16_to_float32, resample  # noqa: E402
from tests.speech import tel8k  # noqa: E402

INTERIM_MAX_AGE_S = 0.05


def utterances() -> list[DecodeRequest]:
    return [DecodeRequest(audio=resample(int16_to_float32(u.pcm), 8000, 16000), final=True) for u in tel8k()]


async def real_time_factor(engine: WhisperCT2Engine) -> dict[str, Any]:
    sched = DecodeScheduler(engine, max_batch=1)
    try:
        for request in utterances():
            await sched.decode(request)
        stats = sched.stats()
    finally:
        sched.close()
    return {"real_time_factor": round(stats.real_time_factor, 3), "mean_decode_s": round(stats.mean_batch_seconds, 3)}


async def overload(engine: WhisperCT2Engine) -> dict[str, Any]:
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=INTERIM_MAX_AGE_S)
    speech = utterances()
    requests = [DecodeRequest(audio=speech[i % len(speech)].audio, final=i % 3 == 0) for i in range(9)]
    try:
        results = await asyncio.gather(*(sched.decode(r) for r in requests), return_exceptions=True)
        dropped = sched.stats().interims_dropped
    finally:
        sched.close()
    finals = [r for q, r in zip(requests, results, strict=True) if q.final]
    return {
        "interims": sum(1 for q in requests if not q.final),
        "interims_dropped": dropped,
        "interims_dropped_seen": sum(1 for r in results if isinstance(r, InterimDropped)),
        "finals": len(finals),
        "finals_decoded": sum(1 for r in finals if isinstance(r, Hypothesis) and r.text),
    }


async def run(runs: int, cpu_threads: int) -> dict[str, Any]:
    engine = WhisperCT2Engine(cpu_threads=cpu_threads)
    results = []
    for _ in range(runs):
        results.append({**await real_time_factor(engine), **await overload(engine)})
    return {
        "engine": engine.name,
        "cpu_threads": cpu_threads,
        "interim_max_age_s": INTERIM_MAX_AGE_S,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "runs": results,
        "median_real_time_factor": round(statistics.median(r["real_time_factor"] for r in results), 3),
        "median_interims_dropped": statistics.median(r["interims_dropped"] for r in results),
        "finals_lost": sum(r["finals"] - r["finals_decoded"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu-threads", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.runs, args.cpu_threads)), indent=2))


if __name__ == "__main__":
    main()
