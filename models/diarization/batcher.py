"""One worker for the diarizers of every call: audio in order per channel, d-vectors in batches across channels.

As ``models/asr/scheduler.py`` owns the speech engine for all calls, ``EmbeddingBatcher`` owns the voice encoder:
each mixed channel's ``OnlineDiarizer`` is ``attach``-ed as a ``DiarizerLane``, whose audio (``feed``) and questions
(``run``: labels, refinement) are queued in order and served by one thread. A diarizer fed there finds speech and
cuts its windows but does not embed them; the windows of all channels wait together and go through the encoder as
one batched forward (``VoiceEncoder.forward`` runs windows of any lengths together) when ``max_batch`` of them are
waiting, when the oldest has waited ``max_wait_s``, or when a question needs them (a label asked of a channel comes
after every window of the audio fed before it is clustered, as when each channel embedded its own). The encoder's
480 recurrent steps per window are small matrix products whose cost grows slowly with the batch: a window costs
about 13 ms of one core alone and 7-7.5 ms in batches of 16-32 (``benchmarks/diarization_batch.py``). The
d-vectors are those of the windows embedded one at a time (within float rounding, about 1e-6).

Memory is bounded: at most ``max_batch`` windows wait (1.5 s of 16 kHz audio each), and a lane whose queued audio
exceeds ``max_backlog_s`` (the worker cannot keep up) stops: its audio is dropped from then on and its questions
answer ``LaneStopped``, so that its call goes on without speaker labels rather than the server running out of memory.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from models.audio import Float32Array, Int16Array
from models.diarization.online import OnlineDiarizer
from models.diarization.voice_encoder import VoiceEncoder

log = logging.getLogger(__name__)

T = TypeVar("T")


class LaneStopped(RuntimeError):
    """The lane's diarizer failed, fell too far behind, or the batcher was closed: it has no answer."""


@dataclass(frozen=True)
class BatcherStats:
    lanes: int  # channels being diarized now
    lanes_total: int  # channels diarized since start
    lanes_stopped: int  # channels whose diarization stopped (failed or fell behind)
    queued_s: float  # audio queued for the worker, seconds, all lanes
    batches: int  # encoder forwards
    windows: int  # windows embedded
    mean_batch_size: float
    mean_batch_ms: float  # encoder time per batch
    busy_fraction: float  # share of the last minute the worker spent working (VAD, windows, encoder, questions)


class DiarizerLane:
    """One channel's diarizer, served by the batcher's worker. Use it from any thread; never touch the diarizer
    directly while the lane is open."""

    def __init__(self, batcher: EmbeddingBatcher, diarizer: OnlineDiarizer) -> None:
        self.batcher = batcher
        self.diarizer = diarizer
        self.stopped: str | None = None  # why the lane stopped; None while it runs
        self.queued = 0  # samples queued for the worker
        self.closed = False

    def feed(self, pcm: Int16Array | Float32Array) -> bool:
        """Queue audio at the channel's rate (copied); never blocks. False when the lane has stopped."""
        return self.batcher._feed(self, pcm)

    def run(self, question: Callable[[OnlineDiarizer], T]) -> Future[T]:
        """``question(diarizer)`` on the worker, once every window of the audio fed so far is clustered."""
        return self.batcher._run(self, question)

    def close(self) -> None:
        """The channel is done (after its last question): the batcher forgets it."""
        self.batcher._close(self)


@dataclass
class _Job:
    lane: DiarizerLane
    audio: Int16Array | Float32Array | None = None
    question: Callable[[OnlineDiarizer], Any] | None = None
    future: Future[Any] | None = None


