"""Diarization error rate of the online diarizer on scripted two-speaker phone calls.

    .venv/bin/python benchmarks/diarization_der.py [--turns 16] [--seeds 3] [--vad silero|energy]
        [--wideband] [--wav CALL.wav --rttm CALL.rttm]

Each call alternates two flite voices (a sales rep in sentences, a prospect in sentences and short
replies) with pauses of 0.15-0.8 s between turns and levels varying by 6 dB, mixed onto one channel
at 16 kHz with -60 dBFS noise, then sent through a phone line: 8 kHz, G.711 mu-law encoded and decoded.
The diarizer gets the 8 kHz audio in 20 ms packets. The reference is where each utterance (trimmed of
flite's leading and trailing silence) was placed. Pairs: one female and one male voice (slt with rms,
awb, kal16), and two harder male pairs (rms+awb, awb+kal16). One-voice calls check that a single voice
is not split. ``--wav/--rttm`` also scores a real recording (pyannote.audio's wheel ships a 30 s
two-party phone call, ``pyannote/audio/sample/sample.{wav,rttm}``).

DER = (missed speech + false alarm + speaker confusion) / reference speech, on 10 ms frames, overlapping
speech allowed, hypothesis labels mapped onto reference speakers one-to-one in the way that agrees most
(as NIST md-eval does); without a collar and with a 0.25 s collar around every reference boundary.
Hypotheses scored:

- ``online``: the online labels of every window at the end of the call (``segments()``);
- ``per_word``: what the server gets labelling each word as its transcript becomes final:
  ``label_segment`` on 0.3 s pieces of speech, asked 0.5 s after the utterance's last speech (the
  recognizer's endpointing), with only the audio heard so far;
- ``per_utterance``: the same, one label for the whole utterance (speech split at 0.5 s pauses);
- ``refined``: ``refine()`` at the end of the call.

CPU: process time of feeding the call (resampling, VAD, embedding, clustering; one BLAS thread) per
second of audio. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from media_server.client.wav import read_wav  # noqa: E402
from media_server.codecs.g711 import ulaw_decode, ulaw_encode  # noqa: E402
from models.audio import int16_to_float32, resample  # noqa: E402
from models.diarization import DiarizationConfig, OnlineDiarizer, Segment, VoiceEncoder  # noqa: E402
from models.vad import SileroVAD  # noqa: E402
from tests.synth import SCRIPT, flite_available, speak  # noqa: E402

# The rep talks in sentences; the prospect also answers briefly.
REPLIES = (
    "Yes, that sounds right.",
    "Okay.",
    "Sure, send me the details.",
    "No, not yet.",
    "Hmm, I am not sure about that.",
    "Right, go on.",
    "We looked at that last year.",
    "That would help our team a lot.",
)

PAIRS = (("slt", "rms"), ("awb", "slt"), ("kal16", "slt"), ("rms", "awb"), ("awb", "kal16"))
SAME_GENDER = {("rms", "awb"), ("awb", "kal16"), ("rms", "kal16")}


@dataclass(frozen=True)
class Call:
    audio: npt.NDArray[np.float32]  # at ``rate``
    rate: int
    reference: list[tuple[float, float, str]]  # (start, end, speaker)

    @property
    def duration(self) -> float:
        return self.audio.size / self.rate


def _trimmed(voice: str, text: str) -> npt.NDArray[np.float32]:
    """flite's audio at 16 kHz without its leading and trailing silence."""
    pcm, rate = speak(text, voice)
    audio = resample(int16_to_float32(pcm), rate, 16000)
    frame = 160
    n = audio.size // frame
    level = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > level.max() - 40)
    return audio[loud[0] * frame : (loud[-1] + 1) * frame]


