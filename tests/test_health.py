"""Liveness and readiness as an orchestrator probes them: a real `media-server serve` whose SQLite store fills up
while no call runs (another writer takes the room its ``store.max_size_mb`` leaves) and then frees it again. Live
all along; ready only while the store takes writes, though no call's write failed."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ThrowawayRedis, start_server, stop_server

pytestmark = pytest.mark.e2e


def _until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _fill(db: Path, megabytes: int) -> None:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("CREATE TABLE filler (blob BLOB)")
        for _ in range(megabytes):
            conn.execute("INSERT INTO filler VALUES (?)", (bytes(1024 * 1024),))


def _free(db: Path) -> None:
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("DROP TABLE filler")


def test_ready_is_false_while_the_store_cannot_be_written_and_live_stays_true(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", {"MEDIA_SERVER_STORE__MAX_SIZE_MB": "1"})
    try:
        with server.http() as http:
            assert http.get("/health/live").json() == {"status": "ok"}
            assert http.get("/health").status_code == 200, "/health stays, as liveness"
            _until(lambda: http.get("/health/ready").status_code == 200, "ready after the start")
            assert http.get("/health/ready").json()["ready"] is True

            _fill(server.data_dir / "media_server.db", 2)  # past the server's 1 MB: no room for its next write
            _until(lambda: http.get("/health/ready").status_code == 503, "not ready while the store is full")
            answer = http.get("/health/ready").json()
            assert answer["ready"] is False and "storage" in answer["reason"], answer
            assert "full" in answer["reason"], answer
            assert http.get("/health/live").status_code == 200, "alive all along"

            _free(server.data_dir / "media_server.db")
            _until(lambda: http.get("/health/ready").status_code == 200, "ready again once there is room")
    finally:
        stop_server(server)


def test_ready_is_false_while_redis_is_down_and_true_once_it_is_back(
    tmp_path: Path, redis_server: ThrowawayRedis
) -> None:
    """A server on the Redis event bus: Redis gone, not ready (it says why) but alive; Redis back, ready again."""
    env = {"MEDIA_SERVER_EVENTS__BUS": "redis", "MEDIA_SERVER_EVENTS__REDIS_URL": redis_server.url}
    server = start_server(tmp_path / "data", env)
    try:
        with server.http() as http:
            _until(lambda: http.get("/health/ready").status_code == 200, "ready on Redis")
            redis_server.kill()
            _until(lambda: http.get("/health/ready").status_code == 503, "not ready without Redis")
            answer = http.get("/health/ready").json()
            assert answer["ready"] is False and "Redis" in answer["reason"], answer
            assert http.get("/health/live").status_code == 200, "alive without Redis"
            redis_server.resume()
            _until(lambda: http.get("/health/ready").status_code == 200, "ready again once Redis is back", 60)
    finally:
        stop_server(server)
