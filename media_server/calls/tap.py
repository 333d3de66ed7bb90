"""Taps on a live call's audio, for listen-in: what a manager hears, mixed at one rate.

A tap gets audio only from channels whose voices may be transcribed (consent) and are not on hold: a
participant without consent is never audible, and a channel that loses consent mid-call falls silent at
once. Each channel is resampled to the tap's rate and kept in a short FIFO; ``read`` mixes one frame of
every selected channel (silence where a channel has nothing), so the listener hears the call as it is
now. A FIFO longer than ``max_delay_s`` (audio pushed in a burst, or a stalled reader) is cut to its
newest ``keep_s``, which bounds the delay.
"""

from __future__ import annotations

import asyncio
from collections import deque

import numpy as np
import numpy.typing as npt

from media_server.audio import to_int16
from models.audio import StreamResampler, int16_to_float32

Int16Array = npt.NDArray[np.int16]


class _ChannelFifo:
    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.resampler = StreamResampler(from_rate, to_rate, quality="LQ")  # 25 ms of latency, not 100
        self.chunks: deque[npt.NDArray[np.float32]] = deque()
        self.size = 0

    def put(self, pcm: Int16Array) -> None:
        audio = self.resampler.process(int16_to_float32(pcm))
        if audio.size:
            self.chunks.append(audio)
            self.size += audio.size

    def take(self, n: int) -> npt.NDArray[np.float32]:
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n and self.chunks:
            chunk = self.chunks[0]
            k = min(n - filled, chunk.size)
            out[filled : filled + k] = chunk[:k]
            filled += k
            if k == chunk.size:
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk[k:]
        self.size -= filled
        return out

    def drop_to(self, keep: int) -> int:
        """Drop the oldest audio so that ``keep`` samples are left; how many were dropped."""
        excess = self.size - keep
        if excess > 0:
            self.take(excess)
            return excess
        return 0


class AudioTap:
    def __init__(
        self,
        sample_rate: int = 16000,
        channels: frozenset[int] | None = None,
        max_delay_s: float = 0.25,
        keep_s: float = 0.06,
    ) -> None:
        """``channels``: the channel indexes to hear, or None for all of them mixed."""
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_delay = int(max_delay_s * sample_rate)
        self.keep = int(keep_s * sample_rate)
        self.dropped_samples = 0
        self.closed = asyncio.Event()
        self._fifos: dict[int, _ChannelFifo] = {}

    def hears(self, channel: int) -> bool:
        return self.channels is None or channel in self.channels

    def put(self, channel: int, sample_rate: int, pcm: Int16Array) -> None:
        """Audio of a channel that may be heard (the call decides that before calling)."""
        if self.closed.is_set() or not self.hears(channel):
            return
        fifo = self._fifos.get(channel)
        if fifo is None:
            fifo = self._fifos[channel] = _ChannelFifo(sample_rate, self.sample_rate)
        fifo.put(pcm)
        if fifo.size > self.max_delay:
            self.dropped_samples += fifo.drop_to(self.keep)

    def silence(self, channel: int) -> None:
        """Forget what a channel had buffered (it lost consent, or went on hold)."""
        fifo = self._fifos.pop(channel, None)
        if fifo is not None:
            fifo.take(fifo.size)

    @property
    def delay_s(self) -> float:
        """How much audio waits to be heard, in seconds (the longest channel FIFO)."""
        return max((f.size for f in self._fifos.values()), default=0) / self.sample_rate

    def read(self, n: int) -> Int16Array:
        """The next ``n`` samples: the selected channels mixed (summed, clipped), silence where none spoke."""
        mixed = np.zeros(n, dtype=np.float32)
        for fifo in self._fifos.values():
            mixed += fifo.take(n)
        return to_int16(mixed)

    def close(self) -> None:
        self.closed.set()
        self._fifos.clear()
