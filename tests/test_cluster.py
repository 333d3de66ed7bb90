"""Several servers as one, as their users notice it: two real server processes sharing one PostgreSQL database and
one Redis (a ``redis-server`` of the test's own) and decoding on two recognition worker processes, real Twilio
streams of real speech, real websocket subscribers.
A call on one server is followed, resumed, listed, changed and stored from the other; a server killed mid-call is
taken over by the other when its lease runs out; Redis restarted mid-call loses no event."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from media_server.v1 import api_pb2, api_pb2_grpc
from media_server.v1 import events_pb2 as pb
from tests.conftest import (
    EventLog,
    Server,
    ThrowawayRedis,
    _asyncpg_dsn,
    collect_events,
    start_servers,
    stop_server,
)
from tests.speech import Program, program, tel8k
from tests.workers import KEY as WORKER_KEY
from tests.workers import Worker, start_workers, stop_workers

pytestmark = pytest.mark.e2e

GRANTED = {"repConsent": "granted", "customerConsent": "granted"}
LEASE_S = 3.0


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    """Two recognition worker processes (``media-server worker``) that both servers decode on."""
    started = start_workers(tmp_path_factory.mktemp("workers"), 2)
    yield started
    stop_workers(started)


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, redis_server: ThrowawayRedis, workers: list[Worker]
) -> Iterator[tuple[Server, Server]]:
    """Servers A and B on one PostgreSQL database and one Redis (leases of 3 s), decoding on two workers."""
    env = {
        "MEDIA_SERVER_DATABASE_URL": postgres_url,
        "MEDIA_SERVER_EVENTS__BUS": "redis",
        "MEDIA_SERVER_EVENTS__REDIS_URL": redis_server.url,
        "MEDIA_SERVER_CLUSTER__LEASE_S": str(LEASE_S),
        "MEDIA_SERVER_WORKERS__URLS": json.dumps([w.address for w in workers]),
        "MEDIA_SERVER_WORKERS__KEY": WORKER_KEY,
    }
    # Both at once (one PostgreSQL database takes two servers starting together: test_store tests it); ~10 s less.
    a, b = start_servers((tmp_path / "a", env), (tmp_path / "b", env))
    try:
        yield a, b
    finally:
        for server in (a, b):
            if server.process.poll() is None:
                stop_server(server)


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _stream(server: Server, key: str, call_id: str, speech: Program) -> asyncio.Task[StreamResult]:
    recording = Recording([speech.pcm], speech.sample_rate)
    return asyncio.create_task(stream_call(recording, server.ws_url, "twilio", key, call_id=call_id, metadata=GRANTED))


def _subscribe(server: Server, key: str, path: str, log: EventLog, timeout: float = 90) -> asyncio.Task[EventLog]:
    sep = "&" if "?" in path else "?"
    return asyncio.create_task(collect_events(f"{server.ws_url}{path}{sep}token={key}", timeout=timeout, log=log))


def _replayable(log: EventLog, call_id: str) -> list[dict[str, Any]]:
    """The call's events a resume hands out (all but interim transcripts and id-0 notices)."""
    return [
        e
        for e in log.events
        if e["callId"] == call_id
        and int(e.get("id", 0))
        and not (e["type"] == "transcript" and not e["transcript"]["isFinal"])
    ]


async def _rows_of(url: str, call_id: str) -> int:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls WHERE id = $1", call_id))
    finally:
        await conn.close()


def _get(server: Server, key: str, path: str) -> httpx.Response:
    with server.http(key) as http:
        return http.get(path)


