"""Test speech from tests/data/speech (or ``SPEECH_DATA``), and WER scoring as its README prescribes."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jiwer
import numpy as np
import numpy.typing as npt
from num2words import num2words

from media_server.client.wav import Recording, read_wav

SPEECH_DIR = Path(os.environ.get("SPEECH_DATA", Path(__file__).resolve().parent / "data" / "speech"))


@dataclass(frozen=True)
class Utterance:
    id: str
    ref: str
    pcm: npt.NDArray[np.int16]
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@cache
def tel8k() -> list[Utterance]:
    """The simulated 8 kHz phone-channel utterances (tel8k_sim), with their references."""
    manifest = json.loads((SPEECH_DIR / "manifest.json").read_text())
    out = []
    for entry in manifest:
        if entry["set"] != "tel8k_sim":
            continue
        rec = read_wav(SPEECH_DIR / entry["wav"])
        out.append(Utterance(entry["id"], entry["ref"], rec.channels[0], rec.sample_rate))
    if not out:
        raise RuntimeError(f"no tel8k_sim utterances in {SPEECH_DIR}")
    return out


@dataclass(frozen=True)
class Program:
    """Utterances laid out on a timeline, separated by silence."""

    pcm: npt.NDArray[np.int16]
    sample_rate: int
    spans: list[tuple[float, float, Utterance]]  # (start, end) in seconds

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


def program(utterances: list[Utterance], gap_s: float = 1.2, lead_s: float = 0.5) -> Program:
    rate = utterances[0].sample_rate
    parts = [np.zeros(int(lead_s * rate), dtype=np.int16)]
    spans = []
    t = lead_s
    for u in utterances:
        parts.append(u.pcm)
        spans.append((t, t + u.duration, u))
        t += u.duration
        parts.append(np.zeros(int(gap_s * rate), dtype=np.int16))
        t += gap_s
    return Program(np.concatenate(parts), rate, spans)


def said_twice(utterance: Utterance, pause_s: float) -> npt.NDArray[np.int16]:
    """The utterance's speech (its own silence at either end cut off), a pause of digital silence, the speech
    again, then 1.5 s of silence: one utterance or two, as the endpointing decides."""
    loud = np.flatnonzero(np.abs(utterance.pcm) > 1000)
    speech = utterance.pcm[loud[0] : loud[-1] + 1]
    rate = utterance.sample_rate
    lead, pause, tail = (np.zeros(int(s * rate), dtype=np.int16) for s in (0.3, pause_s, 1.5))
    return np.concatenate([lead, speech, pause, speech, tail])


def stereo(rep: Program, customer: Program) -> Recording:
    n = max(len(rep.pcm), len(customer.pcm))
    return Recording(
        [np.pad(rep.pcm, (0, n - len(rep.pcm))), np.pad(customer.pcm, (0, n - len(customer.pcm)))], rep.sample_rate
    )


def normalise(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"\d+", lambda m: " " + num2words(int(m.group())) + " ", text)
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = text.replace("mr ", "mister ")
    return re.sub(r"\s+", " ", text).strip()


def wer(references: list[str], hypotheses: list[str]) -> float:
    return float(jiwer.wer(" ".join(normalise(r) for r in references), " ".join(normalise(h) for h in hypotheses)))
