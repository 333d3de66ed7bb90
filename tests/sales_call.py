"""A scripted two-party sales call spoken by two flite voices, with where every turn lies on the timeline.

The script holds what the insights must find: a competitor (Zorvexa) and pricing, a card number spoken as
digits, questions on both sides, a long rep monologue, and the rep interrupting the customer. Stereo
(rep left, customer right) for channel = speaker, and a mono mix for diarization.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from media_server.client.wav import Recording
from tests.synth import speak

RATE = 16000
VOICES = {"rep": "rms", "customer": "slt"}  # a male and a female voice
CARD_DIGITS = "4556737586899855"  # a Luhn-valid test card number

# (speaker, text, seconds of pause before the turn; negative: it starts before the previous turn ended)
SCRIPT: tuple[tuple[str, str, float], ...] = (
    (
        "rep",
        "Hi, this is Dana from Acme. Thanks for taking the time today. How is your current dialer working out?",
        0.8,
    ),
    ("customer", "Honestly, not great. We are also looking at Zorvexa, because their price was lower.", 0.7),
    (
        "rep",
        "I understand. Let me walk you through what we do. Our platform records every call, transcribes it live, "
        "and shows your reps coaching prompts while they talk. Managers can listen in from the browser, and every "
        "call is searchable the moment it ends. Teams that switched to us from older tools usually see their ramp "
        "time drop within the first quarter, and the integration with your CRM takes about a day to set up.",
        0.6,
    ),
    ("customer", "That sounds useful. Can you send me the pricing for twenty seats?", 0.7),
    (
        "customer",
        "Before we go any further, our security team needs to review every vendor, and that usually takes a few weeks.",
        0.5,
    ),
    ("rep", "Sure, we can start that review today.", -1.2),
    (
        "customer",
        "Great. For the pilot deposit, the card number is four five five six, seven three seven five, "
        "eight six eight nine, nine eight five five.",
        0.8,
    ),
    ("rep", "Thank you. I will follow up with the next steps by email. Does Tuesday work for you?", 0.8),
)


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class SalesCall:
    rep: npt.NDArray[np.int16]
    customer: npt.NDArray[np.int16]
    turns: tuple[Turn, ...]

    @property
    def duration(self) -> float:
        return len(self.rep) / RATE

    def stereo(self) -> Recording:
        return Recording([self.rep, self.customer], RATE)

    def mono(self) -> Recording:
        mixed = np.clip(self.rep.astype(np.int32) + self.customer.astype(np.int32), -32768, 32767)
        return Recording([mixed.astype(np.int16)], RATE)

    def talk(self, speaker: str) -> float:
        return sum(t.end - t.start for t in self.turns if t.speaker == speaker)

    def turn(self, speaker: str, containing: str) -> Turn:
        return next(t for t in self.turns if t.speaker == speaker and containing in t.text)


def _voice(text: str, voice: str) -> npt.NDArray[np.int16]:
    pcm, rate = speak(text, voice)
    if rate != RATE:
        pcm = Recording([pcm], rate).at_rate(RATE).channels[0]
    return pcm


@cache
def sales_call(tail_s: float = 2.5) -> SalesCall:
    placed: list[tuple[str, str, int, npt.NDArray[np.int16]]] = []
    cursor = 0
    for speaker, text, pause in SCRIPT:
        pcm = _voice(text, VOICES[speaker])
        start = max(0, cursor + int(pause * RATE))
        placed.append((speaker, text, start, pcm))
        cursor = max(cursor, start + len(pcm))
    n = cursor + int(tail_s * RATE)
    tracks = {"rep": np.zeros(n, dtype=np.int16), "customer": np.zeros(n, dtype=np.int16)}
    turns = []
    for speaker, text, start, pcm in placed:
        tracks[speaker][start : start + len(pcm)] = pcm
        turns.append(Turn(speaker, text, start / RATE, (start + len(pcm)) / RATE))
    return SalesCall(tracks["rep"], tracks["customer"], tuple(turns))