class EmbeddingBatcher:
    def __init__(
        self,
        encoder: VoiceEncoder,
        max_batch: int = 32,
        max_wait_s: float = 1.0,
        max_backlog_s: float = 30.0,
        tick_s: float = 0.02,
    ) -> None:
        self.encoder = encoder
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self.max_backlog_s = max_backlog_s
        self.tick_s = tick_s
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._urgent = False  # a question or a close is queued: take the jobs now
        self._last_take = 0.0
        self._lanes: weakref.WeakSet[DiarizerLane] = weakref.WeakSet()  # open lanes (a call dropped: gone)
        self._waiting: dict[DiarizerLane, None] = {}  # lanes with windows waiting, in the order they started to
        self._n_waiting = 0
        self._first_waiting = 0.0  # when the oldest waiting window was cut (monotonic)
        self._queued_s = 0.0
        self._lanes_total = self._stopped = self._batches = self._windows = 0
        self._encode_s = 0.0
        self._recent: deque[tuple[int, float]] = deque()  # (second, seconds busy in it) of the last minute
        self._thread = threading.Thread(target=self._work, name="diarize", daemon=True)
        self._thread.start()

    # -- the callers' side (any thread) --------------------------------------------------------------

    def attach(self, diarizer: OnlineDiarizer) -> DiarizerLane:
        lane = DiarizerLane(self, diarizer)
        with self._cond:
            if self._closing:
                lane.stopped = "the diarization worker is closed"
            else:
                self._lanes.add(lane)
                self._lanes_total += 1
        return lane

    def _feed(self, lane: DiarizerLane, pcm: Int16Array | Float32Array) -> bool:
        if not pcm.size:
            return lane.stopped is None
        with self._cond:
            if lane.stopped is not None or lane.closed or self._closing:
                return False
            rate = lane.diarizer.sample_rate
            if (lane.queued + pcm.size) / rate > self.max_backlog_s:
                self._stop(lane, f"its audio waited over {self.max_backlog_s:g} s for the diarization worker")
                return False
            lane.queued += pcm.size
            self._queued_s += pcm.size / rate
            self._jobs.append(_Job(lane, audio=pcm.copy()))
            if len(self._jobs) == 1:
                self._cond.notify()
        return True

    def _run(self, lane: DiarizerLane, question: Callable[[OnlineDiarizer], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if lane.stopped is not None or self._closing:
                future.set_exception(LaneStopped(lane.stopped or "the diarization worker is closed"))
                return future
            self._jobs.append(_Job(lane, question=question, future=future))
            self._urgent = True
            self._cond.notify()
        return future

    def _close(self, lane: DiarizerLane) -> None:
        with self._cond:
            lane.closed = True
            self._jobs.append(_Job(lane))  # the worker drops it once its earlier jobs are done
            self._urgent = True
            self._cond.notify()

    def stats(self) -> BatcherStats:
        with self._cond:
            now = time.monotonic()
            while self._recent and self._recent[0][0] < now - 60:
                self._recent.popleft()
            return BatcherStats(
                lanes=sum(1 for lane in self._lanes if not lane.closed),
                lanes_total=self._lanes_total,
                lanes_stopped=self._stopped,
                queued_s=round(self._queued_s, 3),
                batches=self._batches,
                windows=self._windows,
                mean_batch_size=round(self._windows / self._batches, 2) if self._batches else 0.0,
                mean_batch_ms=round(1000 * self._encode_s / self._batches, 2) if self._batches else 0.0,
                busy_fraction=round(min(1.0, sum(s for _, s in self._recent) / 60.0), 3),
            )

    def close(self) -> None:
        """Stop the worker; questions still queued get ``LaneStopped``."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=10)
        with self._cond:
            for job in self._jobs:
                if job.future is not None and not job.future.done():
                    job.future.set_exception(LaneStopped("the diarization worker is closed"))
            self._jobs.clear()

    # -- the worker ----------------------------------------------------------------------------------

    def _stop(self, lane: DiarizerLane, why: str) -> None:
        """(Lock held.) The lane gives up: its queued audio is dropped, its questions fail."""
        if lane.stopped is not None:
            return
        lane.stopped = why
        self._stopped += 1
        log.warning("speaker diarization of a channel stopped (%s); its words stay unlabelled", why)

    def _take(self) -> list[_Job] | None:
        """Every job queued; None when closing. Audio is taken once a tick (``tick_s``) rather than packet by
        packet, so that the worker wakes some 50 times a second however many channels there are; a question (or a
        close) is taken at once. Waiting windows that are due wake the worker too (it then takes [])."""
        with self._cond:
            while not self._closing and not self._urgent:
                now = time.monotonic()
                due = self._first_waiting + self.max_wait_s - now if self._n_waiting else None
                if due is not None and due <= 0:
                    break
                if self._jobs:
                    tick = self._last_take + self.tick_s - now
                    if tick <= 0:
                        break
                    due = tick if due is None else min(due, tick)
                self._cond.wait(due)
            if self._closing:
                return None
            self._urgent = False
            self._last_take = time.monotonic()
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            began = time.monotonic()
            for job in jobs:
                try:
                    self._do(job)
                except Exception:  # a bug here must not end the worker that every call's diarization shares
                    log.exception("the diarization worker failed on a job")
            if self._n_waiting and (
                self._n_waiting >= self.max_batch or time.monotonic() - self._first_waiting >= self.max_wait_s
            ):
                self._embed()
            with self._cond:
                now = time.monotonic()
                second = int(now)
                if self._recent and self._recent[-1][0] == second:  # busy seconds per wall-clock second
                    self._recent[-1] = (second, self._recent[-1][1] + now - began)
                else:
                    self._recent.append((second, now - began))
                while self._recent[0][0] < now - 60:
                    self._recent.popleft()

    def _do(self, job: _Job) -> None:
        lane = job.lane
        if job.audio is not None:
            with self._cond:
                lane.queued -= job.audio.size
                self._queued_s -= job.audio.size / lane.diarizer.sample_rate
                if lane.stopped is not None:
                    return
            try:
                before = lane.diarizer.waiting_count
                lane.diarizer.feed(job.audio)
                cut = lane.diarizer.waiting_count - before
            except Exception:
                log.exception("speaker diarization failed on a channel")
                with self._cond:
                    self._stop(lane, "the diarizer failed")
                self._forget_waiting(lane)
                return
            if cut:
                if not self._n_waiting:
                    self._first_waiting = time.monotonic()
                self._waiting[lane] = None
                self._n_waiting += cut
                if self._n_waiting >= self.max_batch:
                    self._embed()
        elif job.question is not None:
            assert job.future is not None
            if lane in self._waiting:
                self._embed()
            if not job.future.set_running_or_notify_cancel():
                return
            if lane.stopped is not None:
                job.future.set_exception(LaneStopped(lane.stopped))
                return
            try:
                job.future.set_result(job.question(lane.diarizer))
            except Exception as exc:
                job.future.set_exception(exc)
        else:  # closed
            self._forget_waiting(lane)
            with self._cond:
                self._lanes.discard(lane)

    def _forget_waiting(self, lane: DiarizerLane) -> None:
        if lane in self._waiting:
            del self._waiting[lane]
            self._n_waiting -= lane.diarizer.waiting_count
        lane.diarizer.discard_waiting()

    def _embed(self) -> None:
        """Every waiting window of every lane through the encoder, ``max_batch`` at a time, then clustered."""
        lanes = [lane for lane in self._waiting if lane.stopped is None]
        for lane in self._waiting:
            if lane.stopped is not None:
                lane.diarizer.discard_waiting()
        clips: list[Float32Array] = []
        counts: list[int] = []
        for lane in lanes:
            waiting = lane.diarizer.waiting
            clips += waiting
            counts.append(len(waiting))
        self._waiting.clear()
        self._n_waiting = 0
        if not clips:
            return
        began = time.monotonic()
        try:
            embeddings = self.encoder.embed_windows(clips, max_batch=self.max_batch)
        except Exception:
            log.exception("the voice encoder failed on a batch of %d windows", len(clips))
            embeddings = None
        spent = time.monotonic() - began
        with self._cond:
            self._batches += -(-len(clips) // self.max_batch)
            self._windows += len(clips)
            self._encode_s += spent
        first = 0
        for lane, count in zip(lanes, counts, strict=True):
            try:
                if embeddings is None:
                    raise RuntimeError("no embeddings")
                lane.diarizer.add_embeddings(embeddings[first : first + count])
            except Exception:
                log.exception("speaker diarization failed on a channel")
                with self._cond:
                    self._stop(lane, "the diarizer failed")
            first += count
