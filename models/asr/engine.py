"""The speech-recognition engine interface (after LiveKit's ``STT``): backends decode whole utterances.

Streaming is built on top (``models.streaming``): VAD cuts each channel into utterances, the open
utterance is re-decoded for interim results and decoded once more, completely, for the final.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from models.audio import Float32Array


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the decoded audio
    end: float
    confidence: float


@dataclass(frozen=True)
class Hypothesis:
    text: str
    words: tuple[Word, ...] = ()
    segments: tuple[float, ...] = ()  # where each segment starts (s), for a ``segmented`` request an engine can split

    @property
    def confidence(self) -> float:
        if not self.words:
            return 0.0
        return sum(w.confidence for w in self.words) / len(self.words)


@dataclass
class DecodeRequest:
    """One piece of decode work: 16 kHz mono float32 audio of one utterance (or its first part)."""

    audio: Float32Array
    final: bool
    prompt: str | None = None  # text that came before (context for the decoder)
    hotwords: Sequence[str] = field(default_factory=tuple)  # keyterms to favour
    prefix: str | None = None  # text the transcript must start with (already shown as stable)
    # Decode as offline decoding does (timestamps, Whisper's own window) and say where its segments start.
    segmented: bool = False
    # Whose work this is, for a fair share of the device: opaque to the core (the server passes the team). Each key
    # with work waiting gets a turn before any key gets a second one.
    fairness_key: str = ""
    # Work meant to run faster than real time (a whole recording): decoded only when no live work waits.
    batch: bool = False


@dataclass(frozen=True)
class EngineCapabilities:
    streaming: bool = False  # native incremental decoding
    interim_results: bool = True  # cheap enough to re-decode for interims
    word_timestamps: bool = True
    batching: bool = False  # decode_batch really runs one batched model call
    diarization: bool = False


class SpeechEngine(Protocol):
    """A loaded model on one device. ``decode_batch`` blocks; only the scheduler's thread calls it."""

    name: str
    device: str
    capabilities: EngineCapabilities

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]: ...


def text_prefix(text: str, words: Sequence[Word]) -> str:
    """The part of ``text`` that spells ``words`` (which may split it differently from spaces)."""
    pos = 0
    for word in words:
        found = text.find(word.word, pos)
        if found < 0:
            break
        pos = found + len(word.word)
    return text[:pos]
