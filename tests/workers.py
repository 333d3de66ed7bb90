"""Recognition worker processes for the tests (``media-server worker`` with the bundled tiny.en model), shared by
``test_workers.py`` and ``test_cluster.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

from media_server.v1 import worker_pb2 as pb
from media_server.v1 import worker_pb2_grpc
from tests.conftest import BIN, ROOT, free_port

KEY = "test-worker-key-" + uuid.uuid4().hex


@dataclass
class Worker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def status(self, key: str = KEY) -> pb.WorkerStatus:
        with grpc.insecure_channel(self.address) as channel:
            stub = worker_pb2_grpc.RecognitionWorkerStub(channel)  # type: ignore[no-untyped-call]
            status: pb.WorkerStatus = stub.Status(
                pb.WorkerStatusRequest(), metadata=(("x-worker-key", key),), timeout=5
            )
            return status

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def start_workers(tmp: Path, count: int) -> list[Worker]:
    """``count`` worker processes, one decode thread each (two of them use this machine's two cores)."""
    env = {**os.environ, "MEDIA_SERVER_WORKERS__KEY": KEY, "MEDIA_SERVER_ASR__WORKERS": "1"}
    workers = []
    for i in range(count):
        port = free_port()
        log_path = tmp / f"worker-{i}.log"
        process = subprocess.Popen(
            [str(BIN), "worker", "--port", str(port)],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        workers.append(Worker(port, process, log_path))
    deadline = time.monotonic() + 60
    for worker in workers:
        while "recognition worker ready" not in worker.log_path.read_text(errors="replace"):
            if worker.process.poll() is not None or time.monotonic() > deadline:
                worker.process.kill()
                raise RuntimeError(f"worker did not start:\n{worker.log_path.read_text()}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in workers:
        try:
            worker.process.wait(15)
        except subprocess.TimeoutExpired:
            worker.process.kill()
