"""Audio files (WAV, MP3, FLAC, OGG/Vorbis, Opus, M4A... whatever FFmpeg reads), decoded with PyAV in chunks.

:func:`open_audio` probes a file (or a file object: an uploaded body spooled to disk) and says what it holds;
:meth:`AudioFile.chunks` yields its samples resampled to one rate as 16-bit PCM, a few seconds at a time, so a long
recording is never held whole in memory. What cannot be read is an :class:`AudioFileError` whose message is one line
that says what is wrong (no such file, not readable, not audio, no audio stream).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import numpy as np

from media_server.audio import Int16Array

#: Samples per chunk handed out, in seconds of audio.
CHUNK_S = 2.0


class AudioFileError(ValueError):
    """A file that cannot be decoded as audio; the message is one line and says why."""


@dataclass
class AudioFile:
    """An opened recording. ``channels``, ``sample_rate`` and ``duration`` are the file's own (``duration`` 0 when
    the container does not say)."""

    container: Any
    name: str
    codec: str
    format: str
    channels: int
    sample_rate: int
    duration: float

    def chunks(self, rate: int, channels: int, chunk_s: float = CHUNK_S) -> Iterator[Int16Array]:
        """The audio at ``rate`` Hz as int16 arrays of shape (channels, n): ``channels`` 1 mixes down, 2 keeps a
        stereo file's left and right (a mono file is copied to both). Raises :class:`AudioFileError` for a stream
        that breaks off with data FFmpeg cannot decode."""
        layout = "mono" if channels == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        step = max(1, int(rate * chunk_s))
        held: list[Int16Array] = []
        size = 0
        stream = self.container.streams.audio[0]
        try:
            for frame in self.container.decode(stream):
                frame.pts = None  # (resample by sample count: odd timestamps in a file do not matter)
                for out in resampler.resample(frame):
                    held.append(_planes(out, channels))
                    size += held[-1].shape[1]
                    while size >= step:
                        block = np.concatenate(held, axis=1)
                        yield block[:, :step]
                        held, size = [block[:, step:]], block.shape[1] - step
            for out in resampler.resample(None):
                held.append(_planes(out, channels))
        except av.FFmpegError as exc:
            raise AudioFileError(f"{self.name}: the audio breaks off ({_why(exc)})") from None
        if held:
            rest = np.concatenate(held, axis=1)
            if rest.shape[1]:
                yield rest

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _planes(frame: Any, channels: int) -> Int16Array:
    data = frame.to_ndarray()  # packed s16: shape (1, samples * channels)
    return np.ascontiguousarray(data.reshape(-1, channels).T.astype(np.int16, copy=False))


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:200]


def open_audio(source: str | os.PathLike[str] | IO[bytes], name: str | None = None) -> AudioFile:
    """Open a recording for decoding; :class:`AudioFileError` when it is missing, unreadable or not audio."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or str(path)
        if not path.exists():
            raise AudioFileError(f"{name}: no such file")
        if path.is_dir():
            raise AudioFileError(f"{name}: is a directory, not an audio file")
        if not os.access(path, os.R_OK):
            raise AudioFileError(f"{name}: not readable (permission denied)")
        if path.stat().st_size == 0:
            raise AudioFileError(f"{name}: the file is empty")
        target: Any = str(path)
    else:
        name = name or "the audio"
        target = source
    try:
        container = av.open(target, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioFileError(
            f"{name}: not an audio file this server reads (WAV, MP3, FLAC, OGG, Opus, M4A): {_why(exc)}"
        ) from None
    except OSError as exc:
        raise AudioFileError(f"{name}: cannot be read ({_why(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise AudioFileError(f"{name}: holds no audio stream")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.rate or 0
    channels = stream.codec_context.channels or 0
    if not rate or not channels:
        container.close()
        raise AudioFileError(f"{name}: its audio stream has no sample rate or channels (not audio this server reads)")
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return AudioFile(
        container=container,
        name=name,
        codec=stream.codec_context.name,
        format=container.format.name,
        channels=channels,
        sample_rate=rate,
        duration=max(0.0, duration),
    )
