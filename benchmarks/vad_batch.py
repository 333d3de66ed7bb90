"""What does scoring many streams' VAD chunks in one run buy? Silero's CPU cost per chunk, alone and batched.

Run from the repository root::

    .venv/bin/python benchmarks/vad_batch.py [--streams 1,4,8,16] [--seconds 20]

Two measurements, one JSON document on stdout:

- ``model``: one run of the Silero ONNX model on a batch of B chunks (8 kHz, 32 ms each, with context), CPU
  microseconds per run and per chunk, for B in 1, 2, 4, 8, 16;
- ``streams``: N live 8 kHz channels of real speech (``tel8k_sim``, each starting at another utterance) fed in
  20 ms frames, interleaved, through ``VADBatcher`` with the server's default wait (``vad.batch_wait_ms``) in an
  event loop, against the same frames scored one stream at a time (``VADStream.process``, as before the
  batcher): CPU microseconds per chunk (everything: resampling, buffering, the model), model runs, mean batch.
  The loop is not paced (as fast as the CPU goes), so the wait only matters through the "all live streams have
  a chunk" rule: this measures the batch the streams make, not latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media_server.config import Settings  # noqa: E402
from models.audio import int16_to_float32  # noqa: E402
from models.vad import SileroVAD, VADBatcher  # noqa: E402
from tests.speech import tel8k  # noqa: E402


def model_cost(vad: SileroVAD, repeats: int) -> list[dict[str, float]]:
    rows = []
    for batch in (1, 2, 4, 8, 16):
        x = (np.random.default_rng(0).standard_normal((batch, 256 + 32)) * 0.1).astype(np.float32)
        state = np.zeros((2, batch, 128), dtype=np.float32)
        for _ in range(50):
            vad.run(x, state, 8000)
        t = time.process_time()
        for _ in range(repeats):
            vad.run(x, state, 8000)
        per_run = (time.process_time() - t) / repeats * 1e6
        rows.append({"batch": batch, "us_per_run": round(per_run, 1), "us_per_chunk": round(per_run / batch, 1)})
    return rows


def channels(n: int, seconds: float) -> list[np.ndarray]:
    speech = [int16_to_float32(u.pcm) for u in tel8k()]
    gap = np.zeros(4000, dtype=np.float32)
    out = []
    for i in range(n):
        parts: list[np.ndarray] = []
        k = i
        while sum(p.size for p in parts) < seconds * 8000:
            parts += [speech[k % len(speech)], gap]
            k += 1
        out.append(np.concatenate(parts)[: int(seconds * 8000)])
    return out


async def one_at_a_time(vad: SileroVAD, audio: list[np.ndarray]) -> dict[str, float]:
    streams = [vad.new_stream(8000) for _ in audio]
    chunks = 0
    t = time.process_time()
    for offset in range(0, audio[0].size, 160):
        for stream, a in zip(streams, audio, strict=True):
            chunks += len(stream.process(a[offset : offset + 160]))
        await asyncio.sleep(0)  # as the batched run's loop does
    cpu = time.process_time() - t
    return {"us_per_chunk": round(cpu / chunks * 1e6, 1), "runs": chunks, "mean_batch": 1.0}


async def batched(vad: SileroVAD, audio: list[np.ndarray], wait_s: float) -> dict[str, float]:
    batcher = VADBatcher(vad, max_wait_s=wait_s)
    streams = [vad.new_stream(8000) for _ in audio]
    chunks = [0]

    def count(scored: list) -> None:  # type: ignore[type-arg]
        chunks[0] += len(scored)

    t = time.process_time()
    for offset in range(0, audio[0].size, 160):
        for stream, a in zip(streams, audio, strict=True):
            batcher.submit(stream, a[offset : offset + 160], count)
        await asyncio.sleep(0)
    for stream in streams:
        batcher.drain(stream)
    cpu = time.process_time() - t
    return {
        "us_per_chunk": round(cpu / chunks[0] * 1e6, 1),
        "runs": batcher.runs,
        "mean_batch": round(batcher.mean_batch, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,4,8,16")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    vad = SileroVAD()
    wait_s = Settings().vad.batch_wait_ms / 1000
    rows = []
    for n in (int(x) for x in args.streams.split(",")):
        audio = channels(n, args.seconds)
        alone = asyncio.run(one_at_a_time(vad, audio))
        together = asyncio.run(batched(vad, audio, wait_s))
        saved = 1 - together["us_per_chunk"] / alone["us_per_chunk"]
        rows.append({"streams": n, "one_at_a_time": alone, "batched": together, "cpu_saved": round(saved, 3)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    report = {"model": model_cost(vad, args.repeats), "streams": rows, "batch_wait_ms": wait_s * 1000}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
