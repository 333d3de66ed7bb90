"""Recordings encoded with PyAV (WAV, MP3, FLAC, OGG/Opus), as users have them, for the upload and CLI tests."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt

FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
    "ogg": ("ogg", "libopus"),
}


def encode(channels: list[npt.NDArray[np.int16]], rate: int, kind: str) -> bytes:
    """``channels`` (equal lengths, int16) at ``rate`` as a file of ``kind`` (wav, mp3, flac, ogg: Opus in OGG)."""
    container, codec = FORMATS[kind]
    layout = "mono" if len(channels) == 1 else "stereo"
    if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError(f"opus does not take {rate} Hz")
    interleaved = np.stack(channels, axis=1).astype(np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as file:
        stream = file.add_stream(codec, rate=rate, layout=layout)
        if codec != "pcm_s16le" and codec != "flac":
            stream.bit_rate = 64000 * len(channels)  # (LAME's default at 8 kHz is 8 kbit/s: telephone at its worst)
        step = 960
        for offset in range(0, len(interleaved), step):
            block = np.ascontiguousarray(interleaved[offset : offset + step].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    return out.getvalue()
