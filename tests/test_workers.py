"""Recognition workers as their own processes (``media-server worker``): real worker processes with the bundled
tiny.en model, real speech (tel8k_sim); the node side both as a ``RemoteScheduler`` in this process and as a real
server process configured with ``workers.urls``."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from media_server.client.stream import stream_call
from media_server.config import WorkersSettings
from media_server.v1 import worker_pb2 as pb
from media_server.v1 import worker_pb2_grpc
from media_server.workers.remote import RemoteScheduler
from models.asr.engine import DecodeRequest
from models.asr.scheduler import InterimDropped
from models.audio import int16_to_float32, resample
from tests.conftest import EventLog, collect_events, free_port, start_server, stop_server
from tests.speech import Utterance, program, stereo, tel8k, wer
from tests.workers import KEY, Worker, start_workers, stop_workers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    workers = start_workers(tmp_path_factory.mktemp("workers"), 2)
    yield workers
    stop_workers(workers)


def remote(workers: list[Worker], key: str = KEY, **options: Any) -> RemoteScheduler:
    settings = WorkersSettings(urls=[w.address for w in workers], key=key, status_interval_s=0.2, **options)
    return RemoteScheduler(settings)


def audio_of(utterance: Utterance) -> Any:
    return resample(int16_to_float32(utterance.pcm), utterance.sample_rate, 16000)


async def test_a_worker_refuses_a_missing_or_wrong_key(two_workers: list[Worker]) -> None:
    worker = two_workers[0]
    assert worker.status().model.startswith("tiny.en")
    for metadata in ((), (("x-worker-key", "wrong"),), (("x-worker-key", KEY[:-1]),)):
        with grpc.insecure_channel(worker.address) as channel:
            stub = worker_pb2_grpc.RecognitionWorkerStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.RpcError) as refused:
                stub.Status(pb.WorkerStatusRequest(), metadata=metadata, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            job = pb.DecodeStreamRequest(job=pb.DecodeJob(id=1, pcm_s16=b"\0\0" * 16000, final=True))
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.Decode(iter([job]), metadata=metadata, timeout=5))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # A node with the wrong key sees the worker down, says why, and drops interims rather than hang.
    scheduler = remote([worker], key="wrong")
    await scheduler.start()
    try:
        assert not scheduler.reachable
        assert "UNAUTHENTICATED" in (scheduler.workers()[0]["reason"] or "")
        with pytest.raises(InterimDropped):
            await scheduler.decode(DecodeRequest(audio=audio_of(tel8k()[1]), final=False))
    finally:
        await scheduler.aclose()


async def test_a_node_transcribes_real_speech_through_a_worker(two_workers: list[Worker]) -> None:
    utterances = tel8k()
    scheduler = remote(two_workers[:1])
    await scheduler.start()
    try:
        hypotheses = [await scheduler.decode(DecodeRequest(audio=audio_of(u), final=True)) for u in utterances]
        # The options travel with the audio: a prefix the transcript must start with is kept.
        prefixed = await scheduler.decode(
            DecodeRequest(audio=audio_of(utterances[1]), final=True, prefix="He was not", prompt="Dashwood")
        )
        described = scheduler.workers()[0]
    finally:
        await scheduler.aclose()
    assert wer([u.ref for u in utterances], [h.text for h in hypotheses]) <= 0.15
    for h, u in zip(hypotheses, utterances, strict=True):
        assert h.words and 0 <= h.words[0].start <= h.words[-1].end <= u.duration + 0.5
    assert prefixed.text.startswith("He was not")
    assert described["healthy"] and described["model"].startswith("tiny.en")
    assert described["bytesSent"] > sum(len(u.pcm) * 2 * 4 for u in utterances)  # 16 kHz float32 (the default)


async def test_the_worker_batches_the_jobs_of_two_nodes_together(two_workers: list[Worker]) -> None:
    """Each node has one job in flight at a time, so a batch of two holds one job of each node."""
    worker = two_workers[1]
    nodes = [remote([worker], wire_format="s16"), remote([worker], wire_format="s16")]  # (16-bit audio: half the bytes)
    for node in nodes:
        await node.start()
    before = worker.status()
    utterances = tel8k()

    async def one_node(node: RemoteScheduler) -> list[str]:
        return [(await node.decode(DecodeRequest(audio=audio_of(u), final=True))).text for u in utterances]

    try:
        texts = await asyncio.gather(*(one_node(node) for node in nodes))
        during = worker.status()
    finally:
        for node in nodes:
            await node.aclose()
    after = worker.status()
    batches, requests = after.batches - before.batches, after.requests - before.requests
    assert requests == 2 * len(utterances)
    mean_batch = requests / batches
    print(f"two nodes, one job in flight each: {requests} jobs in {batches} batches, mean batch {mean_batch:.2f}")
    assert mean_batch > 1.3
    assert during.nodes == 2 and after.nodes == 0
    for node_texts in texts:
        assert wer([u.ref for u in utterances], node_texts) <= 0.15


async def test_the_node_shares_work_between_equal_workers_and_weighs_only_a_much_slower_one() -> None:
    """Which worker a job goes to, from the loads the workers reported (set here by hand: no worker is reached)."""
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    scheduler = RemoteScheduler(WorkersSettings(urls=closed, key=KEY))
    scheduler._ensure_started()
    a, b = scheduler.links
    try:
        for link in scheduler.links:
            link.healthy = True

        def picks(rtf_a: float, rtf_b: float, queued_a: int = 0, n: int = 8) -> list[str]:
            a.load = pb.WorkerLoad(real_time_factor=rtf_a, queue_depth=queued_a)
            b.load = pb.WorkerLoad(real_time_factor=rtf_b)
            return ["a" if scheduler._pick() is a else "b" for _ in range(n)]

        # Two CPU workers, one measured on a cold first job (3x): they take turns (this kept one call on one worker).
        assert picks(0.06, 0.18).count("a") == 4
        assert picks(0.06, 0.0).count("a") == 4  # one not measured yet counts as fast
        assert picks(0.06, 0.06, queued_a=2) == ["b"] * 8  # least work ahead wins
        # A GPU worker (0.01) beside a CPU one (0.2): the CPU worker takes a job once the GPU has 20x the work ahead.
        assert picks(0.01, 0.2) == ["a"] * 8
        assert picks(0.01, 0.2, queued_a=19, n=1) == ["a"] and picks(0.01, 0.2, queued_a=20, n=1) == ["b"]
    finally:
        await scheduler.aclose()


async def test_finals_in_flight_on_a_killed_worker_are_decoded_by_another(tmp_path: Path) -> None:
    workers = start_workers(tmp_path, 2)
    scheduler = remote(workers)
    await scheduler.start()
    utterances = tel8k() * 2
    try:
        jobs = [asyncio.create_task(scheduler.decode(DecodeRequest(audio=audio_of(u), final=True))) for u in utterances]
        victim = scheduler.links[0]
        while not victim.pending:
            await asyncio.sleep(0.005)
        in_flight = len(victim.pending)
        workers[0].kill()
        hypotheses = await asyncio.wait_for(asyncio.gather(*jobs), 60)
        assert scheduler.retries >= in_flight >= 1
        assert not victim.healthy
    finally:
        await scheduler.aclose()
        stop_workers(workers)
    assert wer([u.ref for u in utterances], [h.text for h in hypotheses]) <= 0.15


async def test_a_worker_told_to_stop_finishes_its_jobs_and_the_node_sends_new_ones_elsewhere(
    two_workers: list[Worker], tmp_path: Path
) -> None:
    (leaving,) = start_workers(tmp_path, 1)
    scheduler = remote([leaving, two_workers[0]])
    await scheduler.start()
    utterances = tel8k() * 2
    try:
        jobs = [asyncio.create_task(scheduler.decode(DecodeRequest(audio=audio_of(u), final=True))) for u in utterances]
        link = scheduler.links[0]
        while not link.pending:
            await asyncio.sleep(0.005)
        leaving.process.send_signal(signal.SIGTERM)
        hypotheses = await asyncio.wait_for(asyncio.gather(*jobs), 60)
        assert leaving.process.wait(30) == 0
        assert link.failed_over == 0  # what it held, it answered
    finally:
        await scheduler.aclose()
        stop_workers([leaving])
    assert wer([u.ref for u in utterances], [h.text for h in hypotheses]) <= 0.15


async def test_a_call_loses_no_final_when_a_worker_is_killed_mid_call(tmp_path: Path) -> None:
    """A real server with two workers; one is killed with SIGKILL while it holds work of the call. Every utterance
    of both parties is still finalised, with a latency bump that is printed and bounded; readiness follows the pool."""
    workers = start_workers(tmp_path, 2)
    env = {
        "MEDIA_SERVER_WORKERS__URLS": "[" + ",".join(f'"{w.address}"' for w in workers) + "]",
        "MEDIA_SERVER_WORKERS__KEY": KEY,
        "MEDIA_SERVER_WORKERS__STATUS_INTERVAL_S": "0.2",
        "MEDIA_SERVER_INSIGHTS__ENABLED": "false",
        "MEDIA_SERVER_DIARIZATION__ENABLED": "false",
    }
    server = start_server(tmp_path / "node", env)
    key = server.keys["admin"]
    http = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    try:
        status = (await http.get("/v1/status")).json()
        assert [w["address"] for w in status["workers"]] == [w.address for w in workers]
        assert all(w["healthy"] for w in status["workers"]) and status["model"].startswith("tiny.en")
        assert (await http.get("/health/ready")).status_code == 200

        utts = tel8k()
        rep, customer = program(utts[0::2], gap_s=1.2, lead_s=0.3), program(utts[1::2], gap_s=1.2, lead_s=1.0)
        call_id = "CA" + uuid.uuid4().hex
        collector = asyncio.create_task(
            collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}", timeout=120)
        )
        await asyncio.sleep(0.2)
        metadata = {"repConsent": "granted", "customerConsent": "granted"}
        call = asyncio.create_task(
            stream_call(stereo(rep, customer), server.ws_url, "twilio", key, call_id=call_id, metadata=metadata)
        )

        # Kill a worker while it holds a final of the call: after the first finals, at the next moment one has one.
        killed_at, killed = await _kill_when_busy(server.url, key, workers, after_s=11.0)
        survivor = next(w for w in workers if w is not killed)
        result = await call
        log: EventLog = await collector
        status = (await http.get("/v1/status")).json()

        # Every utterance of each party has a final that starts within it.
        finals = log.transcripts(final=True)
        for speaker, prog in (("rep", rep), ("customer", customer)):
            starts = [t["words"][0]["start"] for t in finals if t["speaker"] == speaker and t["words"]]
            for start, end, _ in prog.spans:
                assert any(start - 0.5 <= s <= end for s in starts), f"{speaker}'s utterance at {start:.1f} s lost"
            texts = [t["text"] for t in finals if t["speaker"] == speaker]
            assert wer([u.ref for _, _, u in prog.spans], texts) <= 0.15
        assert log.events[-1]["type"] == "call_ended"

        latencies = [
            (arrived, arrived - result.sent_at(e["transcript"]["words"][-1]["end"]))
            for e, arrived in zip(log.events, log.arrivals, strict=True)
            if e["type"] == "transcript" and e["transcript"]["isFinal"] and e["transcript"]["words"]
        ]
        before = [lat for at, lat in latencies if at < killed_at]
        after = [lat for at, lat in latencies if at >= killed_at]
        print(
            f"final latency before the kill: median {statistics.median(before):.2f} s of {len(before)}; the first "
            f"after it (the final the killed worker held, decoded again): {after[0]:.2f} s; the others after: "
            f"{', '.join(f'{lat:.2f}' for lat in after[1:])} s"
        )
        assert max(after) < statistics.median(before) + 3.0  # the bump is bounded: a retry, not a timeout
        described = {w["address"]: w for w in status["workers"]}
        assert not described[killed.address]["healthy"] and described[survivor.address]["healthy"]
        assert described[killed.address]["failedOver"] >= 1
        assert (await http.get("/health/ready")).status_code == 200  # one worker left: still ready

        survivor.kill()
        deadline = time.monotonic() + 10
        while (ready := await http.get("/health/ready")).status_code != 503:
            assert time.monotonic() < deadline, "readiness did not notice that no worker is left"
            await asyncio.sleep(0.2)
        assert ready.json()["reason"] == "no recognition worker reachable"
    finally:
        await http.aclose()
        stop_server(server)
        stop_workers(workers)


async def _kill_when_busy(url: str, key: str, workers: list[Worker], after_s: float) -> tuple[float, Worker]:
    """SIGKILL the worker on which the node has a final in flight, at the first such moment after ``after_s``
    (which worker the node picks is its own choice); the time of the kill and the worker killed."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            status = (await http.get("/v1/status")).json()
            busy = {w["address"] for w in status["workers"] if w["finalsInFlight"] > 0}
            holding = [worker for worker in workers if worker.address in busy]
            if time.monotonic() - started > after_s and holding:
                holding[0].kill()
                return time.time(), holding[0]
            assert time.monotonic() - started < after_s + 15, "no worker held a final of the call"
            await asyncio.sleep(0.02)
