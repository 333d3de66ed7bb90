"""The per-device decode scheduler, with the real Whisper engine underneath."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from models.asr.engine import DecodeRequest, Hypothesis
from models.asr.scheduler import DecodeScheduler, InterimDropped
from models.asr.whisper_ct2 import WhisperCT2Engine
from models.audio import int16_to_float32, resample
from tests.speech import normalise, tel8k


class RecordingEngine(WhisperCT2Engine):
    """The real engine, noting the order in which requests reach it."""

    def __init__(self) -> None:
        super().__init__(cpu_threads=2)
        self.order: list[tuple[bool, int]] = []

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        self.order += [(r.final, int(r.audio.size)) for r in requests]
        return super().decode_batch(requests)


@pytest.fixture(scope="module")
def engine() -> RecordingEngine:
    return RecordingEngine()


def audio(index: int) -> DecodeRequest:
    u = tel8k()[index]
    return DecodeRequest(audio=resample(int16_to_float32(u.pcm), 8000, 16000), final=True)


async def test_finals_go_before_waiting_interims(engine: RecordingEngine) -> None:
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=60)
    try:
        engine.order.clear()
        blocker = asyncio.create_task(sched.decode(audio(2)))
        await asyncio.sleep(0.05)  # the worker is busy with the first request
        interims = [
            asyncio.create_task(sched.decode(DecodeRequest(audio=audio(i).audio, final=False))) for i in (0, 1, 3)
        ]
        await asyncio.sleep(0.01)
        final = asyncio.create_task(sched.decode(audio(5)))
        results = await asyncio.gather(blocker, final, *interims)
        assert [final for final, _ in engine.order] == [True, True, False, False, False]
        assert normalise(results[1].text) == tel8k()[5].ref
        stats = sched.stats()
        assert (stats.finals, stats.interims, stats.queue_depth) == (2, 3, 0)
        assert 0 < stats.real_time_factor < 1
    finally:
        sched.close()


async def test_overload_drops_stale_interims_never_finals(engine: RecordingEngine) -> None:
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=0.05)
    try:
        requests = [DecodeRequest(audio=audio(i % 7).audio, final=i % 3 == 0) for i in range(9)]
        results = await asyncio.gather(*(sched.decode(r) for r in requests), return_exceptions=True)
        for request, result in zip(requests, results, strict=True):
            if request.final:
                assert isinstance(result, Hypothesis) and result.text
        dropped = [r for r in results if isinstance(r, InterimDropped)]
        assert dropped and sched.stats().interims_dropped == len(dropped)
    finally:
        sched.close()


async def test_closed_scheduler_refuses_work(engine: RecordingEngine) -> None:
    sched = DecodeScheduler(engine)
    sched.close()
    with pytest.raises(RuntimeError, match="stopped"):
        await sched.decode(audio(5))
