"""What the distributed shape costs: the same call load on one embedded server and on media nodes + recognition workers.

Run from the repository root::

    .venv/bin/python benchmarks/scale_out.py --calls 4 --duration 30 --shapes embedded,1+1,2+2 --rounds 2

For each shape it starts fresh processes, plays one warm-up call per node, then ``--calls`` concurrent real-time
two-party Twilio calls (``benchmarks/call_load.py``'s load: tel8k_sim speech, events read back over websockets,
the calls dealt round-robin over the nodes), and measures:

- final latency p50/p95 (as call_load.py: arrival of the final minus the wall time the end of its utterance was
  sent), WER, missing finals; for the distributed shapes the extra latency over the embedded shape;
- CPU seconds per call-second of the node processes and of the worker processes (psutil, the run's delta);
- bytes per call-second between nodes and workers (the protobuf payloads of the Decode streams as the nodes count
  them in /v1/status; HTTP/2 framing is not included);
- the workers' batches (mean batch size over the run, from their Status RPC).

With ``--postgres URL`` the NODES+WORKERS shapes are the whole distributed shape: the nodes share a fresh
PostgreSQL database on that server (created per run, dropped after) and a Redis of the benchmark's own
(``redis-server`` on a free port; ``events.bus = "redis"``), and the report adds the events the nodes put through
Redis per second (``redis_events_per_s``, from their ``/v1/status`` bus figures).

First, what the gRPC hop alone adds to a job (``hop``): the same final decodes one at a time on an in-process
scheduler, then through a worker. With ``--rounds`` the shapes run one after the other, round after
round, and the medians over the rounds are given.

Shapes: ``embedded`` (one ``media-server serve``, decoding in-process: the default), ``1+1`` (one node, one worker),
``2+2`` (two nodes, each configured with both workers). Every shape decodes with as many decode threads in all as the
embedded server (one per core, up to 4), single-threaded each, so the comparison is of the path, not of the threads.
All processes share this machine's cores: on 2 cores, 2 nodes + 2 workers measure contention, not scale.
One JSON document goes to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import psutil
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import call_load  # noqa: E402
from benchmarks.call_load import http_json, log, tree_usage  # noqa: E402
from media_server.v1 import worker_pb2 as pb  # noqa: E402
from media_server.v1 import worker_pb2_grpc  # noqa: E402

KEY = "bench-" + uuid.uuid4().hex
CORES = len(os.sched_getaffinity(0))
DECODE_THREADS = max(1, min(4, CORES))  # what the embedded server runs (services.build_scheduler)


def start_worker(port: int, threads: int) -> subprocess.Popen[bytes]:
    log_path = Path(tempfile.mkdtemp(prefix="scale_out_worker_")) / "worker.log"
    env = {
        **os.environ,
        "MEDIA_SERVER_WORKERS__KEY": KEY,
        "MEDIA_SERVER_ASR__WORKERS": str(threads),
        "MEDIA_SERVER_ASR__CPU_THREADS": "1",
    }
    process = subprocess.Popen(
        [str(call_load.BIN), "worker", "--port", str(port)],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while "recognition worker ready" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return process


def worker_status(address: str) -> pb.WorkerStatus:
    with grpc.insecure_channel(address) as channel:
        stub = worker_pb2_grpc.RecognitionWorkerStub(channel)  # type: ignore[no-untyped-call]
        status: pb.WorkerStatus = stub.Status(pb.WorkerStatusRequest(), metadata=(("x-worker-key", KEY),), timeout=10)
        return status


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def link_bytes(url: str, token: str) -> int:
    status = http_json(f"{url}/v1/status", token)
    return sum(int(w["bytesSent"]) + int(w["bytesReceived"]) for w in status.get("workers") or [])


async def run_shape(shape: str, args: argparse.Namespace, utterances: list[call_load.Utterance]) -> dict[str, Any]:
    nodes_n, workers_n = (1, 0) if shape == "embedded" else tuple(int(x) for x in shape.split("+"))
    workers: list[subprocess.Popen[bytes]] = []
    addresses: list[str] = []
    nodes: list[tuple[call_load.OwnServer, str, str]] = []
    shared: Shared | None = None
    try:
        for _ in range(workers_n):
            port = call_load.free_port()
            workers.append(start_worker(port, max(1, DECODE_THREADS // workers_n)))
            addresses.append(f"127.0.0.1:{port}")
        env: dict[str, str | None] = {"MEDIA_SERVER_LOG_LEVEL": "warning"}
        if args.postgres and workers_n:
            shared = await Shared.start(args.postgres)
            env |= {
                "MEDIA_SERVER_DATABASE_URL": shared.database_url,
                "MEDIA_SERVER_EVENTS__BUS": "redis",
                "MEDIA_SERVER_EVENTS__REDIS_URL": shared.redis_url,
            }
        if addresses:
            env |= {
                "MEDIA_SERVER_WORKERS__URLS": json.dumps(addresses),
                "MEDIA_SERVER_WORKERS__KEY": KEY,
                "MEDIA_SERVER_WORKERS__WIRE_FORMAT": args.wire_format,
            }
        for _ in range(nodes_n):
            env["MEDIA_SERVER_GRPC__PORT"] = str(call_load.free_port())
            nodes.append(call_load.start_server(call_load.free_port(), args.startup_timeout, env))
        log(f"{shape}: {nodes_n} node(s), {workers_n} worker(s) started")
        for _, url, token in nodes:
            await call_load.warm_up(utterances, url, token)

        rng = random.Random(args.seed)
        plans = call_load.plan_calls(utterances, args.calls, args.duration, 1.2, 2.0, rng, f"{shape.replace('+', 'p')}")
        call_seconds = sum(p.recording.duration for p in plans)
        node_pids = [server.process.pid for server, _, _ in nodes]
        worker_pids = [w.pid for w in workers]
        cpu0 = {pid: tree_usage(pid)[0] for pid in node_pids + worker_pids}
        machine0, me0, wall0 = call_load.machine_busy_seconds(), _own_cpu(), time.monotonic()
        scheduler0 = [http_json(f"{url}/v1/status", token)["scheduler"] for _, url, token in nodes]
        published0 = sum(_published(url, token) for _, url, token in nodes)
        bytes0 = sum(link_bytes(url, token) for _, url, token in nodes)
        batches0 = [worker_status(a) for a in addresses]
        longest = max(p.recording.duration + p.delay_s for p in plans)
        t0 = time.monotonic() + 0.5
        runs = []
        for i, plan in enumerate(plans):
            _, url, token = nodes[i % len(nodes)]
            runs.append(call_load.run_call(plan, url, "ws" + url[4:], token, t0, longest + 120))
        outcomes = await asyncio.gather(*runs)
        for _, url, token in nodes:
            await call_load.wait_idle(url, token, 60)
        cpu = {pid: tree_usage(pid)[0] - cpu0[pid] for pid in cpu0}
        wall = time.monotonic() - wall0
        foreign = call_load.machine_busy_seconds() - machine0 - sum(cpu.values()) - (_own_cpu() - me0)
        scheduler1 = [http_json(f"{url}/v1/status", token)["scheduler"] for _, url, token in nodes]
        events = sum(_published(url, token) for _, url, token in nodes) - published0
        result: dict[str, Any] = {"shape": shape, "nodes": nodes_n, "workers": workers_n, "calls": args.calls}
        result |= call_load.score(outcomes)
        result["call_seconds"] = round(call_seconds, 1)
        result["shared_store_and_bus"] = shared is not None
        if shared is not None:
            result["redis_events"] = events
            result["redis_events_per_s"] = round(events / wall, 1)
            result["redis_events_per_call_s"] = round(events / call_seconds, 2)
        result["wall_s"] = round(wall, 1)
        # Processes other than the ones measured and this load generator (other work on the machine skews it all).
        result["other_cpu_percent"] = round(max(0.0, 100.0 * foreign / wall), 1)
        result["node_cpu_s_per_call_s"] = round(sum(cpu[p] for p in node_pids) / call_seconds, 4)
        result["worker_cpu_s_per_call_s"] = (
            round(sum(cpu[p] for p in worker_pids) / call_seconds, 4) if workers else None
        )
        if addresses:
            moved = sum(link_bytes(url, token) for _, url, token in nodes) - bytes0
            result["link_bytes_per_call_s"] = round(moved / call_seconds)
            after = [worker_status(a) for a in addresses]
            batches = sum(a.batches - b.batches for a, b in zip(after, batches0, strict=True))
            requests = sum(a.requests - b.requests for a, b in zip(after, batches0, strict=True))
            result["worker_batches"] = batches
            result["worker_requests"] = requests
            result["worker_mean_batch"] = round(requests / batches, 3) if batches else None
            result["worker_mean_batch_s"] = [round(a.mean_batch_seconds, 4) for a in after]
            result["link_ms_p50"] = [
                w["linkMsP50"] for _, url, token in nodes for w in http_json(f"{url}/v1/status", token)["workers"]
            ]
        else:
            batches = sum(b["batches"] - a["batches"] for a, b in zip(scheduler0, scheduler1, strict=True))
            requests = sum(b["requests"] - a["requests"] for a, b in zip(scheduler0, scheduler1, strict=True))
            result["mean_batch"] = round(requests / batches, 3) if batches else None
        log(
            f"{shape}: final p50 {result['final_latency_p50']} s p95 {result['final_latency_p95']} s, "
            f"WER {result['wer']}, missing {result['missing_finals']}, node CPU {result['node_cpu_s_per_call_s']} "
            f"s/call-s, worker CPU {result['worker_cpu_s_per_call_s']} s/call-s, other {result['other_cpu_percent']} %"
        )
        return result
    finally:
        for server, _, _ in nodes:
            server.stop()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(30)
            if worker.poll() is None:
                worker.kill()
        if shared is not None:
            await shared.stop()


def _published(url: str, token: str) -> int:
    """Events the node put on the shared bus (0 on the in-process one)."""
    return int(http_json(f"{url}/v1/status", token)["bus"].get("published", 0))


class Shared:
    """A fresh PostgreSQL database (on the server of ``--postgres``) and a Redis of the benchmark's own."""

    def __init__(self, admin_url: str, database: str, redis: subprocess.Popen[bytes], redis_url: str) -> None:
        self.admin_url, self.database, self.redis, self.redis_url = admin_url, database, redis, redis_url

    @property
    def database_url(self) -> str:
        return make_url(self.admin_url).set(database=self.database).render_as_string(hide_password=False)

    @classmethod
    async def start(cls, admin_url: str) -> Shared:
        database = "scale_out_" + uuid.uuid4().hex[:12]
        await _postgres(admin_url, f'CREATE DATABASE "{database}"')
        redis, url = call_load.start_redis()
        return cls(admin_url, database, redis, url)

    async def stop(self) -> None:
        self.redis.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.redis.wait(10)
        await _postgres(self.admin_url, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


async def _postgres(url: str, statement: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def measure_hop(utterances: list[call_load.Utterance], jobs: int) -> dict[str, Any]:
    """What the gRPC hop alone adds to one job: the same final decodes, one at a time, on an in-process scheduler,
    then through a worker (one decode thread each, one compute thread)."""
    from threadpoolctl import threadpool_limits

    from media_server.config import Settings, WorkersSettings
    from media_server.services import build_scheduler
    from media_server.workers.remote import RemoteScheduler
    from models.asr.engine import DecodeRequest
    from models.audio import int16_to_float32, resample

    threadpool_limits(1)  # as the server and the worker do
    audio = resample(int16_to_float32(utterances[1].pcm), call_load.SAMPLE_RATE, 16000)
    times: dict[str, list[float]] = {"local": [], "remote": []}

    async def run(name: str, scheduler: Any) -> None:
        for i in range(jobs + 2):
            started = time.perf_counter()
            await scheduler.decode(DecodeRequest(audio=audio, final=True))
            if i >= 2:  # (warm-up)
                times[name].append(time.perf_counter() - started)

    # In-process first, before this process has any gRPC channel (whose threads would compete with the decode).
    local = build_scheduler(Settings(asr={"workers": 1, "cpu_threads": 1}))  # type: ignore[arg-type]
    try:
        await run("local", local)
    finally:
        local.close()
    port = call_load.free_port()
    worker = start_worker(port, 1)
    remote = RemoteScheduler(WorkersSettings(urls=[f"127.0.0.1:{port}"], key=KEY))
    try:
        await remote.start()
        await run("remote", remote)
        medians = {name: statistics.median(values) for name, values in times.items()}
        return {
            "jobs": jobs,
            "audio_s": round(len(audio) / 16000, 2),
            "local_ms_p50": round(1000 * medians["local"], 1),
            "remote_ms_p50": round(1000 * medians["remote"], 1),
            "hop_ms_p50": round(1000 * (medians["remote"] - medians["local"]), 1),
            # per job, the node's round trip less the worker's own time (queue + decode) as the worker reports it
            "link_ms_p50": remote.links[0].describe()["linkMsP50"],
        }
    finally:
        await remote.aclose()
        worker.terminate()
        worker.wait(30)


SUMMARY_KEYS = (
    "final_latency_p50",
    "final_latency_p95",
    "extra_latency_p50",
    "extra_latency_p95",
    "wer",
    "missing_finals",
    "node_cpu_s_per_call_s",
    "worker_cpu_s_per_call_s",
    "link_bytes_per_call_s",
    "worker_mean_batch",
    "mean_batch",
    "other_cpu_percent",
    "redis_events_per_s",
)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    utterances = call_load.load_tel8k(Path(args.speech_dir))
    hop = await measure_hop(utterances, args.hop_jobs) if args.hop_jobs else None
    if hop is not None:
        log(f"the gRPC hop: {hop}")
    results = []
    for round_ in range(args.rounds):  # the shapes one after the other, round after round: both see the same machine
        shapes = [await run_shape(shape, args, utterances) for shape in args.shapes]
        base = next((r for r in shapes if r["shape"] == "embedded"), None)
        for r in shapes:
            r["round"] = round_ + 1
            if base is None or r is base:
                continue
            for q in ("p50", "p95"):
                ours, theirs = r[f"final_latency_{q}"], base[f"final_latency_{q}"]
                r[f"extra_latency_{q}"] = round(ours - theirs, 3) if ours is not None and theirs is not None else None
        results.extend(shapes)
    summary = {}
    for shape in args.shapes:
        runs = [r for r in results if r["shape"] == shape]
        summary[shape] = {
            key: statistics.median(values) if (values := [r[key] for r in runs if r.get(key) is not None]) else None
            for key in SUMMARY_KEYS
        }
    return {
        "machine": call_load.machine_info(),
        "config": {
            "calls": args.calls,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "wire_format": args.wire_format,
            "decode_threads": DECODE_THREADS,
        },
        "hop": hop,
        "median_over_rounds": summary,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=4, help="concurrent real-time calls in each shape")
    p.add_argument("--duration", type=float, default=30.0, help="approximate length of each call, seconds")
    p.add_argument("--shapes", default="embedded,1+1,2+2", help="comma list of embedded, NODES+WORKERS")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--rounds", type=int, default=1, help="run every shape this many times, alternating")
    p.add_argument("--wire-format", choices=("f32", "s16"), default="f32", help="workers.wire_format of the nodes")
    p.add_argument("--hop-jobs", type=int, default=20, help="jobs for the hop measurement (0: skip it)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument(
        "--postgres",
        help="a PostgreSQL server (SQLAlchemy URL of a database to connect to): the NODES+WORKERS shapes then share "
        "a fresh database on it and a Redis of their own (events.bus = redis)",
    )
    p.add_argument("--speech-dir", default=os.environ.get("SPEECH_DATA", str(call_load.DEFAULT_SPEECH)))
    args = p.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for shape in args.shapes:
        if shape != "embedded" and not (len(parts := shape.split("+")) == 2 and all(x.isdigit() for x in parts)):
            p.error(f"--shapes: embedded or NODES+WORKERS (1+1), not {shape!r}")
    with call_load.terminate_as_interrupt():
        try:
            report = asyncio.run(main_async(args))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
