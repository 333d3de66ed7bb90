"""What batching the speaker encoder across channels saves: N mixed channels diarized one by one vs together.

    .venv/bin/python benchmarks/diarization_batch.py [--channels 1,4,8,16] [--seconds 30] [--speed 4]

Each channel is ``--seconds`` of real speech (the ``tel8k_sim`` utterances of the shared speech data, each channel
in its own order, 0.6 s pauses), 8 kHz, fed in 20 ms packets, all channels side by side, paced at ``--speed`` x
real time. Two ways, each with the server's Silero VAD and one BLAS thread, as the server runs them:

- ``alone``: each channel's ``OnlineDiarizer.push`` embeds its own windows as they complete (before batching);
- ``batched``: the channels are lanes of one ``EmbeddingBatcher`` (its ``max_wait_s`` scaled by ``--speed``, so
  that batches fill as they would at real time), which embeds the windows of all channels together.

CPU is the process time of the whole run (resampling, VAD, windows, encoder, clustering) per second of channel
audio; the encoder's share is measured alone too (ms per 1.5 s window at each batch size). Both ways must give
the same d-vectors (max difference printed). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from media_server.client.wav import read_wav  # noqa: E402
from models.diarization import OnlineDiarizer, VoiceEncoder  # noqa: E402
from models.diarization.batcher import EmbeddingBatcher  # noqa: E402
from models.vad import SileroVAD  # noqa: E402

DEFAULT_SPEECH = ROOT / "tests" / "data" / "speech"  # as call_load.py; elsewhere --speech-dir or SPEECH_DATA
RATE = 8000
PACKET = RATE // 50


def channels_audio(n: int, seconds: float, speech: Path) -> list[npt.NDArray[np.int16]]:
    manifest = json.loads((speech / "manifest.json").read_text())
    utterances = [read_wav(speech / e["wav"]).at_rate(RATE).channels[0] for e in manifest if e["set"] == "tel8k_sim"]
    pause = np.zeros(round(0.6 * RATE), dtype=np.int16)
    out = []
    for channel in range(n):
        parts: list[npt.NDArray[np.int16]] = []
        k = channel
        while sum(p.size for p in parts) < seconds * RATE:
            parts += [utterances[k % len(utterances)], pause]
            k += 1 + channel % 3
        out.append(np.concatenate(parts)[: round(seconds * RATE)])
    return out


def paced(audio: list[npt.NDArray[np.int16]], speed: float) -> Any:
    """(packet index, packet of each channel), at ``speed`` x real time."""
    began = time.monotonic()
    for k in range(max(a.size for a in audio) // PACKET):
        yield [a[k * PACKET : (k + 1) * PACKET] for a in audio]
        time.sleep(max(0.0, began + (k + 1) * 0.02 / speed - time.monotonic()))


def run_alone(audio: list[npt.NDArray[np.int16]], encoder: VoiceEncoder, vad: SileroVAD, speed: float) -> Any:
    diarizers = [OnlineDiarizer(RATE, encoder=encoder, vad=vad) for _ in audio]
    cpu = time.process_time()
    for packets in paced(audio, speed):
        for diarizer, packet in zip(diarizers, packets, strict=True):
            diarizer.push(packet)
    return time.process_time() - cpu, [d._clusterer.embeddings for d in diarizers], {}


def run_batched(audio: list[npt.NDArray[np.int16]], encoder: VoiceEncoder, vad: SileroVAD, speed: float) -> Any:
    batcher = EmbeddingBatcher(encoder, max_wait_s=1.0 / speed)
    try:
        lanes = [batcher.attach(OnlineDiarizer(RATE, encoder=encoder, vad=vad)) for _ in audio]
        cpu = time.process_time()
        for packets in paced(audio, speed):
            for lane, packet in zip(lanes, packets, strict=True):
                lane.feed(packet)
        embeddings = [lane.run(lambda d: d._clusterer.embeddings).result(600) for lane in lanes]
        spent = time.process_time() - cpu
        stats = batcher.stats()
        return spent, embeddings, {"batches": stats.batches, "mean_batch_size": stats.mean_batch_size}
    finally:
        batcher.close()


def encoder_costs(encoder: VoiceEncoder, sizes: list[int]) -> dict[int, float]:
    rng = np.random.default_rng(0)
    windows = [rng.standard_normal(24000).astype(np.float32) * 0.1 for _ in range(max(sizes) * 2)]
    out = {}
    for size in sizes:
        encoder.embed_windows(windows[:size])
        began = time.process_time()
        for first in range(0, len(windows), size):
            encoder.embed_windows(windows[first : first + size])
        out[size] = round(1000 * (time.process_time() - began) / len(windows), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", default="1,4,8,16")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--speech-dir", type=Path, default=Path(os.environ.get("SPEECH_DATA", str(DEFAULT_SPEECH))))
    args = parser.parse_args()
    threadpool_limits(1)
    encoder, vad = VoiceEncoder(), SileroVAD()
    report: dict[str, Any] = {"encoder_ms_per_window": encoder_costs(encoder, [1, 2, 4, 8, 16, 32]), "runs": []}
    print(f"encoder, ms of CPU per 1.5 s window by batch size: {report['encoder_ms_per_window']}", file=sys.stderr)
    for n in [int(x) for x in args.channels.split(",")]:
        audio = channels_audio(n, args.seconds, args.speech_dir)
        seconds = n * args.seconds
        alone_cpu, alone_embeddings, _ = run_alone(audio, encoder, vad, args.speed)
        batched_cpu, batched_embeddings, stats = run_batched(audio, encoder, vad, args.speed)
        difference = max(float(np.abs(a - b).max()) for a, b in zip(alone_embeddings, batched_embeddings, strict=True))
        row = {
            "channels": n,
            "windows": sum(len(e) for e in alone_embeddings),
            "alone_ms_per_s": round(1000 * alone_cpu / seconds, 2),
            "batched_ms_per_s": round(1000 * batched_cpu / seconds, 2),
            **stats,
            "max_embedding_difference": difference,
        }
        report["runs"].append(row)
        print(row, file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
