"""The per-device decode scheduler: priorities, fair shares, the batch class, overload and stopping, on the fake
engine (tests/fakes.py): a deterministic decoder, as these tests are about the order of work, not about words.

The engine is held at a gate, so that what waits in the queue, and for how long, is decided by the test and not by
the machine's speed. How fast the real engine decodes (its real-time factor) and how many interims a 50 ms maximum
age drops under real load are measured by ``benchmarks/scheduler.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis
from models.asr.scheduler import DecodeScheduler, InterimDropped, SplitScheduler
from models.audio import int16_to_float32
from tests.fakes import FakeEngine, Voice

VOICE = Voice()
RATE = 16000


class GatedEngine(FakeEngine):
    """The fake engine, noting the order in which requests reach it; each decode waits for ``gate``."""

    def __init__(self, batching: bool = False) -> None:
        super().__init__(VOICE, capabilities=EngineCapabilities(batching=batching))
        self.order: list[tuple[bool, str]] = []
        self.batches: list[list[str]] = []  # the texts of each batch, in the order decoded
        self.gate = threading.Event()
        self.entered = threading.Event()  # a worker is inside decode_batch

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        hypotheses = super().decode_batch(requests)
        self.order += [(r.final, h.text) for r, h in zip(requests, hypotheses, strict=True)]
        self.batches.append([h.text for h in hypotheses])
        return hypotheses


def said(text: str, final: bool = True, key: str = "", batch: bool = False) -> DecodeRequest:
    return DecodeRequest(audio=int16_to_float32(VOICE.say(text, RATE)), final=final, fairness_key=key, batch=batch)


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


async def test_a_backlog_of_one_key_delays_another_keys_job_by_one_batch_at_most() -> None:
    """Team A's stream sent far faster than real time queues a backlog of finals; team B's final, queued after all of
    them, is decoded after at most one of A's, not after the whole backlog (first in, first out did that)."""
    engine = GatedEngine()
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=60)
    try:
        blocker = await busy(sched, engine)
        backlog = [asyncio.create_task(sched.decode(said(f"a{i}", key="team-a"))) for i in range(6)]
        await asyncio.sleep(0.05)  # all of A's backlog is queued before B's final
        victim = asyncio.create_task(sched.decode(said("b0", key="team-b")))
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(blocker, victim, *backlog)
        texts = [text for _, text in engine.order]
        assert texts.index("b0") <= 2, texts  # the batch in flight, at most one of A's, then B's
        assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(6)]  # A's own order is kept
    finally:
        sched.close()


async def test_keys_take_turns_whatever_their_backlogs() -> None:
    """Three keys with backlogs of different lengths: one job of each in turn while each has work."""
    engine = GatedEngine()
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=60)
    try:
        blocker = await busy(sched, engine)
        jobs = [asyncio.create_task(sched.decode(said(f"a{i}", key="a"))) for i in range(4)]
        jobs += [asyncio.create_task(sched.decode(said(f"b{i}", key="b"))) for i in range(2)]
        jobs += [asyncio.create_task(sched.decode(said("c0", key="c")))]
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(blocker, *jobs)
        assert [text for _, text in engine.order] == ["first", "a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    finally:
        sched.close()


async def test_batch_work_runs_only_when_no_live_job_waits() -> None:
    """A whole recording (batch class) queued first waits for every live job, interims included."""
    engine = GatedEngine()
    sched = DecodeScheduler(engine, max_batch=1, interim_max_age_s=60)
    try:
        blocker = await busy(sched, engine)
        recording = [asyncio.create_task(sched.decode(said(f"r{i}", key="a", batch=True))) for i in range(3)]
        await asyncio.sleep(0.05)
        live = [
            asyncio.create_task(sched.decode(said("interim", final=False, key="b"))),
            asyncio.create_task(sched.decode(said("final", key="b"))),
        ]
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(blocker, *live, *recording)
        assert [text for _, text in engine.order] == ["first", "final", "interim", "r0", "r1", "r2"]
    finally:
        sched.close()


async def test_batch_work_fills_the_slots_live_work_leaves() -> None:
    """A batching engine: live jobs fill a batch first; batch-class jobs take only the slots that are left."""
    engine = GatedEngine(batching=True)
    sched = DecodeScheduler(engine, max_batch=3, max_wait_s=0.0, interim_max_age_s=60)
    try:
        blocker = await busy(sched, engine)
        recording = [asyncio.create_task(sched.decode(said(f"r{i}", batch=True))) for i in range(4)]
        await asyncio.sleep(0.05)
        live = [asyncio.create_task(sched.decode(said(f"live{i}", key=f"k{i}"))) for i in range(2)]
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(blocker, *live, *recording)
        assert engine.batches[1] == ["live0", "live1", "r0"], engine.batches
        assert engine.batches[2] == ["r1", "r2", "r3"]
    finally:
        sched.close()


def test_the_fairness_key_and_class_travel_to_a_recognition_worker() -> None:
    """A node's job (worker.proto) carries the key and the class, so a worker's scheduler shares it out as a local
    one does."""
    from media_server.workers.wire import job_of, request_of

    for wire_format in ("f32", "s16"):
        job = job_of(said("over the wire", key="team-a", batch=True), wire_format)
        received = request_of(job)
        assert (received.fairness_key, received.batch, received.final) == ("team-a", True, True)
    plain = request_of(job_of(said("live")))
    assert (plain.fairness_key, plain.batch) == ("", False)