async def test_a_call_on_one_server_is_followed_resumed_listed_changed_and_stored_once_from_the_other(
    cluster: tuple[Server, Server], postgres_url: str, workers: list[Worker]
) -> None:
    a, b = cluster
    key = a.keys["admin"]  # (keys live in the shared database: valid on both)
    call_id = "CA" + uuid.uuid4().hex
    whole, cut = EventLog(), EventLog()
    reference = _subscribe(b, key, "/v1/events", whole)  # team-wide, on the server without the call
    first_part = _subscribe(b, key, f"/v1/calls/{call_id}/events", cut)
    await asyncio.sleep(0.5)
    streaming = _stream(a, key, call_id, program(tel8k()[:4], gap_s=1.0, lead_s=0.3))

    await _wait_for(lambda: len(cut.transcripts(final=True)) >= 1, 60, "a final on server B")
    first_part.cancel()  # the subscriber is cut off ...
    seen = [e for e in cut.events if int(e.get("id", 0))]
    last_seen = int(seen[-1]["id"])
    resumed = EventLog()  # ... and resumes on server A, after the last event it saw
    rest = _subscribe(a, key, f"/v1/calls/{call_id}/events?after={last_seen}", resumed)

    # Live on A; both servers list it.
    for server in (a, b):
        deadline = time.monotonic() + 5
        while call_id not in [c["id"] for c in _get(server, key, "/v1/live").json()["calls"]]:
            assert time.monotonic() < deadline, f"/v1/live of {server.url} does not show the call"
            await asyncio.sleep(0.2)
    for server in (a, b):  # (both decode on the two workers)
        seen = _get(server, key, "/v1/status").json()["workers"]
        assert sorted(w["address"] for w in seen) == sorted(w.address for w in workers), seen
    live_on_b = next(c for c in _get(b, key, "/v1/live").json()["calls"] if c["id"] == call_id)
    assert live_on_b["source"] == "twilio" and [p["role"] for p in live_on_b["participants"]]

    # Changed from B: the server holding it (A) applies it.
    with b.http(key) as http:
        disposition = http.put(f"/v1/calls/{call_id}/disposition", json={"disposition": "meeting_booked"})
        assert disposition.status_code == 200 and disposition.json()["live"] is True, disposition.text
        listen = http.post(f"/v1/calls/{call_id}/listen", content=b"v=0", headers={"Content-Type": "application/sdp"})
        assert listen.status_code == 307 and listen.headers["location"].startswith(a.url), listen.headers
        assert http.delete(f"/v1/calls/{call_id}").status_code == 409  # (live: not deletable from anywhere)
    async with grpc.aio.insecure_channel(b.grpc_target) as channel:  # the gRPC API the same way
        update = await api_pb2_grpc.MediaServerStub(channel).UpdateConsent(
            api_pb2.UpdateConsentRequest(call_id=call_id, role="rep", consent=pb.CONSENT_GRANTED),
            metadata=[("authorization", f"Bearer {key}")],
        )
    assert update.live and [p.role for p in update.participants] and update.channels

    result = await asyncio.wait_for(streaming, 90)
    assert result.close_code == 1000
    await asyncio.wait_for(rest, 60)
    await asyncio.wait_for(reference, 60)

    # Cut + resumed on the other server = the whole call, nothing lost, nothing twice.
    followed = _replayable(cut, call_id) + _replayable(resumed, call_id)
    assert [e["id"] for e in followed] == [e["id"] for e in _replayable(whole, call_id)]
    assert len({e["id"] for e in followed}) == len(followed)
    assert followed[-1]["type"] == "call_ended"
    finals_whole = [e["transcript"]["text"] for e in followed if e["type"] == "transcript"]
    assert len(finals_whole) >= 3

    stored = _get(b, key, f"/v1/calls/{call_id}").json()
    assert stored["status"] == "completed" and stored["disposition"] == "meeting_booked"
    assert [s["text"] for s in stored["transcript"]] == finals_whole
    assert await _rows_of(postgres_url, call_id) == 1, "stored once"
    for server in (a, b):
        assert call_id not in [c["id"] for c in _get(server, key, "/v1/live").json()["calls"]]


async def test_a_server_killed_mid_call_is_taken_over_when_its_lease_runs_out(cluster: tuple[Server, Server]) -> None:
    a, b = cluster
    key = a.keys["admin"]
    call_id = "CA" + uuid.uuid4().hex
    log = EventLog()
    watching = _subscribe(b, key, f"/v1/calls/{call_id}/events", log)
    await asyncio.sleep(0.5)
    streaming = _stream(a, key, call_id, program(tel8k()[:4], gap_s=1.0, lead_s=0.3))
    await _wait_for(lambda: len(log.transcripts(final=True)) >= 2, 60, "two finals")
    a.process.kill()  # SIGKILL: no lease given up, no call ended
    killed = time.monotonic()
    a.process.wait(10)
    seen_finals = [t["text"] for t in log.transcripts(final=True)]
    await asyncio.wait_for(watching, 30)
    taken_after = time.monotonic() - killed
    streaming.cancel()

    ended = log.events[-1]
    assert ended["type"] == "call_ended", [e["type"] for e in log.events[-3:]]
    assert (ended["callEnded"]["status"], ended["callEnded"]["reason"]) == ("interrupted", "node_lost")
    assert taken_after < LEASE_S * 2 + 3, taken_after
    stored = _get(b, key, f"/v1/calls/{call_id}").json()
    assert (stored["status"], stored["endReason"]) == ("interrupted", "node_lost")
    texts = [s["text"] for s in stored["transcript"]]
    assert all(final in texts for final in seen_finals), (seen_finals, texts)
    status = _get(b, key, "/v1/status").json()
    assert status["cluster"]["takenOver"], status["cluster"]


async def test_redis_restarted_mid_call_loses_no_event(
    cluster: tuple[Server, Server], redis_server: ThrowawayRedis
) -> None:
    a, b = cluster
    key = a.keys["admin"]
    call_id = "CA" + uuid.uuid4().hex
    log = EventLog()
    watching = _subscribe(b, key, f"/v1/calls/{call_id}/events", log)
    await asyncio.sleep(0.5)
    streaming = _stream(a, key, call_id, program(tel8k()[:4], gap_s=1.0, lead_s=0.3))
    await _wait_for(lambda: len(log.transcripts(final=True)) >= 1, 60, "a final")
    await asyncio.to_thread(redis_server.restart, 2.0)  # (it kept nothing)
    result = await asyncio.wait_for(streaming, 90)
    assert result.close_code == 1000
    await asyncio.wait_for(watching, 60)

    assert log.events[-1]["type"] == "call_ended"
    ids = [int(e["id"]) for e in log.events if int(e.get("id", 0))]
    assert len(ids) == len(set(ids)), "nothing twice"
    stored = _get(b, key, f"/v1/calls/{call_id}").json()
    finals = [t["text"] for t in log.transcripts(final=True)]
    assert finals == [s["text"] for s in stored["transcript"]], "every stored final reached the subscriber"
    ready = await asyncio.to_thread(httpx.get, f"{b.url}/health/ready", timeout=5)
    assert ready.status_code == 200, ready.text
