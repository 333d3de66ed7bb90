"""The per-device decode scheduler: priorities, overload and stopping, on the fake engine (tests/fakes.py).

The engine is held at a gate, so that what waits in the queue, and for how long, is decided by the test and not by
the machine's speed. How fast the real engine decodes (its real-time factor) and how many interims a 50 ms maximum
age drops under real load are measured by ``benchmarks/scheduler.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from models.asr.engine import DecodeRequest, Hypothesis
from models.asr.scheduler import DecodeScheduler, InterimDropped, SplitScheduler
from models.audio import int16_to_float32
from tests.fakes import FakeEngine, Voice

VOICE = Voice()
RATE = 16000


class GatedEngine(FakeEngine):
    """The fake engine, noting the order in which requests reach it; each decode waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__(VOICE)
        self.order: list[tuple[bool, str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()  # a worker is inside decode_batch

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        hypotheses = super().decode_batch(requests)
        self.order += [(r.final, h.text) for r, h in zip(requests, hypotheses, strict=True)]
        return hypotheses


def said(text: str, final: bool = True) -> DecodeRequest:
    return DecodeRequest(audio=int16_to_float32(VOICE.say(text, RATE)), final=final)


async def busy(sched: DecodeScheduler, engine: GatedEngine) -> asyncio.Task[Hypothesis]:
    """A first request that the worker has taken and holds at the gate."""
    blocker = asyncio.create_task(sched.decode(said("first")))
    assert await asyncio.to_thread(engine.entered.wait, 10)
    return blocker


async def test_finals_go_before_waiting_interims_and_are_decoded_as_said() -> None:
    engine = GatedEngine()
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=60)
    try:
        blocker = await busy(sched, engine)
        interims = [asyncio.create_task(sched.decode(said(t, final=False))) for t in ("one", "two", "three")]
        await asyncio.sleep(0.05)  # queued before the final
        final = asyncio.create_task(sched.decode(said("the final one")))
        await asyncio.sleep(0.05)
        engine.gate.set()
        results = await asyncio.gather(blocker, final, *interims)
        assert engine.order == [
            (True, "first"),
            (True, "the final one"),
            (False, "one"),
            (False, "two"),
            (False, "three"),
        ]
        assert [r.text for r in results] == ["first", "the final one", "one", "two", "three"]
        stats = sched.stats()
        assert (stats.finals, stats.interims, stats.queue_depth, stats.interims_dropped) == (2, 3, 0, 0)
        assert stats.batches == 5 and stats.mean_batch_size == 1
        assert stats.real_time_factor > 0  # compute time is counted against the audio decoded
    finally:
        sched.close()


async def test_overload_drops_stale_interims_never_finals() -> None:
    engine = GatedEngine()
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=0.05)
    try:
        blocker = await busy(sched, engine)
        texts = [f"word{i}" for i in range(9)]
        requests = [said(text, final=i % 3 == 0) for i, text in enumerate(texts)]
        waiting = [asyncio.create_task(sched.decode(r)) for r in requests]
        await asyncio.sleep(0.2)  # every queued interim is now older than its 50 ms
        engine.gate.set()
        results = await asyncio.gather(blocker, *waiting, return_exceptions=True)
        for text, request, result in zip(texts, requests, results[1:], strict=True):
            if request.final:
                assert isinstance(result, Hypothesis) and result.text == text
            else:
                assert isinstance(result, InterimDropped)
        assert sched.stats().interims_dropped == 6
        fresh = await sched.decode(said("fresh", final=False))  # an interim that has not waited is decoded
        assert fresh.text == "fresh"
    finally:
        sched.close()


async def test_closed_scheduler_refuses_work() -> None:
    sched = DecodeScheduler(GatedEngine())
    sched.close()
    with pytest.raises(RuntimeError, match="stopped"):
        await sched.decode(said("too late"))


async def test_a_split_scheduler_sends_finals_to_one_model_and_interims_to_the_other() -> None:
    """``asr.final_model``: interims from the quick model, finals from the better one; used as one scheduler."""
    voice = Voice()
    quick, better = FakeEngine(voice, name="tiny"), FakeEngine(voice, name="base")
    split = SplitScheduler(DecodeScheduler(quick), DecodeScheduler(better))
    try:
        audio = int16_to_float32(voice.say("hello there", 16000))
        split.stream_opened()
        interim = await split.decode(DecodeRequest(audio=audio, final=False))
        final = await split.decode(DecodeRequest(audio=audio, final=True))
        assert interim.text == final.text == "hello there"
        assert [r.final for r in quick.requests] == [False] and [r.final for r in better.requests] == [True]
        stats = split.stats()
        assert (stats.requests, stats.finals, stats.interims, stats.streams) == (2, 1, 1, 1)
        assert split.engine is quick and split.final_engine is better
        split.interim_max_age_s = 5.0
        assert split.interims.interim_max_age_s == 5.0
        split.stream_closed()
        assert split.stats().streams == 0
    finally:
        split.close()


def test_final_model_builds_a_split_scheduler_from_the_settings() -> None:
    from media_server.config import Settings
    from media_server.services import build_scheduler
    from models.asr.loader import resolve_model

    local, _name = resolve_model(None, None)  # the bundled tiny.en as a local CTranslate2 directory
    scheduler = build_scheduler(Settings(asr={"final_model": str(local), "workers": 1}))
    try:
        assert isinstance(scheduler, SplitScheduler)
        assert "tiny" in scheduler.engine.name and scheduler.final_engine.name
    finally:
        scheduler.close()
    plain = build_scheduler(Settings(asr={"workers": 1}))
    try:
        assert not isinstance(plain, SplitScheduler)
    finally:
        plain.close()
