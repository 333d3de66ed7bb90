"""Reading WAV files into per-channel int16 arrays."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media_server.audio import to_float32, to_int16
from models.audio import resample


@dataclass
class Recording:
    channels: list[npt.NDArray[np.int16]]  # one array per channel, equal lengths
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.channels[0]) / self.sample_rate if self.channels else 0.0

    def at_rate(self, rate: int) -> Recording:
        if rate == self.sample_rate:
            return self
        out = []
        for ch in self.channels:
            out.append(to_int16(resample(to_float32(ch), self.sample_rate, rate)))
        return Recording(out, rate)


def read_wav(path: str | Path) -> Recording:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported (got {8 * w.getsampwidth()}-bit)")
        n_channels = w.getnchannels()
        if n_channels not in (1, 2):
            raise ValueError(f"{path}: expected a mono or stereo file, got {n_channels} channels")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
        rate = w.getframerate()
    frames = data.reshape(-1, n_channels)
    return Recording([frames[:, i].copy() for i in range(n_channels)], rate)


def write_wav(path: str | Path, recording: Recording) -> None:
    interleaved = np.stack(recording.channels, axis=1).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(recording.channels))
        w.setsampwidth(2)
        w.setframerate(recording.sample_rate)
        w.writeframes(interleaved.tobytes())
