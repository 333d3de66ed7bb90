"""A fake speech engine and a fake VAD, so that calls, consent, redaction and insights run without a model.

After LiveKit's ``tests/fake_stt.py`` and ``tests/fake_vad.py``, with one difference: the fake engine really hears
the audio it is given. A :class:`Voice` speaks text as tones, one tone burst per word at a frequency of the word's
own, separated by short gaps; :class:`FakeEngine` finds the bursts in a decode request's audio and names each by
its frequency. So the whole path runs as with the real model (VAD endpointing, interims of the first part of an
utterance, finals, word timings, the decode scheduler) and what a test says is what comes out, word for word and
at the time it was said. :class:`FakeVAD` hears speech wherever the audio's energy is above a threshold.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis, Word
from models.audio import MODEL_SAMPLE_RATE, Float32Array
from models.vad.silero import SileroVAD, VADChunk, VADStream

Int16 = npt.NDArray[np.int16]

_LOWEST_HZ = 300.0  # inside the telephone band (300-3400 Hz) at 8 kHz
_STEP_HZ = 25.0  # between two words' tones: many FFT bins apart in a word's burst
_HIGHEST_HZ = 3400.0
_FRAME_S = 0.01  # the engine's energy frames


class Voice:
    """Speaks text as tones the fake engine hears back: each word (split on spaces) is a ``word_s`` burst at its
    own frequency, words are ``gap_s`` apart. Share one voice between the audio a test makes and its engine."""

    def __init__(self, word_s: float = 0.3, gap_s: float = 0.1, level: float = 0.3) -> None:
        self.word_s = word_s
        self.gap_s = gap_s
        self.level = level
        self._tones: dict[str, float] = {}
        self._lock = threading.Lock()  # the engine reads the vocabulary from the scheduler's threads

    def tone(self, word: str) -> float:
        """The frequency of ``word`` (given on first use)."""
        with self._lock:
            if word not in self._tones:
                hz = _LOWEST_HZ + _STEP_HZ * len(self._tones)
                if hz > _HIGHEST_HZ:
                    raise ValueError(f"the fake voice knows {len(self._tones)} words, its most")
                self._tones[word] = hz
            return self._tones[word]

    def word_for(self, hz: float) -> str | None:
        """The word whose tone is nearest ``hz`` (within half a step), if any."""
        with self._lock:
            best = min(self._tones.items(), key=lambda item: abs(item[1] - hz), default=None)
        return best[0] if best is not None and abs(best[1] - hz) < _STEP_HZ / 2 else None

    def say(self, text: str, sample_rate: int) -> Int16:
        """``text`` spoken at ``sample_rate``: its words' bursts with ``gap_s`` between them (none around)."""
        burst = int(self.word_s * sample_rate)
        gap = np.zeros(int(self.gap_s * sample_rate), dtype=np.float32)
        t = np.arange(burst) / sample_rate
        ramp = np.minimum(1.0, np.minimum(np.arange(burst), np.arange(burst)[::-1]) / (0.005 * sample_rate))
        parts: list[npt.NDArray[np.float32]] = []
        for i, word in enumerate(text.split()):
            if i:
                parts.append(gap)
            parts.append((self.level * ramp * np.sin(2 * np.pi * self.tone(word) * t)).astype(np.float32))
        audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return np.round(audio * 32767).astype(np.int16)

    def duration(self, text: str) -> float:
        """Seconds that :meth:`say` takes for ``text``."""
        n = len(text.split())
        return n * self.word_s + max(0, n - 1) * self.gap_s


def silence(seconds: float, sample_rate: int) -> Int16:
    return np.zeros(int(seconds * sample_rate), dtype=np.int16)


