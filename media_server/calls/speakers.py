"""Who is speaking on a mixed channel: the inference core's online diarizer, run off the event loop.

All diarizers of the server share one ``EmbeddingBatcher`` (``models/diarization/batcher.py``): one worker thread
and one ``VoiceEncoder``. A channel's audio is handed over in order and labels are asked for on the same thread, so
a diarizer is never used by two threads at once; the windows of all channels are embedded together, in batches.
About 3 % of a core per mixed channel on its own (benchmarks/diarization_der.py), less when many run at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.diarization.batcher import BatcherStats, EmbeddingBatcher, LaneStopped
from models.diarization.online import OnlineDiarizer, Segment
from models.diarization.voice_encoder import VoiceEncoder
from models.vad import SileroVAD

log = logging.getLogger(__name__)


@dataclass
class Diarization:
    """What every mixed channel's diarizer shares."""

    encoder: VoiceEncoder
    vad: SileroVAD | None
    max_speakers: int = 2
    max_batch: int = 32
    batcher: EmbeddingBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = EmbeddingBatcher(self.encoder, max_batch=self.max_batch)

    def channel(self, sample_rate: int, time_offset: float = 0.0) -> ChannelSpeakers:
        return ChannelSpeakers(self, sample_rate, time_offset)

    def stats(self) -> BatcherStats:
        return self.batcher.stats()

    def close(self) -> None:
        self.batcher.close()


class ChannelSpeakers:
    def __init__(self, shared: Diarization, sample_rate: int, time_offset: float) -> None:
        self.shared = shared
        self.diarizer = OnlineDiarizer(
            sample_rate, shared.max_speakers, encoder=shared.encoder, vad=shared.vad, time_offset=time_offset
        )
        self.lane = shared.batcher.attach(self.diarizer)

    def push(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue audio for the diarizer (in order); never blocks the caller."""
        self.lane.feed(pcm)

    async def labels(self, spans: Sequence[tuple[float, float]]) -> list[str]:
        """The speaker of each span (e.g. each word); "" where none is known yet."""
        try:
            return await asyncio.wrap_future(self.lane.run(lambda d: [d.label_segment(a, b) or "" for a, b in spans]))
        except LaneStopped:
            return [""] * len(spans)

    async def refine(self) -> list[Segment]:
        """Re-cluster the whole channel at the end of the call."""
        try:
            return await asyncio.wrap_future(self.lane.run(OnlineDiarizer.refine))
        except LaneStopped:
            return []
        except Exception:
            log.exception("diarization could not refine a channel's speakers")
            return []

    def close(self) -> None:
        """The call is over: the worker forgets this channel."""
        self.lane.close()


def label_of(segments: Sequence[Segment], start: float, end: float) -> str:
    """The refined speaker holding most of ``start``..``end`` (the nearest one for a span in a pause)."""
    best, best_overlap, nearest, distance = "", 0.0, "", float("inf")
    for s in segments:
        overlap = min(end, s.end) - max(start, s.start)
        if overlap > best_overlap:
            best, best_overlap = s.label, overlap
        gap = max(s.start - end, start - s.end, 0.0)
        if gap < distance:
            nearest, distance = s.label, gap
    return best or nearest
