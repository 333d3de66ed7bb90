"""Offline transcription of a file through the same pipeline a live call uses (VAD, scheduler, engine).

The file is decoded with PyAV (WAV, MP3, FLAC, OGG, Opus, M4A: ``audio_files.py``) a chunk at a time and fed no
further ahead of the decoder than a few decodes, so a long recording is never held whole in memory. It is batch
work: not paced to real time, and a scheduler that also serves live calls decodes it when none of theirs waits.
``progress`` is told the seconds of audio fed so far (the CLI draws its bar from it: :class:`ProgressBar`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

from media_server.audio import call_rate
from media_server.audio_files import AudioFile
from media_server.client.wav import Recording
from models.asr.scheduler import DecodeScheduler
from models.streaming import SpeechEventType, StreamingConfig, StreamingRecognizer
from models.vad import SileroVAD

#: Decodes waiting beyond which the feed waits (bounded memory; the bar follows the transcription).
MAX_QUEUED = 4


@dataclass(frozen=True)
class FileSegment:
    speaker: str
    start: float
    end: float
    text: str


async def transcribe_audio(
    audio: AudioFile,
    vad: SileroVAD,
    scheduler: DecodeScheduler,
    config: StreamingConfig,
    progress: Callable[[float], None] | None = None,
) -> list[FileSegment]:
    """Stereo: left = rep, right = customer; mono: one speaker. Returns final segments in time order. Raises
    :class:`~media_server.audio_files.AudioFileError` for audio that breaks off."""
    config = replace(config, interim_results=False, batch=True)
    rate = call_rate(audio.sample_rate)
    speakers = ["rep", "customer"] if audio.channels >= 2 else ["speaker"]
    recognizers = [StreamingRecognizer(rate, vad, scheduler, config) for _ in speakers]
    segments: list[FileSegment] = []

    async def collect(recognizer: StreamingRecognizer, speaker: str) -> None:
        async for event in recognizer.events():
            if event.type is SpeechEventType.FINAL and event.text:
                start = event.words[0].start if event.words else event.start
                end = event.words[-1].end if event.words else event.end
                segments.append(FileSegment(speaker, start, end, event.text))

    collectors = [asyncio.create_task(collect(r, s)) for r, s in zip(recognizers, speakers, strict=True)]
    fed = 0
    try:
        for block in audio.chunks(rate, len(speakers)):
            for recognizer, pcm in zip(recognizers, block, strict=True):
                recognizer.push(pcm)
            fed += block.shape[1]
            if progress is not None:
                progress(fed / rate)
            await asyncio.sleep(0)  # decodes overlap with the VAD
            for _ in range(6000):  # (at most two minutes: a stuck decoder does not hang the command)
                if scheduler.stats().queue_depth <= MAX_QUEUED:
                    break
                await asyncio.sleep(0.02)
        for recognizer in recognizers:
            recognizer.end()
        await asyncio.gather(*collectors)
    finally:
        for task in collectors:
            task.cancel()
    return sorted(segments, key=lambda s: s.start)


async def transcribe_recording(
    recording: Recording, vad: SileroVAD, scheduler: DecodeScheduler, config: StreamingConfig
) -> list[FileSegment]:
    """A recording already in memory (mono or stereo), as :func:`transcribe_audio` transcribes a file."""
    config = replace(config, interim_results=False, batch=True)
    rate = call_rate(recording.sample_rate)
    recording = recording.at_rate(rate)
    speakers = ["rep", "customer"] if len(recording.channels) == 2 else ["speaker"]
    segments: list[FileSegment] = []

    async def run(pcm: object, speaker: str) -> None:
        recognizer = StreamingRecognizer(rate, vad, scheduler, config)

        async def collect() -> None:
            async for event in recognizer.events():
                if event.type is SpeechEventType.FINAL and event.text:
                    start = event.words[0].start if event.words else event.start
                    end = event.words[-1].end if event.words else event.end
                    segments.append(FileSegment(speaker, start, end, event.text))

        collector = asyncio.create_task(collect())
        chunk = rate  # one second at a time, yielding so decodes overlap with VAD
        for offset in range(0, len(pcm), chunk):  # type: ignore[arg-type]
            recognizer.push(pcm[offset : offset + chunk])  # type: ignore[index]
            await asyncio.sleep(0)
        recognizer.end()
        await collector

    await asyncio.gather(*(run(ch, sp) for ch, sp in zip(recording.channels, speakers, strict=True)))
    return sorted(segments, key=lambda s: s.start)


class ProgressBar:
    """A one-line bar on a terminal (``stream``: stderr), redrawn at most ten times a second; nothing at all when
    the stream is not a terminal (piped, redirected, in a test), so output meant for programs stays clean."""

    WIDTH = 30

    def __init__(self, name: str, total_s: float, stream: TextIO | None = None, min_total_s: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.name = name
        self.total_s = total_s
        self.enabled = self.stream.isatty() and (total_s <= 0 or total_s >= min_total_s)
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, done_s: float) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._drawn < 0.1:
            return
        self._drawn = now
        self.stream.write("\r" + self.line(done_s, now - self.started))
        self.stream.flush()

    def line(self, done_s: float, elapsed_s: float) -> str:
        speed = f"{done_s / elapsed_s:5.1f}x" if elapsed_s > 0 else ""
        if self.total_s > 0:
            share = min(1.0, done_s / self.total_s)
            bar = "#" * int(share * self.WIDTH)
            return (
                f"transcribing {self.name} [{bar:<{self.WIDTH}}] {share:4.0%} "
                f"{_clock(done_s)} / {_clock(self.total_s)} {speed}"
            )
        return f"transcribing {self.name} {_clock(done_s)} {speed}"

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")  # the bar goes; the transcript follows on stdout
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
