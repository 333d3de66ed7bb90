"""One decode scheduler per device: it owns the engine in its worker threads and serves every call.

Work from all streams goes into one queue (``fair_queue.py``): live work before batch work (``DecodeRequest.batch``:
a whole recording, meant to run faster than real time, is decoded only when no live job waits), finals before
interims, and within each, the fairness keys (``DecodeRequest.fairness_key``, opaque here; the server passes the
team) take turns, oldest first within a key: a burst from one key delays another key's next job by one job, not by
the burst. The worker takes up to ``max_batch`` requests at once (waiting at most ``max_wait_s`` for more when the
engine really batches) and runs them as one ``decode_batch`` call. Interim requests that have waited longer than
``interim_max_age_s`` are dropped (their stream asks again with more audio), so under overload interims thin out
first while finals are never dropped, only late.

Several workers may share the queue (``workers``): on a CPU, two single-threaded decodes side by side use
two cores better than one two-threaded decode of Whisper's small matrices.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from models.asr.engine import DecodeRequest, Hypothesis, SpeechEngine
from models.asr.fair_queue import Closed, FairQueue, rank_of
from models.audio import MODEL_SAMPLE_RATE

log = logging.getLogger(__name__)


class InterimDropped(Exception):
    """An interim request was dropped because the device is overloaded."""


@dataclass
class _Job:
    request: DecodeRequest
    future: asyncio.Future[Hypothesis]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def rank(self) -> int:
        return rank_of(self.request.final, self.request.batch)

    @property
    def key(self) -> str:
        return self.request.fairness_key


@dataclass(frozen=True)
class SchedulerStats:
    queue_depth: int
    batches: int
    requests: int
    finals: int
    interims: int
    interims_dropped: int
    mean_batch_size: float
    mean_batch_seconds: float
    real_time_factor: float  # compute seconds per second of audio decoded
    busy_fraction: float  # share of the last minute the device spent decoding
    streams: int  # streams (call channels) being served now
    streams_total: int  # streams served since start


class DecodeScheduler:
    #: Told of every batch decoded here, from the decode thread: (decodes in it, compute seconds). Must be
    #: thread-safe and quick (a metrics histogram).
    on_batch: Callable[[int, float], None] | None = None

    def __init__(
        self,
        engine: SpeechEngine,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        interim_max_age_s: float = 1.0,
        workers: int = 1,
    ) -> None:
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max_wait_s
        self.interim_max_age_s = interim_max_age_s
        self._queue: FairQueue[_Job] = FairQueue(lambda job: job.rank, lambda job: job.key)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"decode-{engine.device}-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        self._lock = threading.Lock()
        self._batches = 0
        self._requests = 0
        self._finals = 0
        self._interims = 0
        self._dropped = 0
        self._compute_s = 0.0
        self._audio_s = 0.0
        self._recent: deque[tuple[float, float]] = deque()  # (finished_at, seconds busy)
        self._streams = 0
        self._streams_total = 0
        for thread in self._threads:
            thread.start()

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        """Queue ``request`` and wait for its hypothesis. Raises ``InterimDropped`` under overload."""
        if self._stop.is_set():
            raise RuntimeError("decode scheduler is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Hypothesis] = loop.create_future()
        try:
            self._queue.put(_Job(request, future, loop))
        except Closed:
            raise RuntimeError("decode scheduler is stopped") from None
        return await future

    def stream_opened(self) -> None:
        with self._lock:
            self._streams += 1
            self._streams_total += 1

    def stream_closed(self) -> None:
        with self._lock:
            self._streams -= 1

    def stats(self) -> SchedulerStats:
        with self._lock:
            now = time.monotonic()
            while self._recent and self._recent[0][0] < now - 60:
                self._recent.popleft()
            busy = sum(s for _, s in self._recent)
            return SchedulerStats(
                queue_depth=self._queue.qsize(),
                batches=self._batches,
                requests=self._requests,
                finals=self._finals,
                interims=self._interims,
                interims_dropped=self._dropped,
                mean_batch_size=self._requests / self._batches if self._batches else 0.0,
                mean_batch_seconds=self._compute_s / self._batches if self._batches else 0.0,
                real_time_factor=self._compute_s / self._audio_s if self._audio_s else 0.0,
                busy_fraction=min(1.0, busy / (60.0 * len(self._threads))),
                streams=self._streams,
                streams_total=self._streams_total,
            )

    def close(self) -> None:
        self._stop.set()
        left = self._queue.close()  # the workers finish the batch they hold, then stop
        for thread in self._threads:
            thread.join(timeout=10)
        for job in left:  # work that no worker will take any more: its callers get an error, not a hang
            _resolve_error(job, RuntimeError("decode scheduler stopped"))

    # -- worker thread -------------------------------------------------------------------------------

    def _take_batch(self) -> list[_Job]:
        """The next batch, in the queue's order: live jobs first; batch jobs fill the slots no live job takes."""
        jobs = [self._queue.get()]
        if not self.engine.capabilities.batching:
            return jobs  # one at a time, so that a final never waits behind interims taken with it
        deadline = time.monotonic() + self.max_wait_s
        while len(jobs) < self.max_batch:
            try:
                jobs.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except (queue.Empty, Closed):
                break
        return jobs

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = self._take_batch()
            except Closed:
                return
            live = self._drop_stale(jobs)
            if not live:
                continue
            started = time.monotonic()
            try:
                hypotheses = self.engine.decode_batch([job.request for job in live])
            except Exception as exc:
                log.exception("decode failed for a batch of %d", len(live))
                for job in live:
                    _resolve_error(job, exc)
                continue
            elapsed = time.monotonic() - started
            self._record(live, elapsed)
            for job, hypothesis in zip(live, hypotheses, strict=True):
                _resolve(job, hypothesis)

    def _drop_stale(self, jobs: Sequence[_Job]) -> list[_Job]:
        live: list[_Job] = []
        now = time.monotonic()
        for job in jobs:
            if job.future.cancelled():
                continue
            if not job.request.final and now - job.enqueued > self.interim_max_age_s:
                with self._lock:
                    self._dropped += 1
                _resolve_error(job, InterimDropped())
                continue
            live.append(job)
        return live

    def _record(self, jobs: Sequence[_Job], elapsed: float) -> None:
        audio_s = sum(job.request.audio.size for job in jobs) / MODEL_SAMPLE_RATE
        finals = sum(1 for job in jobs if job.request.final)
        with self._lock:
            self._batches += 1
            self._requests += len(jobs)
            self._finals += finals
            self._interims += len(jobs) - finals
            self._compute_s += elapsed
            self._audio_s += audio_s
            self._recent.append((time.monotonic(), elapsed))
        if self.on_batch is not None:
            try:  # (a listener's failure must not end the decode thread with the batch's futures unresolved)
                self.on_batch(len(jobs), elapsed)
            except Exception:
                log.exception("the batch listener failed")


