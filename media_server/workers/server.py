"""``media-server worker``: the inference core behind the ``RecognitionWorker`` gRPC service (worker.proto).

One decode scheduler (``services.build_scheduler``: the same engines, batching and queue as in-process) serves
every node's Decode stream, so the jobs of all nodes' calls are batched together. Each job is decoded as a task of
its own and answered as soon as it is done (results are matched by id, not by order); each answer carries the
worker's load, which is what nodes pick workers by.

Every RPC must present the shared key (``x-worker-key``, compared in constant time): UNAUTHENTICATED otherwise.
On SIGTERM the worker drains: new jobs are answered with a retryable error (the node sends them to another
worker), jobs it holds are decoded and answered, then it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from threadpoolctl import threadpool_limits

from media_server.config import Settings
from media_server.tls import grpc_server_credentials
from media_server.v1 import worker_pb2 as pb
from media_server.v1 import worker_pb2_grpc
from media_server.workers.wire import KEY_HEADER, hypothesis_pb, request_of
from models.asr.scheduler import DecodeScheduler, InterimDropped

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

DRAIN_S = 30.0  # on SIGTERM: how long the jobs already taken may take

# Nodes ping idle streams (keepalive) to notice a dead worker; allow it.
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_pings_without_data", 0),
]


class WorkerService(worker_pb2_grpc.RecognitionWorkerServicer):
    def __init__(self, scheduler: DecodeScheduler, key: str) -> None:
        self.scheduler = scheduler
        self._key = key.encode()
        self.draining = False
        self.in_flight = 0
        self.nodes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.abandoned = 0
        self._streams: dict[int, int] = {}  # per open Decode stream: the streams its node reported
        self._idle = asyncio.Event()
        self._idle.set()

    async def _check_key(self, context: Context) -> None:
        presented = ""
        for name, value in context.invocation_metadata() or ():
            if name.lower() == KEY_HEADER and isinstance(value, str):
                presented = value
        if not hmac.compare_digest(presented.encode(), self._key):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong worker key ({KEY_HEADER})")
            raise AssertionError("grpc.aio abort returned")

    def load(self) -> pb.WorkerLoad:
        stats = self.scheduler.stats()
        return pb.WorkerLoad(
            queue_depth=stats.queue_depth,
            real_time_factor=stats.real_time_factor,
            busy_fraction=stats.busy_fraction,
            streams=sum(self._streams.values()),
            in_flight=self.in_flight,
        )

    async def Status(self, request: pb.WorkerStatusRequest, context: Context) -> pb.WorkerStatus:
        await self._check_key(context)
        stats = self.scheduler.stats()
        return pb.WorkerStatus(
            model=self.scheduler.engine.name,
            device=self.scheduler.engine.device,
            load=self.load(),
            nodes=self.nodes,
            batches=stats.batches,
            requests=stats.requests,
            finals=stats.finals,
            interims=stats.interims,
            interims_dropped=stats.interims_dropped,
            mean_batch_size=stats.mean_batch_size,
            mean_batch_seconds=stats.mean_batch_seconds,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            abandoned=self.abandoned,
            draining=self.draining,
        )

    async def Decode(
        self, requests: AsyncIterator[pb.DecodeStreamRequest], context: Context
    ) -> AsyncIterator[pb.DecodeResult]:
        await self._check_key(context)
        session = id(context)
        results: asyncio.Queue[pb.DecodeResult | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        self.nodes += 1
        self._streams[session] = 0

        async def answer(job: pb.DecodeJob) -> None:
            arrived = time.monotonic()
            result = pb.DecodeResult(id=job.id)
            try:
                if self.draining:
                    result.error.CopyFrom(pb.DecodeError(message="worker shutting down", retryable=True))
                else:
                    hypothesis = await self.scheduler.decode(request_of(job))
                    result.hypothesis.CopyFrom(hypothesis_pb(hypothesis))
            except InterimDropped:
                result.dropped = True
            except ValueError as exc:  # malformed audio
                result.error.CopyFrom(pb.DecodeError(message=str(exc), retryable=False))
            except RuntimeError as exc:  # the scheduler stopped under it
                result.error.CopyFrom(pb.DecodeError(message=str(exc), retryable=True))
            except Exception as exc:
                log.exception("decode failed")
                result.error.CopyFrom(pb.DecodeError(message=f"decode failed: {exc}", retryable=False))
            finally:
                self.in_flight -= 1
                if self.in_flight == 0:
                    self._idle.set()
            result.load.CopyFrom(self.load())
            result.seconds = time.monotonic() - arrived
            results.put_nowait(result)

        async def read() -> None:
            try:
                async for request in requests:
                    kind = request.WhichOneof("request")
                    if kind == "job":
                        self.bytes_in += request.ByteSize()
                        self.in_flight += 1
                        self._idle.clear()
                        task = asyncio.create_task(answer(request.job))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif kind == "streams":
                        self._streams[session] = request.streams
                if tasks:  # the node half-closed: answer what it sent, then end the stream
                    await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                results.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (result := await results.get()) is not None:
                self.bytes_out += result.ByteSize()
                yield result
        finally:  # the node is gone (or finished): what it still waits for is no one's any more
            reader.cancel()
            self.abandoned += sum(1 for task in tasks if not task.done())
            for task in list(tasks):
                task.cancel()
            self.nodes -= 1
            self._streams.pop(session, None)

    async def drain(self, within_s: float) -> None:
        """Refuse new jobs (retryable: the nodes send them elsewhere) and wait for those taken."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), within_s)


async def serve_worker(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT (or until cancelled)."""
    from media_server.services import build_scheduler  # (the engines; imported where they are used)

    w = settings.workers
    key = w.shared_key()
    if not key:
        raise ValueError("a worker needs the shared key: workers.key or workers.key_file (MEDIA_SERVER_WORKERS__KEY)")
    if w.tls_ca is not None and w.tls_cert is None:
        raise ValueError("a worker that requires client certificates (tls_ca) needs its own: tls_cert and tls_key")
    threadpool_limits(1)  # numpy's BLAS threads would compete with the decode threads (as in the server)
    scheduler = await asyncio.to_thread(build_scheduler, settings)
    service = WorkerService(scheduler, key)
    server = grpc.aio.server(
        options=[*SERVER_OPTIONS, ("grpc.max_receive_message_length", w.max_message_bytes)],
    )
    worker_pb2_grpc.add_RecognitionWorkerServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    address = f"{w.host}:{w.port}"
    if w.tls_cert is not None and w.tls_key is not None:  # nodes verify it; with tls_ca it verifies them
        port = server.add_secure_port(address, grpc_server_credentials(w.tls_cert, w.tls_key, w.tls_ca))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        scheduler.close()
        raise OSError(f"cannot listen on {address}")
    await server.start()
    log.info(
        "recognition worker ready on %s:%d%s: model %s on %s",
        w.host,
        port,
        "" if w.tls_cert is None else " (TLS" + (", client certificates required)" if w.tls_ca else ")"),
        scheduler.engine.name,
        scheduler.engine.device,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("worker stopping: draining %d jobs", service.in_flight)
        await service.drain(DRAIN_S)
    finally:
        await server.stop(grace=1.0)
        scheduler.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
