"""Audio as every ingest adapter hands it to a call: one type, one rate rule, one way to convert.

Each protocol decodes its own wire format (mu-law, A-law, L16 big or little endian, Opus, G.722, float PCM)
into 16-bit mono samples per channel and hands them on as :class:`Audio`. Its channel's rate follows one
rule, :func:`call_rate`: 8 and 16 kHz are kept as they are (the VAD and the recogniser take both), any other
rate is resampled to 16 kHz with :class:`ToCallRate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.audio import StreamResampler, float32_to_int16, int16_to_float32

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]

#: Rates a call channel keeps as they arrive; every other rate is resampled to :data:`DEFAULT_CALL_RATE`.
CALL_RATES = (8000, 16000)
DEFAULT_CALL_RATE = 16000


@dataclass(frozen=True, slots=True)
class Audio:
    """Decoded audio of one channel: 16-bit mono samples at the channel's rate (see :func:`call_rate`)."""

    channel: int
    pcm: Int16Array
    sample_rate: int
    start_time: float | None = None  # seconds of call time, where the protocol says where it belongs (RTP)

    @property
    def duration(self) -> float:
        return self.pcm.size / self.sample_rate


def call_rate(rate: int) -> int:
    """The rate a channel of audio arriving at ``rate`` Hz carries in the call."""
    return rate if rate in CALL_RATES else DEFAULT_CALL_RATE


def to_int16(audio: Float32Array) -> Int16Array:
    """Float samples in [-1, 1] as 16-bit samples: rounded, clipped (the one conversion every adapter uses)."""
    return float32_to_int16(audio)


def to_float32(pcm: Int16Array) -> Float32Array:
    return int16_to_float32(pcm)


class ToCallRate:
    """One stream's audio, chunk by chunk, at its channel's call rate (no artefacts between chunks)."""

    def __init__(self, rate: int, channel_rate: int | None = None) -> None:
        """``channel_rate``: the rate of a channel opened at another rate, for a stream whose rate changes
        mid-call (AudioSocket follows the codec): the channel keeps its rate, so its timeline stays whole."""
        self.rate = rate
        self.call_rate = call_rate(rate) if channel_rate is None else channel_rate
        self._resampler = StreamResampler(rate, self.call_rate) if rate != self.call_rate else None

    @property
    def resamples(self) -> bool:
        return self._resampler is not None

    def __call__(self, pcm: Int16Array) -> Int16Array:
        if self._resampler is None:
            return pcm
        return to_int16(self._resampler.process(to_float32(pcm)))

    def float32(self, audio: Float32Array) -> Int16Array:
        """Float samples (Opus, Riva's float PCM) straight to the call rate."""
        if self._resampler is None:
            return to_int16(audio)
        return to_int16(self._resampler.process(audio))

    def flush(self) -> Int16Array:
        """What the resampler still holds (about 100 ms), at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        return to_int16(self._resampler.process(np.zeros(0, dtype=np.float32), last=True))
