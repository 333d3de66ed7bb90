"""Sample-format helpers shared by the inference core."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

#: Whisper and the speaker models work at this rate.
MODEL_SAMPLE_RATE = 16000


def int16_to_float32(pcm: Int16Array) -> Float32Array:
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float32_to_int16(audio: Float32Array) -> Int16Array:
    """Back to 16-bit samples (after resampling), rounded and clipped."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def resample(audio: Float32Array, from_rate: int, to_rate: int) -> Float32Array:
    """Resample a whole buffer (soxr, high quality). A no-op when the rates match."""
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    out = soxr.resample(audio, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32)


class StreamResampler:
    """Resamples a stream chunk by chunk without edge artefacts between chunks."""

    def __init__(self, from_rate: int, to_rate: int, quality: str = "HQ") -> None:
        """``quality``: soxr's; "HQ" holds back about 100 ms at the start, "LQ" about 25 ms (for listening)."""
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, "float32", quality=quality)
        )

    def process(self, audio: Float32Array, last: bool = False) -> Float32Array:
        if self._stream is None:
            return audio
        return np.asarray(self._stream.resample_chunk(audio, last=last), dtype=np.float32)
