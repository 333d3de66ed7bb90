"""Silero VAD for many streams at once: the waiting chunks of all live channels scored in one model run.

Silero is a small recurrent model: one run on one 32 ms chunk costs about 90 us of a core, most of it the
runtime's fixed cost per run, and a live channel needs ~31 runs a second, on the event loop. Eight chunks in one
run cost about 37 us each; with the buffering around it, eight live streams cost 59 us a chunk against 121 us one
at a time (``benchmarks/vad_batch.py``, 2-core Intel Xeon). So a stream's chunks wait here up to
``max_wait_s`` for other streams' chunks, and all that wait are scored together (a stream with several waiting
goes through several rounds, one chunk a round: its state carries from each to the next). Each stream's state
and context stay its own, so a chunk's probability does not depend on what it was batched with (within float
rounding: within 1e-5 in ``tests/test_vad.py``).

``max_wait_s`` is added to the moment the VAD hears a pause, so to a final's latency (at most; on average half
of it): 20 ms against endpointing's 500. With ``max_wait_s`` 0, or outside a running event loop, chunks are
scored as they come. Everything runs on the event loop's thread; the model run itself is thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.audio import Float32Array
    from models.vad.silero import SileroVAD, VADChunk, VADStream

log = logging.getLogger(__name__)

Deliver = Callable[[list["VADChunk"]], None]


class VADBatcher:
    """Scores the waiting chunks of the streams given to ``submit`` together, at most ``max_wait_s`` late."""

    def __init__(self, model: SileroVAD, max_wait_s: float = 0.02, max_batch: int = 64) -> None:
        self.model = model
        self.max_wait_s = max(0.0, max_wait_s)
        self.max_batch = max(1, max_batch)
        self._waiting: dict[VADStream, Deliver] = {}  # streams with a whole chunk to score, in arrival order
        self._live: weakref.WeakSet[VADStream] = weakref.WeakSet()  # streams that may still send audio
        self._timer: asyncio.TimerHandle | None = None
        self.runs = 0  # model runs
        self.chunks = 0  # chunks scored in them

    @property
    def mean_batch(self) -> float:
        return self.chunks / self.runs if self.runs else 0.0

    def submit(self, stream: VADStream, audio: Float32Array, deliver: Deliver) -> None:
        """Take a stream's audio; its chunks' scores reach ``deliver`` (in order) once scored."""
        self._live.add(stream)
        stream.add(audio)
        if not stream.waiting:
            return
        self._waiting[stream] = deliver
        if self.max_wait_s <= 0 or len(self._waiting) >= min(self.max_batch, len(self._live)):
            self.flush()  # nobody else to wait for
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.max_wait_s, self.flush)

    def drain(self, stream: VADStream) -> None:
        """Score this stream's waiting chunks now (its end, a client's Finalize) and stop waiting for it."""
        deliver = self._waiting.pop(stream, None)
        self._live.discard(stream)
        if deliver is not None:
            self._deliver(deliver, stream.score_waiting())

    def flush(self) -> None:
        """Score every waiting chunk: rounds of one chunk per stream, each round one run per sample rate."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, {}
        scored: dict[VADStream, list[VADChunk]] = {stream: [] for stream in waiting}
        by_rate: dict[int, list[VADStream]] = {}
        for stream in waiting:
            by_rate.setdefault(stream.rate, []).append(stream)
        for streams in by_rate.values():
            while streams:
                for start in range(0, len(streams), self.max_batch):
                    self._run(streams[start : start + self.max_batch], scored)
                streams = [s for s in streams if s.waiting]
        for stream, deliver in waiting.items():
            self._deliver(deliver, scored[stream])

    def _run(self, streams: list[VADStream], scored: dict[VADStream, list[VADChunk]]) -> None:
        inputs = np.concatenate([s.next_input() for s in streams], axis=0)
        state = np.concatenate([s.state for s in streams], axis=1)
        probabilities, states = self.model.run(inputs, state, streams[0].rate)
        for i, stream in enumerate(streams):
            scored[stream].append(stream.advance(float(probabilities[i]), states[:, i : i + 1, :]))
        self.runs += 1
        self.chunks += len(streams)

    @staticmethod
    def _deliver(deliver: Deliver, chunks: list[VADChunk]) -> None:
        if not chunks:
            return
        try:
            deliver(chunks)
        except Exception:  # one stream's failure is its own: the others' scores still go out
            log.exception("a stream failed on its VAD scores")
