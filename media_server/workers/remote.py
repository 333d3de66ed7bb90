"""The media node's side of the recognition workers: a scheduler that sends decode work to worker processes.

``RemoteScheduler`` is used by calls exactly as the in-process ``DecodeScheduler`` is (``decode``, ``stream_opened``,
``stream_closed``, ``stats``, ``close``). It keeps one channel and one Decode stream to each worker of
``workers.urls`` (one stream per node and worker: the jobs are multiplexed on it by id, so a job costs one message
each way, not an RPC set-up), and sends each job to the healthy worker with the least work ahead of it: (jobs queued
there + this node's jobs in flight there + 1), from the load each answer and each status poll reports; equal ones take
turns. A worker's real-time factor weighs in only where it is much slower than the fastest (``SLOWER``: a CPU worker
beside a GPU one): a real-time factor is a noisy measure (one cold first job, short interims that cost as much as long
finals), and weighing small differences locked one call's work onto one of two equal workers.

A worker that dies (its stream breaks: connection reset, keepalive timeout), refuses the key, or does not answer a
job within ``request_timeout_s``, is marked down until a status poll reaches it again, and the jobs it held are sent
again to another worker: finals until one answers (waiting up to ``final_wait_s`` for any worker to come back),
interims are dropped (``InterimDropped``; their stream asks again with more audio), as the local scheduler drops
them under overload.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from media_server.config import WorkersSettings
from media_server.tls import grpc_channel_credentials
from media_server.v1 import worker_pb2 as pb
from media_server.v1 import worker_pb2_grpc
from media_server.workers.wire import KEY_HEADER, hypothesis_of, job_of
from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis
from models.asr.scheduler import DecodeScheduler, InterimDropped, SchedulerStats

log = logging.getLogger(__name__)

SLOWER = 4.0  # a worker this many times slower than the fastest (by real-time factor) takes work in proportion

# Find a dead worker within seconds even when its machine vanished without a reset, and reconnect quickly.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class WorkerLost(Exception):
    """A worker did not answer a job: its stream broke, or the job's deadline passed."""


class WorkersUnavailable(RuntimeError):
    """No worker answered a final within ``final_wait_s``."""


class RemoteEngine:
    """What a call sees of the engine behind the workers: its name and device as the workers report them."""

    capabilities = EngineCapabilities(batching=True)

    def __init__(self, name: str, device: str) -> None:
        self.name = name
        self.device = device

    def decode_batch(self, requests: Any) -> list[Hypothesis]:
        raise NotImplementedError("a remote engine is decoded through RemoteScheduler.decode")


@dataclass
class _Pending:
    future: asyncio.Future[pb.DecodeResult]
    final: bool