def _resolve(job: _Job, hypothesis: Hypothesis) -> None:
    def set_result() -> None:
        if not job.future.done():
            job.future.set_result(hypothesis)

    job.loop.call_soon_threadsafe(set_result)


def _resolve_error(job: _Job, exc: BaseException) -> None:
    def set_exception() -> None:
        if not job.future.done():
            job.future.set_exception(exc)

    try:
        job.loop.call_soon_threadsafe(set_exception)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


class SplitScheduler(DecodeScheduler):
    """Interims decoded by one scheduler, finals by another: a small model's quick interims and a bigger one's
    better finals (``asr.final_model``). It is used as one scheduler; ``engine`` is the interims' model,
    ``final_engine`` the finals'."""

    def __init__(self, interims: DecodeScheduler, finals: DecodeScheduler) -> None:  # no super(): it owns no queue
        self.interims = interims
        self.finals = finals
        self.engine = interims.engine
        self.final_engine = finals.engine

    @property
    def interim_max_age_s(self) -> float:
        return self.interims.interim_max_age_s

    @interim_max_age_s.setter
    def interim_max_age_s(self, seconds: float) -> None:
        self.interims.interim_max_age_s = seconds

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        return await (self.finals if request.final else self.interims).decode(request)

    @property
    def on_batch(self) -> Callable[[int, float], None] | None:
        return self.interims.on_batch

    @on_batch.setter
    def on_batch(self, listener: Callable[[int, float], None] | None) -> None:
        self.interims.on_batch = self.finals.on_batch = listener

    def stream_opened(self) -> None:
        self.interims.stream_opened()
        self.finals.stream_opened()

    def stream_closed(self) -> None:
        self.interims.stream_closed()
        self.finals.stream_closed()

    def stats(self) -> SchedulerStats:
        """Both schedulers' figures together (means weighted by batches; the busier one's busy share)."""
        a, b = self.interims.stats(), self.finals.stats()
        batches = a.batches + b.batches

        def mean(x: float, y: float) -> float:
            return (x * a.batches + y * b.batches) / batches if batches else 0.0

        return SchedulerStats(
            queue_depth=a.queue_depth + b.queue_depth,
            batches=batches,
            requests=a.requests + b.requests,
            finals=a.finals + b.finals,
            interims=a.interims + b.interims,
            interims_dropped=a.interims_dropped + b.interims_dropped,
            mean_batch_size=mean(a.mean_batch_size, b.mean_batch_size),
            mean_batch_seconds=mean(a.mean_batch_seconds, b.mean_batch_seconds),
            real_time_factor=a.real_time_factor + b.real_time_factor,
            busy_fraction=max(a.busy_fraction, b.busy_fraction),
            streams=a.streams,
            streams_total=a.streams_total,
        )

    def close(self) -> None:
        self.interims.close()
        self.finals.close()