@dataclass
class FakeEngine:
    """A :class:`~models.asr.engine.SpeechEngine` that hears a :class:`Voice`: every burst of tone in the audio
        is a word, named by its frequency, timed where it is. Unknown tones and bursts shorter than ``min_word_s`` are
        not words. ``requests`` keeps every request decoded (their hotwords, finals and lengths) and ``heard`` the text
    of each, in order."""

    voice: Voice
    min_word_s: float = 0.15  # half a word: the cut-off end of an interim's audio is not one yet
    threshold: float = 0.02  # RMS of a 10 ms frame that is part of a word
    name: str = "fake"
    device: str = "cpu"
    capabilities: EngineCapabilities = field(default_factory=EngineCapabilities)
    requests: list[DecodeRequest] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    segmented_delay_s: float = 0.0  # how long a ``segmented`` request (a long turn's cut) takes to decode

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        hypotheses = [self.hear(r.audio, segmented=r.segmented) for r in requests]
        if self.segmented_delay_s and any(r.segmented for r in requests):
            time.sleep(self.segmented_delay_s)
        self.requests.extend(requests)
        self.heard.extend(h.text for h in hypotheses)
        return hypotheses

    def hear(self, audio: Float32Array, sample_rate: int = MODEL_SAMPLE_RATE, segmented: bool = False) -> Hypothesis:
        """The words of ``audio``; ``segmented``: also where each sentence starts (after a word ending in ".",
        "?" or "!"), as Whisper's segments would say."""
        words = []
        for start, end in _bursts(audio, sample_rate, self.threshold):
            if (end - start) / sample_rate < self.min_word_s:
                continue
            word = self.voice.word_for(_pitch(audio[start:end], sample_rate))
            if word is not None:
                words.append(Word(word, round(start / sample_rate, 3), round(end / sample_rate, 3), 0.9))
        segments: tuple[float, ...] = ()
        if segmented and words:
            ends = (".", "?", "!")
            segments = (words[0].start, *(w.start for p, w in itertools.pairwise(words) if p.word.endswith(ends)))
        return Hypothesis(text=" ".join(w.word for w in words), words=tuple(words), segments=segments)


def _bursts(audio: Float32Array, sample_rate: int, threshold: float) -> list[tuple[int, int]]:
    """(start, end) samples of each run of 10 ms frames louder than ``threshold``."""
    hop = int(_FRAME_S * sample_rate)
    frames = audio.size // hop
    if frames == 0:
        return []
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1))
    loud = np.concatenate([[False], rms > threshold, [False]])
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    return [(int(a) * hop, int(b) * hop) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _pitch(burst: Float32Array, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(burst * np.hanning(burst.size)))
    return float(np.argmax(spectrum)) * sample_rate / burst.size


class FakeVAD(SileroVAD):
    """Speech wherever a chunk's RMS is above ``threshold`` (probability 1.0, else 0.0); no model is loaded."""

    def __init__(self, threshold: float = 0.02) -> None:  # no super().__init__: there is no ONNX session
        self.threshold = threshold
        self.batcher = None  # each stream scored as its audio comes

    def new_stream(self, sample_rate: int) -> VADStream:
        return FakeVADStream(sample_rate, self.threshold)


class FakeVADStream(VADStream):
    """Scores 32 ms chunks (Silero's 512 samples at 16 kHz, 256 at 8 kHz) at the stream's own rate."""

    def __init__(self, sample_rate: int, threshold: float) -> None:  # no super().__init__: no model state
        if sample_rate <= 0:
            raise ValueError(f"invalid sample rate {sample_rate}")
        self.input_rate = self.rate = sample_rate
        self.chunk = max(1, sample_rate * 32 // 1000)
        self.threshold = threshold
        self._pending = np.zeros(0, dtype=np.float32)
        self._consumed = 0

    def process(self, audio: Float32Array) -> list[VADChunk]:
        if self._pending.size:
            audio = np.concatenate([self._pending, audio])
        n = audio.size // self.chunk
        self._pending = audio[n * self.chunk :].copy()
        out = []
        for i in range(n):
            chunk = audio[i * self.chunk : (i + 1) * self.chunk].astype(np.float64)
            self._consumed += self.chunk
            loud = float(np.sqrt(np.mean(chunk**2))) > self.threshold
            out.append(VADChunk(end=self._consumed, probability=1.0 if loud else 0.0))
        return out
