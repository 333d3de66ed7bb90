"""A 5-minute recording transcribed as a batch (Deepgram's pre-recorded ``POST /v1/listen``, WAV and MP3; an upload
``POST /v1/calls``, stereo; ``media-server transcribe``, MP3): how long it takes, and its WER against an offline
decode of the same audio. The README's "Recorded calls" figures come from here.

    .venv/bin/python benchmarks/long_file.py [--minutes 5] [--speech-dir DIR] [--no-cli] [--no-upload]

The recording: every utterance of the speech data's manifest (``tests/data/speech``, or ``--speech-dir`` /
``SPEECH_DATA``; the 8 kHz ones resampled to 16 kHz), in manifest order, 1.2 s of silence after each, the list
repeated until the file lasts ``--minutes`` (the in-repo data is 71 s of speech, so the same utterances recur; WER
is pooled over every occurrence). The MP3 is encoded with PyAV (``tests/encoded.py``: libmp3lame, 64 kbit/s). The
stereo upload puts the same timeline on two channels, utterances alternately on the rep's (left) and the
customer's (right).

One server (``media-server serve`` in a temp dir, as the test suite starts it) takes each request in turn, alone;
the wall time is the request's, from the first byte sent to the answer (the server's model load is not in it).
``media-server transcribe`` runs as a new process: its time includes the model load.

Offline reference, faster-whisper on the bundled tiny.en (int8, all cores) with ``benchmarks/conversation_wer.py``'s
options (beam_size=1, condition_on_previous_text=False, vad_filter=False): ``offline_utterances`` decodes each
utterance whole, on its own; ``offline_file`` decodes the 16 kHz mono file as one (faster-whisper's 30 s windows).
Scoring as the speech data's README prescribes (``tests.speech.normalise``, jiwer).

Prints one JSON document; progress goes to stderr. Other work on the machine slows every figure: the load average
before and after is in the document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from call_load import log  # noqa: E402  (benchmarks/ is on sys.path when this script runs)

from media_server.client.wav import read_wav  # noqa: E402
from tests.conftest import BIN, start_server, stop_server  # noqa: E402
from tests.encoded import encode  # noqa: E402
from tests.speech import wer  # noqa: E402

DEFAULT_SPEECH = ROOT / "tests" / "data" / "speech"  # as call_load.py; elsewhere --speech-dir or SPEECH_DATA
RATE = 16000
LEAD_S = 0.5
GAP_S = 1.2
OFFLINE_OPTIONS = {  # benchmarks/conversation_wer.py's, without word timestamps (not scored here)
    "language": "en",
    "beam_size": 1,
    "condition_on_previous_text": False,
    "vad_filter": False,
}


@dataclass(frozen=True)
class Utterance:
    id: str
    ref: str
    pcm: npt.NDArray[np.int16]  # at RATE

    @property
    def duration(self) -> float:
        return len(self.pcm) / RATE


@dataclass(frozen=True)
class Timeline:
    """The utterances in order, each with the channel it is on (0 or 1; the mono file has them all)."""

    order: list[Utterance]
    starts: list[int]  # sample offsets
    samples: int

    @property
    def duration(self) -> float:
        return self.samples / RATE

    def mono(self) -> npt.NDArray[np.int16]:
        return self._track(range(len(self.order)))

    def stereo(self) -> list[npt.NDArray[np.int16]]:
        return [self._track(range(side, len(self.order), 2)) for side in (0, 1)]

    def refs(self, side: int | None = None) -> list[str]:
        return [u.ref for i, u in enumerate(self.order) if side is None or i % 2 == side]

    def _track(self, which: range) -> npt.NDArray[np.int16]:
        out = np.zeros(self.samples, dtype=np.int16)
        for i in which:
            u = self.order[i]
            out[self.starts[i] : self.starts[i] + len(u.pcm)] = u.pcm
        return out


def load(speech_dir: Path) -> list[Utterance]:
    manifest = json.loads((speech_dir / "manifest.json").read_text())
    out = [Utterance(e["id"], e["ref"], read_wav(speech_dir / e["wav"]).at_rate(RATE).channels[0]) for e in manifest]
    if not out:
        raise RuntimeError(f"no utterances in {speech_dir / 'manifest.json'}")
    return out


def timeline(utterances: list[Utterance], minutes: float) -> Timeline:
    order, starts, t = [], [], int(LEAD_S * RATE)
    while t < minutes * 60 * RATE:
        u = utterances[len(order) % len(utterances)]
        order.append(u)
        starts.append(t)
        t += len(u.pcm) + int(GAP_S * RATE)
    return Timeline(order, starts, t)


def figures(name: str, seconds: float, audio_s: float, **extra: Any) -> dict[str, Any]:
    row = {"path": name, "audio_s": round(audio_s, 1), "wall_s": round(seconds, 2)}
    row["real_time_factor"] = round(seconds / audio_s, 4)
    row["times_real_time"] = round(audio_s / seconds, 1)
    return {**row, **extra}


def prerecorded(http: httpx.Client, key: str, body: bytes, content_type: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    answer = http.post(
        "/v1/listen",
        params={"model": "nova-3", "punctuate": "true"},
        content=body,
        headers={"Authorization": f"Token {key}", "Content-Type": content_type},
    )
    took = time.monotonic() - started
    answer.raise_for_status()
    return took, answer.json()


def upload(http: httpx.Client, key: str, body: bytes) -> tuple[float, dict[str, Any]]:
    query = {"rep_id": "bench", "rep_consent": "granted", "customer_consent": "granted"}
    started = time.monotonic()
    answer = http.post(
        "/v1/calls",
        params=query,
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "audio/wav"},
    )
    took = time.monotonic() - started
    answer.raise_for_status()
    return took, answer.json()


def server_runs(line: Timeline, files: dict[str, bytes], stereo_wav: bytes | None) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "server")
        try:
            with httpx.Client(base_url=server.url, timeout=1800) as http:
                for kind, body in files.items():
                    log(f"POST /v1/listen, {kind}, {len(body) / 1e6:.1f} MB")
                    took, result = prerecorded(http, server.keys["ingest"], body, f"audio/{kind}")
                    text = result["results"]["channels"][0]["alternatives"][0]["transcript"]
                    duration = float(result["metadata"]["duration"])
                    rows.append(
                        figures(f"POST /v1/listen, {kind}", took, duration, wer=round(wer(line.refs(), [text]), 4))
                    )
                    log(json.dumps(rows[-1]))
                if stereo_wav is not None:
                    log(f"POST /v1/calls, stereo wav, {len(stereo_wav) / 1e6:.1f} MB")
                    took, call = upload(http, server.keys["ingest"], stereo_wav)
                    said = {
                        side: [s["text"] for s in call["transcript"] if s["speaker"] == speaker]
                        for side, speaker in enumerate(("rep", "customer"))
                    }
                    wers = {
                        f"wer_{speaker}": round(wer(line.refs(side), said[side]), 4)
                        for side, speaker in enumerate(("rep", "customer"))
                    }
                    rows.append(figures("POST /v1/calls, stereo wav", took, float(call["duration"]), **wers))
                    log(json.dumps(rows[-1]))
        finally:
            stop_server(server)
    return rows


def cli_run(line: Timeline, mp3: bytes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.mp3"
        path.write_bytes(mp3)
        log("media-server transcribe, mp3")
        started = time.monotonic()
        out = subprocess.run(
            [str(BIN), "transcribe", "--json", "--data-dir", str(Path(tmp) / "data"), str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp,
        )
        took = time.monotonic() - started
    segments = json.loads(out.stdout)
    return figures(
        "media-server transcribe, mp3 (model load included)",
        took,
        line.duration,
        wer=round(wer(line.refs(), [s["text"] for s in segments]), 4),
    )


def offline(line: Timeline, utterances: list[Utterance]) -> dict[str, Any]:
    from faster_whisper import WhisperModel

    from models.asr.loader import resolve_model
    from models.audio import int16_to_float32

    path, model_name = resolve_model(None, None)
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)

    def decode(pcm: npt.NDArray[np.int16]) -> str:
        found, _info = model.transcribe(int16_to_float32(pcm), **OFFLINE_OPTIONS)
        return " ".join(s.text.strip() for s in found)

    log(f"offline: {len(utterances)} utterances, each whole")
    started = time.monotonic()
    each = {u.id: decode(u.pcm) for u in utterances}
    utterances_s = time.monotonic() - started
    log("offline: the whole file")
    started = time.monotonic()
    whole = decode(line.mono())
    file_s = time.monotonic() - started
    return {
        "model": model_name,
        "options": OFFLINE_OPTIONS,
        "offline_utterances": {
            "wer": round(wer(line.refs(), [each[u.id] for u in line.order]), 4),
            "wall_s_distinct_utterances": round(utterances_s, 2),
        },
        "offline_file": figures(
            "faster-whisper, the mono file whole", file_s, line.duration, wer=round(wer(line.refs(), [whole]), 4)
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="the recording's length (at least)")
    p.add_argument("--speech-dir", type=Path, default=Path(os.environ.get("SPEECH_DATA", DEFAULT_SPEECH)))
    p.add_argument("--no-cli", action="store_true", help="leave out media-server transcribe")
    p.add_argument("--no-upload", action="store_true", help="leave out the stereo POST /v1/calls")
    args = p.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    utterances = load(args.speech_dir)
    line = timeline(utterances, args.minutes)
    mono = line.mono()
    files = {"wav": encode([mono], RATE, "wav"), "mp3": encode([mono], RATE, "mp3")}
    stereo_wav = None if args.no_upload else encode(line.stereo(), RATE, "wav")
    words = sum(len(r.split()) for r in line.refs())
    log(f"{len(line.order)} utterances ({len(utterances)} distinct), {line.duration:.1f} s, {words} words")
    rows = server_runs(line, files, stereo_wav)
    if not args.no_cli:
        rows.append(cli_run(line, files["mp3"]))
        log(json.dumps(rows[-1]))
    reference = offline(line, utterances)
    print(
        json.dumps(
            {
                "audio": {
                    "seconds": round(line.duration, 1),
                    "utterances": len(line.order),
                    "distinct_utterances": len(utterances),
                    "reference_words": words,
                    "sample_rate": RATE,
                    "mp3_bytes": len(files["mp3"]),
                    "wav_bytes": len(files["wav"]),
                },
                "runs": rows,
                **reference,
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_before": load_before,
                    "load_after": [round(x, 2) for x in os.getloadavg()],
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
