"""An aiortc audio track that plays an ``AudioTap``: 20 ms frames, paced by the clock like a microphone."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media_server.calls.tap import AudioTap

PTIME_S = 0.02


class TapTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, tap: AudioTap) -> None:
        super().__init__()
        self.tap = tap
        self.rate = tap.sample_rate
        self.samples = int(self.rate * PTIME_S)
        self._start: float | None = None
        self._timestamp = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live" or self.tap.closed.is_set():
            self.stop()
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._timestamp += self.samples
            wait = self._start + self._timestamp / self.rate - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = self.tap.read(self.samples)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame
