"""Offline transcription of a file through the same pipeline a live call uses (VAD, scheduler, engine)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from media_server.audio import call_rate
from media_server.client.wav import Recording
from models.asr.scheduler import DecodeScheduler
from models.streaming import SpeechEventType, StreamingConfig, StreamingRecognizer
from models.vad import SileroVAD


@dataclass(frozen=True)
class FileSegment:
    speaker: str
    start: float
    end: float
    text: str


async def transcribe_recording(
    recording: Recording, vad: SileroVAD, scheduler: DecodeScheduler, config: StreamingConfig
) -> list[FileSegment]:
    """Stereo: left = rep, right = customer. Returns final segments in time order. Batch work: a scheduler that also
    serves live calls decodes it when none of theirs waits."""
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
