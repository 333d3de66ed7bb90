"""Who is speaking on a mixed channel: the inference core's online diarizer, run off the event loop.

All diarizers of the server share one worker thread (and one ``VoiceEncoder``): a channel's audio is
handed over in order, and labels are asked for on the same thread, so a diarizer is never used by two
threads at once. About 3 % of a core per mixed channel (benchmarks/diarization_der.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
    executor: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self.executor = self.executor or ThreadPoolExecutor(1, thread_name_prefix="diarize")

    def channel(self, sample_rate: int, time_offset: float = 0.0) -> ChannelSpeakers:
        return ChannelSpeakers(self, sample_rate, time_offset)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


class ChannelSpeakers:
    def __init__(self, shared: Diarization, sample_rate: int, time_offset: float) -> None:
        self.shared = shared
        self.diarizer = OnlineDiarizer(
            sample_rate, shared.max_speakers, encoder=shared.encoder, vad=shared.vad, time_offset=time_offset
        )
        self._failed = False
        self._last: Future[None] | None = None

    def push(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue audio for the diarizer (in order); never blocks the caller."""
        if self._failed or self.shared.executor is None:
            return
        self._last = self.shared.executor.submit(self._push, pcm.copy())

    def _push(self, pcm: npt.NDArray[np.int16]) -> None:
        try:
            self.diarizer.push(pcm)
        except Exception:
            if not self._failed:
                log.exception("diarization failed on a channel; its words stay unlabelled")
            self._failed = True

    async def labels(self, spans: Sequence[tuple[float, float]]) -> list[str]:
        """The speaker of each span (e.g. each word); "" where none is known yet."""
        if self._failed or self.shared.executor is None:
            return [""] * len(spans)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.shared.executor, lambda: [self.diarizer.label_segment(a, b) or "" for a, b in spans]
        )

    async def refine(self) -> list[Segment]:
        """Re-cluster the whole channel at the end of the call."""
        if self._failed or self.shared.executor is None:
            return []
        try:
            return await asyncio.get_running_loop().run_in_executor(self.shared.executor, self.diarizer.refine)
        except Exception:
            log.exception("diarization could not refine a channel's speakers")
            return []


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
