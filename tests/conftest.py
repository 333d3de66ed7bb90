"""Fixtures shared by the test files: a real server process, API keys, an event-collecting client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "media-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(data_dir: Path, team: str, role: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(BIN), "keys", "create", "--team", team, "--role", role, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    url: str
    ws_url: str
    data_dir: Path
    log_path: Path
    keys: dict[str, str]
    process: subprocess.Popen[bytes]
    grpc_port: int = 0

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def start_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    # Every server gets its own gRPC port (the default 50051 would clash between test servers).
    env = {
        **os.environ,
        "MEDIA_SERVER_LOG_LEVEL": "info",
        "MEDIA_SERVER_GRPC__PORT": str(free_port()),
        **(extra_env or {}),
    }
    keys = {
        "admin": create_key(data_dir, "acme", "admin", env),
        "rep": create_key(data_dir, "acme", "rep", env),
        "ingest": create_key(data_dir, "acme", "ingest", env),
        "other": create_key(data_dir, "globex", "admin", env),
    }
    port = free_port()
    log_path = data_dir / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return Server(url, f"ws://127.0.0.1:{port}", data_dir, log_path, keys, process, int(env["MEDIA_SERVER_GRPC__PORT"]))


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the session: `media-server serve` in a subprocess, SQLite in a temp dir."""
    srv = start_server(tmp_path_factory.mktemp("server"), {"MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": "4"})
    yield srv
    stop_server(srv)


@dataclass
class EventLog:
    """Events one websocket subscriber received, with the wall-clock time of arrival."""

    events: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def transcripts(self, final: bool | None = None) -> list[dict[str, Any]]:
        out = [e["transcript"] for e in self.of_type("transcript")]
        return out if final is None else [t for t in out if t["isFinal"] == final]


async def collect_events(
    url: str, until_type: str | None = "call_ended", timeout: float = 120, log: EventLog | None = None
) -> EventLog:
    """Subscribe to an events websocket and collect until an event of ``until_type`` (or close/timeout)."""
    log = log or EventLog()
    try:
        async with asyncio.timeout(timeout):
            async with connect(url) as ws:
                try:
                    async for raw in ws:
                        event = json.loads(raw)
                        log.events.append(event)
                        log.arrivals.append(time.time())
                        if until_type and event["type"] == until_type:
                            return log
                except ConnectionClosed:
                    pass  # close_code and close_reason say why
                finally:
                    log.close_code = ws.close_code
                    log.close_reason = ws.close_reason or ""
    except TimeoutError:
        pass
    return log
