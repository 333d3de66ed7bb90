"""A call outlives the process: the real server process, SIGKILLed mid-call and started again on the same data dir
(its store on SQLite, and on PostgreSQL); a second server on that data dir; a store that fills mid-call. Real Twilio
streams of real speech, real websocket subscribers, the real SQLite file or PostgreSQL database (no mocks of the
store).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from tests.conftest import BIN, ROOT, EventLog, collect_events, free_port, start_server, stop_server
from tests.speech import Program, program, tel8k

GRANTED = {"repConsent": "granted", "customerConsent": "granted"}

pytestmark = pytest.mark.e2e


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _ids(log: EventLog) -> list[int]:
    return [int(e.get("id", 0)) for e in log.events]


def _stream(server_ws: str, key: str, call_id: str, speech: Program, speed: float = 1.0) -> asyncio.Task[StreamResult]:
    recording = Recording([speech.pcm], speech.sample_rate)
    return asyncio.create_task(
        stream_call(recording, server_ws, "twilio", key, call_id=call_id, metadata=GRANTED, speed=speed)
    )


async def test_sigkill_mid_call_loses_no_final_and_a_restart_closes_the_call(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    server = start_server(data, database_env)
    key = server.keys["admin"]
    call_id = "CA" + uuid.uuid4().hex
    log = EventLog()
    collector = asyncio.create_task(
        collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}", timeout=90, log=log)
    )
    await asyncio.sleep(0.3)  # subscribed before the call starts
    streaming = _stream(server.ws_url, key, call_id, program(tel8k(), gap_s=1.0, lead_s=0.3))
    try:
        await _wait_for(lambda: len(log.transcripts(final=True)) >= 3, 60, "three finals")

        # Meanwhile, a second server on the same data dir refuses to start, naming the lock.
        second = await asyncio.to_thread(
            subprocess.run,
            [str(BIN), "serve", "--port", str(free_port()), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert second.returncode != 0
        assert (
            "server.lock" in second.stderr + second.stdout and "another media-server" in second.stderr + second.stdout
        )
        # ... while `media-server keys` works beside the running server.
        keys = await asyncio.to_thread(
            subprocess.run,
            [str(BIN), "keys", "create", "--team", "acme", "--role", "rep", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, **database_env},
        )
        assert keys.returncode == 0 and keys.stdout.strip().splitlines()[-1].startswith("msk_"), keys.stderr

        server.process.kill()  # SIGKILL: nothing runs on the way out
        server.process.wait(10)
        seen_finals = [t["text"] for t in log.transcripts(final=True)]
        last_seen = max(_ids(log))
        await asyncio.wait_for(collector, 10)
        streaming.cancel()
    finally:
        if server.process.poll() is None:
            stop_server(server)
    assert len(seen_finals) >= 3

    again = start_server(data, database_env)
    try:
        key = again.keys["admin"]
        with again.http(key) as http:
            stored = http.get(f"/v1/calls/{call_id}").json()
            listed = http.get("/v1/calls").json()["calls"]
        assert (stored["status"], stored["endReason"]) == ("interrupted", "server_restart")
        texts = [s["text"] for s in stored["transcript"]]
        for final in seen_finals:
            assert final in texts, f"a final a subscriber saw is stored: {final!r} not in {texts}"
        assert stored["duration"] > 0 and stored["speakers"], "its figures are computed from what was stored"
        assert [c["id"] for c in listed if c["id"] == call_id], "it is in the history"

        # A subscriber resuming where it was cut off gets the rest of the call once, ending with call_ended.
        resumed = await collect_events(
            f"{again.ws_url}/v1/calls/{call_id}/events?after={last_seen}&token={key}", timeout=20
        )
        ids = _ids(resumed)
        assert ids and all(i > last_seen for i in ids) and ids == sorted(set(ids)), ids
        assert resumed.events[-1]["type"] == "call_ended"
        assert resumed.events[-1]["callEnded"]["reason"] == "server_restart"
        # The team-wide stream resumes across the restart too; event ids go on after the old ones.
        team = await collect_events(f"{again.ws_url}/v1/events?after={last_seen}&token={key}", timeout=20)
        assert [e["type"] for e in team.events if e["callId"] == call_id][-1] == "call_ended"
    finally:
        stop_server(again)


def _page_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


async def test_a_store_that_fills_mid_call_is_loud_and_loses_nothing_stored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    utterances = tel8k()
    first = start_server(data)
    try:
        key = first.keys["admin"]
        big = "CA-big-" + uuid.uuid4().hex[:8]
        result = await _stream(first.ws_url, key, big, program(utterances * 2, gap_s=0.8, lead_s=0.3), speed=4)
        assert result.close_code == 1000
        with first.http(key) as http:
            before = http.get(f"/v1/calls/{big}").json()
        assert before["status"] == "completed" and len(before["transcript"]) >= 8
    finally:
        stop_server(first)

    # Room for two more pages only: the next call fills the database mid-call.
    pages = _page_count(data / "media_server.db") + 2
    env = {
        "MEDIA_SERVER_STORE__MAX_SIZE_MB": f"{pages * 4096 / 1024 / 1024:.6f}",
        "MEDIA_SERVER_STORE__RETRY_FOR_S": "2",  # what waits longer for the store is given up
    }
    server = start_server(data, env)
    try:
        key = server.keys["admin"]
        filling = "CA-fill-" + uuid.uuid4().hex[:8]
        log = EventLog()
        collector = asyncio.create_task(
            collect_events(f"{server.ws_url}/v1/calls/{filling}/events?token={key}", timeout=60, log=log)
        )
        await asyncio.sleep(0.3)
        result = await _stream(server.ws_url, key, filling, program(utterances * 2, gap_s=0.8, lead_s=0.3), speed=4)
        assert result.close_code == 1011, (result.close_code, result.close_reason, server.log()[-3000:])
        assert "storage" in result.close_reason
        await asyncio.wait_for(collector, 30)
        errors = [e["error"] for e in log.of_type("error")]
        assert any(e["code"] == "storage_failed" for e in errors), "its subscribers are told"
        (ended,) = log.of_type("call_ended")
        assert (ended["callEnded"]["reason"], int(ended.get("id", 0))) == ("storage_failed", 0), "ended, not stored"
        assert "database or disk is full" in server.log()

        with server.http(key) as http:
            assert http.get("/health").status_code == 200, "the server stays up"
            ready = http.get("/health/ready")
            assert ready.status_code == 503 and "storage" in ready.json()["reason"]
            # Readiness answers anyone: a category, not the database's own words (those are in the log above).
            assert ready.json()["reason"] == "storage failing: full (the database or its disk)", ready.json()
            assert http.get(f"/v1/calls/{big}").json()["transcript"] == before["transcript"], "nothing stored is lost"
            # Space comes back: an admin deletes an old call.
            assert http.delete(f"/v1/calls/{big}").status_code == 204
        await _wait_for(lambda: httpx.get(f"{server.url}/health/ready").status_code == 200, 20, "ready again")

        with server.http(key) as http:
            lost = http.get(f"/v1/calls/{filling}").json()
        assert (lost["status"], lost["endReason"]) == ("interrupted", "storage_failed"), "never reported as stored"
        stored_finals = {s["text"] for s in lost["transcript"]}
        assert stored_finals <= {t["text"] for t in log.transcripts(final=True)}

        after = "CA-after-" + uuid.uuid4().hex[:8]
        result = await _stream(server.ws_url, key, after, program(utterances[:2], gap_s=0.8, lead_s=0.3), speed=4)
        assert result.close_code == 1000
        with server.http(key) as http:
            stored = http.get(f"/v1/calls/{after}").json()
        assert stored["status"] == "completed" and stored["transcript"], "the next call is stored"
    finally:
        stop_server(server)