class WorkerLink:
    """One worker: its channel, this node's Decode stream to it, what it last reported."""

    def __init__(self, address: str, key: str, settings: WorkersSettings) -> None:
        self.address = address
        self.settings = settings
        self._metadata = ((KEY_HEADER, key),)
        options = [
            *CHANNEL_OPTIONS,
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
        ]
        if settings.tls:  # the worker verified against tls_ca; this node's certificate where tls_cert is given
            credentials = grpc_channel_credentials(settings.tls_ca, settings.tls_cert, settings.tls_key)
            self.channel = grpc.aio.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(address, options=options)
        self.stub = worker_pb2_grpc.RecognitionWorkerStub(self.channel)  # type: ignore[no-untyped-call]
        self.healthy = False
        self.reason: str | None = "not reached yet"
        self.status: pb.WorkerStatus | None = None
        self.load = pb.WorkerLoad()
        self.pending: dict[int, _Pending] = {}
        self.streams = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.failures = 0
        self.failed_over = 0  # jobs that were in flight here when it failed
        self.link_s: deque[float] = deque(maxlen=1000)  # per job: round trip less the worker's own time
        self._outbox: asyncio.Queue[pb.DecodeStreamRequest | None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def score(self, fastest: float) -> float:
        """Work ahead of a new job here: jobs ahead, times how much slower than ``fastest`` (the lowest real-time
        factor of the healthy workers) this worker is, where that is ``SLOWER`` times or more; one not measured yet
        counts as fast."""
        ahead = self.load.queue_depth + len(self.pending) + 1
        rtf = self.load.real_time_factor
        slower = rtf / fastest if rtf > 0 and fastest > 0 else 1.0
        return ahead * (slower if slower >= SLOWER else 1.0)

    def down(self, reason: str) -> None:
        if self.healthy:
            log.warning("recognition worker %s is down: %s", self.address, reason)
        self.healthy = False
        self.reason = reason

    async def poll(self, within_s: float) -> None:
        try:
            status = await self.stub.Status(pb.WorkerStatusRequest(), metadata=self._metadata, timeout=within_s)
        except grpc.aio.AioRpcError as exc:
            self.down(_describe(exc))
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._break(self.reason or "refused")
            return
        self.status = status
        self.load = status.load
        if status.draining:
            self.down("shutting down (draining)")
            return
        if not self.healthy:
            log.info("recognition worker %s is up: %s on %s", self.address, status.model, status.device)
        self.healthy = True
        self.reason = None

    def report_streams(self, streams: int) -> None:
        self.streams = streams
        if self._outbox is not None:
            self._outbox.put_nowait(pb.DecodeStreamRequest(streams=streams))

    async def decode(self, job: pb.DecodeJob) -> pb.DecodeResult:
        """Send ``job`` on this node's stream and wait for its result; ``WorkerLost`` when the stream breaks or
        ``request_timeout_s`` passes (the worker is then marked down until a status poll reaches it)."""
        outbox = self._open()
        future: asyncio.Future[pb.DecodeResult] = asyncio.get_running_loop().create_future()
        self.pending[job.id] = _Pending(future, job.final)
        message = pb.DecodeStreamRequest(job=job)
        self.bytes_sent += message.ByteSize()
        sent = time.monotonic()
        outbox.put_nowait(message)
        try:
            result = await asyncio.wait_for(future, self.settings.request_timeout_s)
            self.link_s.append(max(0.0, time.monotonic() - sent - result.seconds))
            return result
        except TimeoutError:
            self.failures += 1
            self.down(f"no answer to a job within {self.settings.request_timeout_s:g} s")
            raise WorkerLost(f"{self.address}: no answer within {self.settings.request_timeout_s:g} s") from None
        finally:
            self.pending.pop(job.id, None)

    def _open(self) -> asyncio.Queue[pb.DecodeStreamRequest | None]:
        if self._outbox is not None:
            return self._outbox
        outbox: asyncio.Queue[pb.DecodeStreamRequest | None] = asyncio.Queue()
        outbox.put_nowait(pb.DecodeStreamRequest(streams=self.streams))
        self._outbox = outbox

        async def requests() -> AsyncIterator[pb.DecodeStreamRequest]:
            while (message := await outbox.get()) is not None:
                yield message

        call = self.stub.Decode(requests(), metadata=self._metadata)
        self._reader = asyncio.create_task(self._read(call, outbox))
        return outbox

    async def _read(self, call: Any, outbox: asyncio.Queue[pb.DecodeStreamRequest | None]) -> None:
        why = "the worker ended the stream"
        try:
            async for result in call:
                self.bytes_received += result.ByteSize()
                if result.HasField("load"):
                    self.load = result.load
                pending = self.pending.get(result.id)
                if pending is not None and not pending.future.done():
                    pending.future.set_result(result)
        except grpc.aio.AioRpcError as exc:
            why = _describe(exc)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if self._outbox is outbox:
            self.failures += 1
            self.down(why)
            self._break(why)

    def _break(self, why: str) -> None:
        """The stream is gone: every job on it fails over (``WorkerLost``); the next job opens a new stream."""
        if self._outbox is not None:
            self._outbox.put_nowait(None)
        self._outbox = None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        for pending in self.pending.values():
            if not pending.future.done():
                self.failed_over += 1
                pending.future.set_exception(WorkerLost(f"{self.address}: {why}"))

    async def close(self) -> None:
        self._break("the node is closing")
        await self.channel.close()

    def describe(self) -> dict[str, Any]:
        s = self.status
        return {
            "address": self.address,
            "healthy": self.healthy,
            "reason": self.reason,
            "model": s.model if s else None,
            "device": s.device if s else None,
            "queueDepth": self.load.queue_depth,
            "realTimeFactor": round(self.load.real_time_factor, 4),
            "busyFraction": round(self.load.busy_fraction, 4),
            "streams": self.load.streams,
            "inFlight": len(self.pending),
            "finalsInFlight": sum(1 for p in self.pending.values() if p.final),
            "failedOver": self.failed_over,
            "nodes": s.nodes if s else None,
            "batches": s.batches if s else None,
            "meanBatchSize": round(s.mean_batch_size, 3) if s else None,
            "meanBatchSeconds": round(s.mean_batch_seconds, 4) if s else None,
            "bytesSent": self.bytes_sent,
            "bytesReceived": self.bytes_received,
            "failures": self.failures,
            # What the link adds to a job (serialising, the network, gRPC, both event loops), recent jobs' median.
            "linkMsP50": round(1000 * statistics.median(self.link_s), 2) if self.link_s else None,
        }


class RemoteScheduler(DecodeScheduler):
    """Decode work sent to recognition workers (``workers.urls``); see the module's docstring."""

    def __init__(self, settings: WorkersSettings, interim_max_age_s: float = 1.0) -> None:  # no super(): no queue
        key = settings.shared_key()
        if not settings.urls or not key:
            raise ValueError("RemoteScheduler needs workers.urls and the shared key")
        self.settings = settings
        self._key = key
        self.interim_max_age_s = interim_max_age_s  # (the workers' own setting applies; kept for the interface)
        self.engine = RemoteEngine("remote", "remote")
        self.links: list[WorkerLink] = []
        self._ids = itertools.count(1)
        self._turn = itertools.count()
        self._poller: asyncio.Task[None] | None = None
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        self._streams = 0
        self._streams_total = 0
        self._requests = 0
        self._finals = 0
        self._interims = 0
        self._dropped = 0
        self.retries = 0  # jobs sent again to another worker

    async def start(self) -> None:
        """Open the channels and ask every worker for its status once (the links open lazily otherwise)."""
        self._ensure_started()
        await self._poll_all()
        if not any(link.healthy for link in self.links):
            log.warning("no recognition worker reachable yet (%s); calls wait for one", ", ".join(self.settings.urls))

    def _ensure_started(self) -> None:
        if self._poller is not None or self._closed:
            return
        self.links = [WorkerLink(address, self._key, self.settings) for address in self.settings.urls]
        for link in self.links:
            link.report_streams(self._streams)
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_all(self) -> None:
        timeout = max(1.0, self.settings.status_interval_s)
        await asyncio.gather(*(link.poll(timeout) for link in self.links))
        for link in self.links:
            if link.healthy and link.status is not None:
                self.engine.name, self.engine.device = link.status.model, link.status.device
                break

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            try:
                await self._poll_all()
            except Exception:  # (a poll never raises by design; the poller must outlive a surprise)
                log.exception("polling the recognition workers failed")

    @property
    def reachable(self) -> bool:
        return any(link.healthy for link in self.links)

    def _pick(self) -> WorkerLink | None:
        healthy = [link for link in self.links if link.healthy]
        if not healthy:
            return None
        measured = [link.load.real_time_factor for link in healthy if link.load.real_time_factor > 0]
        fastest = min(measured, default=0.0)
        turn = next(self._turn)  # equal scores: take turns
        return min(healthy, key=lambda link: (link.score(fastest), (self.links.index(link) - turn) % len(self.links)))

    async def decode(self, request: DecodeRequest) -> Hypothesis:
        if self._closed:
            raise RuntimeError("decode scheduler is stopped")
        self._ensure_started()
        self._requests += 1
        if request.final:
            self._finals += 1
        else:
            self._interims += 1
        job = job_of(request, self.settings.wire_format)
        give_up = time.monotonic() + self.settings.final_wait_s
        while True:
            link = self._pick()
            if link is None:
                if not request.final:
                    self._dropped += 1
                    raise InterimDropped()
                if time.monotonic() > give_up:
                    raise WorkersUnavailable(
                        f"no recognition worker answered for {self.settings.final_wait_s:g} s "
                        f"({'; '.join(f'{link.address}: {link.reason}' for link in self.links)})"
                    )
                await asyncio.sleep(min(0.2, self.settings.status_interval_s))
                continue
            job.id = next(self._ids)
            try:
                result = await link.decode(job)
            except WorkerLost as exc:
                if not request.final:
                    self._dropped += 1
                    raise InterimDropped() from exc
                self.retries += 1
                log.warning("a final is sent to another worker: %s", exc)
                continue
            outcome = result.WhichOneof("outcome")
            if outcome == "hypothesis":
                return hypothesis_of(result.hypothesis)
            if outcome == "dropped":
                self._dropped += 1
                raise InterimDropped()
            if outcome == "error" and result.error.retryable:
                link.down(result.error.message)
                self.retries += 1
                continue
            raise RuntimeError(f"worker {link.address}: {result.error.message or 'no result'}")

    def stream_opened(self) -> None:
        self._streams += 1
        self._streams_total += 1
        for link in self.links:
            link.report_streams(self._streams)

    def stream_closed(self) -> None:
        self._streams -= 1
        for link in self.links:
            link.report_streams(self._streams)

    def stats(self) -> SchedulerStats:
        """This node's requests with the workers' figures (queue, batches, real-time factor) summed or averaged
        over the workers last reached."""
        statuses = [link.status for link in self.links if link.status is not None]
        batches = sum(s.batches for s in statuses)

        def weighted(values: list[float]) -> float:
            weights = [s.batches for s in statuses]
            return float(np.average(values, weights=weights)) if batches else 0.0

        return SchedulerStats(
            queue_depth=sum(link.load.queue_depth for link in self.links if link.healthy),
            batches=batches,
            requests=self._requests,
            finals=self._finals,
            interims=self._interims,
            interims_dropped=self._dropped,
            mean_batch_size=weighted([s.mean_batch_size for s in statuses]),
            mean_batch_seconds=weighted([s.mean_batch_seconds for s in statuses]),
            real_time_factor=weighted([s.load.real_time_factor for s in statuses]),
            busy_fraction=max((link.load.busy_fraction for link in self.links if link.healthy), default=0.0),
            streams=self._streams,
            streams_total=self._streams_total,
        )

    def workers(self) -> list[dict[str, Any]]:
        """Each worker as /v1/status shows it."""
        return [link.describe() for link in self.links]

    def close(self) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (the loop that used the channels is gone: nothing to close any more)
            return
        for link in self.links:
            task = loop.create_task(link.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await asyncio.gather(*(link.close() for link in self.links), return_exceptions=True)


def _describe(exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return "refused this node's worker key (UNAUTHENTICATED)"
    return f"{code.name if code else 'error'}: {exc.details() or ''}".rstrip(": ")
