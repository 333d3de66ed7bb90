"""Deepgram's binary frames: raw interleaved audio (linear16, mulaw or alaw) in, 16-bit audio per call channel out
(mixed down unless ``multichannel``, at the channel's call rate: :func:`media_server.audio.call_rate`)."""

from __future__ import annotations

import numpy as np

from media_server.audio import Int16Array, ToCallRate
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.ingest.deepgram.options import ListenOptions


class AudioError(ValueError):
    """A binary frame that is not whole samples of every channel."""


class AudioDecoder:
    """Binary frames of interleaved audio in, int16 audio per call channel out (mixed down unless multichannel,
    resampled to 16 kHz when the stream's rate is not one the recognizer takes)."""

    def __init__(self, options: ListenOptions) -> None:
        self.encoding = options.encoding
        self.channels = options.channels
        self.multichannel = options.multichannel and options.channels > 1
        self.sample_rate = options.sample_rate
        self.call_rate = options.call_rate  # the rate of what decode returns
        self.frames = 0  # samples per channel received
        width = 2 if self.encoding == "linear16" else 1
        self._frame_bytes = width * self.channels
        outputs = self.channels if self.multichannel else 1
        self._to_call_rate = [ToCallRate(self.sample_rate) for _ in range(outputs)]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def decode(self, data: bytes) -> list[Int16Array]:
        """One frame: the audio of each call channel (index = position in the list)."""
        if self.encoding == "linear16" and len(data) % 2:
            raise AudioError(f"linear16 audio is whole 16-bit samples: a frame of {len(data)} bytes has half a sample")
        if len(data) % self._frame_bytes:
            raise AudioError(
                f"a frame of {len(data)} bytes is not whole samples of {self.channels} interleaved channels "
                f"({self._frame_bytes} bytes each)"
            )
        if self.encoding == "linear16":
            pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        elif self.encoding == "mulaw":
            pcm = ulaw_decode(data)
        else:
            pcm = alaw_decode(data)
        frames = pcm.reshape(-1, self.channels)
        self.frames += frames.shape[0]
        if self.multichannel:
            out = [np.ascontiguousarray(frames[:, i]) for i in range(self.channels)]
        elif self.channels == 1:
            out = [frames[:, 0].copy()]
        else:
            out = [np.round(frames.astype(np.float32).mean(axis=1)).astype(np.int16)]
        return [convert(a) for convert, a in zip(self._to_call_rate, out, strict=True)]

    def flush(self) -> list[Int16Array]:
        """What the resamplers still hold, at the end of the stream."""
        return [convert.flush() for convert in self._to_call_rate if convert.resamples]