def synth_call(voices: tuple[str, str], turns: int = 12, seed: int = 0, phone: bool = True) -> Call:
    """``turns`` alternating utterances, ``voices[0]`` first; returns 8 kHz mu-law audio when ``phone``."""
    rng = np.random.default_rng(seed)
    rate = 16000
    pieces: list[npt.NDArray[np.float32]] = []
    reference: list[tuple[float, float, str]] = []
    t = 0.5
    for turn in range(turns):
        who = turn % 2
        if who == 0 or rng.random() < 0.5:
            text = SCRIPT[(turn // 2 + seed) % len(SCRIPT)]
        else:
            text = REPLIES[int(rng.integers(len(REPLIES)))]
        audio = _trimmed(voices[who], text) * float(10 ** (rng.uniform(-4, 2) / 20))
        reference.append((t, t + audio.size / rate, f"S{who + 1}"))
        pieces.append(audio)
        t += audio.size / rate + float(rng.uniform(0.15, 0.8))
    mix = np.zeros(round((t + 0.5) * rate), dtype=np.float32)
    for (start, _end, _who), audio in zip(reference, pieces, strict=True):
        i = round(start * rate)
        mix[i : i + audio.size] += audio
    mix += rng.normal(0, 10 ** (-60 / 20), mix.size).astype(np.float32)  # line noise, -60 dBFS
    if not phone:
        return Call(mix, rate, reference)
    narrow = resample(mix, rate, 8000)
    pcm = np.clip(np.round(narrow * 32768), -32768, 32767).astype(np.int16)
    return Call(int16_to_float32(ulaw_decode(ulaw_encode(pcm))), 8000, reference)


def _frames(segments: Sequence[tuple[float, float, str]], n: int, step: float) -> npt.NDArray[np.bool_]:
    """(frames, labels) activity matrix; labels in order of first appearance."""
    names: dict[str, int] = {}
    for _, _, label in segments:
        names.setdefault(label, len(names))
    out = np.zeros((n, max(len(names), 1)), dtype=bool)
    for start, end, label in segments:
        out[max(0, round(start / step)) : min(n, round(end / step)), names[label]] = True
    return out


def der(
    reference: Sequence[tuple[float, float, str]],
    hypothesis: Sequence[tuple[float, float, str]],
    collar: float = 0.0,
    step: float = 0.01,
) -> dict[str, float]:
    """Diarization error rate on ``step``-second frames (overlapping speech allowed on both sides).

    Per frame, with R reference and H hypothesis speakers of which C are correctly mapped: missed
    max(0, R - H), false alarm max(0, H - R), confusion min(R, H) - C; summed and divided by the sum of R.
    ``collar``: seconds either side of every reference segment boundary left unscored. Hypothesis labels
    are mapped one-to-one onto reference speakers in the way that maximises C (as md-eval does).
    """
    end = max([e for _, e, _ in [*reference, *hypothesis]], default=0.0)
    n = round(end / step) + 1
    ref = _frames(reference, n, step)
    hyp = _frames(hypothesis, n, step)
    scored = np.ones(n, dtype=bool)
    if collar > 0:
        c = round(collar / step)
        for start, stop, _ in reference:
            for edge in (round(start / step), round(stop / step)):
                scored[max(0, edge - c) : edge + c] = False
    ref, hyp = ref[scored], hyp[scored]
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    total = int(n_ref.sum())
    miss = int(np.maximum(0, n_ref - n_hyp).sum())
    false_alarm = int(np.maximum(0, n_hyp - n_ref).sum())
    agree = hyp.T.astype(np.int64) @ ref.astype(np.int64)  # (hyp label, ref label) co-active frames
    h, r = agree.shape
    if h <= r:
        correct = max(sum(int(agree[i, p[i]]) for i in range(h)) for p in itertools.permutations(range(r), h))
    else:
        correct = max(sum(int(agree[p[j], j]) for j in range(r)) for p in itertools.permutations(range(h), r))
    confusion = int(np.minimum(n_ref, n_hyp).sum()) - correct
    return {
        "der": round((miss + false_alarm + confusion) / max(total, 1), 4),
        "miss": round(miss / max(total, 1), 4),
        "false_alarm": round(false_alarm / max(total, 1), 4),
        "confusion": round(confusion / max(total, 1), 4),
    }


@dataclass
class Result:
    online: list[Segment]
    per_word: list[tuple[float, float, str]]
    per_utterance: list[tuple[float, float, str]]
    refined: list[Segment]
    first_label: str | None
    cpu_s: float
    refine_cpu_s: float
    windows: int
    speakers: int


def diarize(
    call: Call,
    encoder: VoiceEncoder,
    vad: SileroVAD | None = None,
    max_speakers: int = 2,
    packet_s: float = 0.02,
    endpoint_s: float = 0.5,
    word_s: float = 0.3,
    config: DiarizationConfig | None = None,
) -> Result:
    """Feed ``call`` in packets and label its utterances as the server would, when each one is final:
    ``endpoint_s`` of silence after its last speech region (the recognizer's endpointing). Per
    utterance: one label for all its speech. Per word: ``word_s`` pieces of its speech, one label each."""
    diarizer = OnlineDiarizer(call.rate, max_speakers, encoder=encoder, vad=vad, config=config)
    packet = round(packet_s * call.rate)
    per_word: list[tuple[float, float, str]] = []
    per_utterance: list[tuple[float, float, str]] = []
    closed = 0  # regions already in an utterance
    utterance: list[tuple[float, float]] = []  # its speech regions (seconds)

    def finalize() -> None:
        label = diarizer.label_segment(utterance[0][0], utterance[-1][1]) or "?"
        for a, b in utterance:
            per_utterance.append((a, b, label))
            for t in np.arange(a, b, word_s).tolist():
                per_word.append((t, min(t + word_s, b), diarizer.label_segment(t, min(t + word_s, b)) or "?"))
        utterance.clear()

    with threadpool_limits(1):
        t0 = time.process_time()
        labelling = 0.0
        for i in range(0, call.audio.size, packet):
            diarizer.push(call.audio[i : i + packet])
            t1 = time.process_time()
            now = (i + packet) / call.rate
            for start, end in diarizer.regions[closed:]:
                if utterance and start / 16000 - utterance[-1][1] > endpoint_s:
                    finalize()
                utterance.append((start / 16000, end / 16000))
            closed = len(diarizer.regions)
            if utterance and now - utterance[-1][1] > endpoint_s and not diarizer.in_speech:
                finalize()
            labelling += time.process_time() - t1
        diarizer.flush()
        utterance.extend((start / 16000, end / 16000) for start, end in diarizer.regions[closed:])
        if utterance:
            finalize()
        cpu = time.process_time() - t0 - labelling
        online = diarizer.segments()
        first = call.reference[0]
        first_label = diarizer.label_segment(first[0], first[1])
        t1 = time.process_time()
        refined = diarizer.refine()
        refine_cpu = time.process_time() - t1
    return Result(
        online, per_word, per_utterance, refined, first_label, cpu, refine_cpu, diarizer.windows, len(diarizer.speakers)
    )


def score(call: Call, result: Result) -> dict[str, object]:
    row: dict[str, object] = {
        "audio_s": round(call.duration, 1),
        "speakers_found": result.speakers,
        "first_speaker_is_speaker_1": result.first_label == "speaker 1",
    }
    for name, hypothesis in (
        ("online", result.online),
        ("per_word", result.per_word),
        ("per_utterance", result.per_utterance),
        ("refined", result.refined),
    ):
        row[f"{name}_der"] = der(call.reference, hypothesis)["der"]
        row[f"{name}_der_collar"] = der(call.reference, hypothesis, 0.25)["der"]
    scores = der(call.reference, result.refined)
    row["refined_miss"], row["refined_false_alarm"] = scores["miss"], scores["false_alarm"]
    row["refined_confusion"] = scores["confusion"]
    row["cpu_s_per_audio_s"] = round(result.cpu_s / call.duration, 4)
    row["refine_cpu_s"] = round(result.refine_cpu_s, 4)
    return row


def summarize(rows: Sequence[dict[str, object]]) -> dict[str, object]:
    keys = [k for k in rows[0] if k.endswith(("_der", "_der_collar", "cpu_s_per_audio_s"))]
    out: dict[str, object] = {k: round(float(np.mean([float(r[k]) for r in rows])), 4) for k in keys}  # type: ignore[arg-type]
    out["worst_refined_der"] = max(float(r["refined_der"]) for r in rows)  # type: ignore[arg-type]
    out["second_speaker_found"] = f"{sum(r['speakers_found'] == 2 for r in rows)}/{len(rows)}"
    out["first_speaker_is_speaker_1"] = f"{sum(bool(r['first_speaker_is_speaker_1']) for r in rows)}/{len(rows)}"
    return out


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.startswith("SPEAKER")]
    return [(float(f[3]), float(f[3]) + float(f[4]), f[7]) for f in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3, help="calls per pair of voices")
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero")
    parser.add_argument("--wideband", action="store_true", help="16 kHz linear audio instead of 8 kHz mu-law")
    parser.add_argument("--wav", type=Path, help="also score a real recording (16-bit WAV, mono) ...")
    parser.add_argument("--rttm", type=Path, help="... against this RTTM reference")
    args = parser.parse_args()
    if not flite_available():
        sys.exit("flite is not installed: run `make system-deps`")
    encoder = VoiceEncoder()
    vad = SileroVAD() if args.vad == "silero" else None
    phone = not args.wideband
    report: dict[str, object] = {
        "setup": {
            "turns": args.turns,
            "calls_per_pair": args.seeds,
            "speech": args.vad,
            "channel": "8 kHz G.711 mu-law" if phone else "16 kHz linear",
            "frame_s": 0.01,
            "collar_s": 0.25,
        }
    }
    pairs: dict[str, object] = {}
    every: list[dict[str, object]] = []
    for pair in PAIRS:
        rows = []
        for seed in range(args.seeds):
            call = synth_call(pair, args.turns, seed, phone=phone)
            rows.append({"seed": seed, **score(call, diarize(call, encoder, vad))})
        every.extend(rows)
        pairs["+".join(pair)] = {
            "same_gender": pair in SAME_GENDER or pair[::-1] in SAME_GENDER,
            "summary": summarize(rows),
            "calls": rows,
        }
    report["pairs"] = pairs
    report["all_two_voice_calls"] = summarize(every)
    # One voice throughout: a second speaker found here is a false split.
    monologues = {}
    for voice in ("slt", "rms", "awb", "kal16"):
        call = synth_call((voice, voice), args.turns, 7, phone=phone)
        call = Call(call.audio, call.rate, [(a, b, "S1") for a, b, _ in call.reference])
        result = diarize(call, encoder, vad)
        monologues[voice] = {
            "speakers_found": result.speakers,
            "refined_der": der(call.reference, result.refined)["der"],
        }
    report["one_voice_calls"] = monologues
    if args.wav and args.rttm:
        recording = read_wav(args.wav)
        audio = int16_to_float32(recording.channels[0])
        rate = recording.sample_rate
        if phone:
            audio, rate = resample(audio, rate, 8000), 8000
        call = Call(audio, rate, read_rttm(args.rttm))
        report["real_call"] = {"wav": args.wav.name, **score(call, diarize(call, encoder, vad))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
