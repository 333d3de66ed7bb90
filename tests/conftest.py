"""Fixtures shared by the test files: a real server process, API keys, an event-collecting client; the store's
databases (``store_url``: SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "media-server"

# Test calls are streamed faster than real time, to be quick: their servers (in this process or started from it)
# do not pace them. Pacing (calls.pacing) is tested on servers that turn it on (test_pacing.py).
os.environ.setdefault("MEDIA_SERVER_CALLS__PACING__ENABLED", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(data_dir: Path, team: str, role: str, env: dict[str, str] | None = None) -> str:
    """One key (the console script itself is tested in test_cli)."""
    return create_keys(data_dir, {"key": (team, role)}, env)["key"]


# `media-server keys create` once per key, all in one interpreter (a process start and the CLI's imports take about
# a second: a server's four keys would take four).
_CREATE_KEYS = """
import json, sys
from media_server.cli import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code:
        sys.exit(code)
    print("\\n--key--", flush=True)
"""


def create_keys(
    data_dir: Path, wanted: dict[str, tuple[str, str]], env: dict[str, str] | None = None
) -> dict[str, str]:
    """Keys named as in ``wanted`` (name -> (team, role)), each made by `media-server keys create`'s own code."""
    argvs = [
        ["keys", "create", "--team", team, "--role", role, "--data-dir", str(data_dir)]
        for team, role in wanted.values()
    ]
    out = subprocess.run(
        [sys.executable, "-c", _CREATE_KEYS, json.dumps(argvs)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    secrets = [part.strip().splitlines()[-1] for part in out.stdout.split("\n--key--")[: len(argvs)]]
    assert len(secrets) == len(argvs) and all(s.startswith("msk_") for s in secrets), out.stdout
    return dict(zip(wanted, secrets, strict=True))


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
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Every server gets its own gRPC port (the default 50051 would clash between test servers).
    env = {
        **os.environ,
        "MEDIA_SERVER_LOG_LEVEL": "info",
        "MEDIA_SERVER_GRPC__PORT": str(free_port()),
        **(extra_env or {}),
    }
    wanted = {
        "admin": ("acme", "admin"),
        "rep": ("acme", "rep"),
        "ingest": ("acme", "ingest"),
        "other": ("globex", "admin"),
    }
    keys = create_keys(data_dir, wanted, env)
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
    try:
        wait_until_serving(f"{url}/health", process, log_path, 60)
    except RuntimeError:
        process.kill()
        raise
    return Server(url, f"ws://127.0.0.1:{port}", data_dir, log_path, keys, process, int(env["MEDIA_SERVER_GRPC__PORT"]))


def wait_until_serving(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float, poll_s: float = 0.2
) -> None:
    """Poll ``url`` until it answers 200; ``RuntimeError`` with the process's log if it exits or times out first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(poll_s)


def start_servers(*specs: tuple[Path, dict[str, str]]) -> list[Server]:
    """Servers (data dir, extra environment) started at once: a start is mostly waiting (keys, the model load,
    the health poll). All start or none is left running."""
    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        starting = [pool.submit(start_server, data_dir, env) for data_dir, env in specs]
        concurrent.futures.wait(starting)
    errors = [error for future in starting if (error := future.exception()) is not None]
    if errors:
        for future in starting:
            if future.exception() is None:
                stop_server(future.result())
        raise errors[0]
    return [future.result() for future in starting]


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the session: `media-server serve` in a subprocess, SQLite in a temp dir."""
    env = {"MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": "4", "MEDIA_SERVER_GRPC__REFLECTION": "true"}  # (off by default)
    srv = start_server(tmp_path_factory.mktemp("server"), env)
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


# -- PostgreSQL ----------------------------------------------------------------------------------------------------

#: A PostgreSQL server the tests may create databases on (as SQLAlchemy URL). Unset: the one on localhost:5432 if it
#: answers, else a throwaway server started from the installed binaries.
POSTGRES_URL_ENV = "MEDIA_SERVER_TEST_POSTGRES_URL"
_LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _missing(why: str) -> None:
    """A service the tests need is missing: skipped, or a failure under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (CI=true: the tests need it)")
    pytest.skip(why)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _postgres(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def postgres_run(url: str, *statements: str) -> None:
    """Run statements on the database of ``url`` (each in its own transaction), from synchronous code."""
    asyncio.run(_postgres(url, *statements))


def _answers(url: str) -> bool:
    try:
        postgres_run(url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL server of our own (``initdb`` refuses root: run as the postgres user then), fsync off."""

    url: str
    pg_ctl: str
    data: Path
    as_user: list[str]
    options: str = ""

    @classmethod
    def start(cls) -> ThrowawayPostgres:
        initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) are installed")
        base = Path(tempfile.mkdtemp(prefix="media-server-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        data = base / "data"
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
        )
        port = free_port()
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
        return cls(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", pg_ctl, data, as_user, options)

    def pause(self) -> None:
        """Stop the server, keeping its data (``resume`` starts it again on the same port)."""
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"], check=True)

    def resume(self) -> None:
        log = str(self.data.parent / "log")
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", log, "-w", "start"],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.data.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server (the URL of a database on it to connect to): ``MEDIA_SERVER_TEST_POSTGRES_URL``, else
    the one on localhost:5432, else a throwaway one. Skipped when there is none (a failure under CI=true)."""
    configured = os.environ.get(POSTGRES_URL_ENV)
    if configured:
        if not _answers(configured):
            _missing(f"PostgreSQL at {POSTGRES_URL_ENV}={make_url(configured)!r} does not answer")
        yield configured
        return
    if _answers(_LOCAL_POSTGRES):
        yield _LOCAL_POSTGRES
        return
    try:
        server = ThrowawayPostgres.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError, KeyError, LookupError) as exc:
        _missing(f"no PostgreSQL: none answers on localhost:5432 and none could be started ({exc})")
        return
    try:
        yield server.url
    finally:
        server.stop()


async def _drop_leftovers(url: str, prefix: str) -> None:
    """Databases of earlier sessions on this machine whose process is gone (killed before it could drop them)."""
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        names = [r[0] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "%")]
        for name in names:
            pid = name[len(prefix) :].split("_")[0]
            if pid.isdigit() and not _alive(int(pid)):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server, dropped at the end (parallel runs and
    leftovers never meet; a session killed before it could drop its database has it dropped by a later one)."""
    prefix = f"media_server_test_{zlib.crc32(socket.gethostname().encode()):08x}_"
    asyncio.run(_drop_leftovers(postgres_server, prefix))
    name = f"{prefix}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    postgres_run(postgres_server, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        postgres_run(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, empty: each test starts from no tables."""
    postgres_run(postgres_database, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for a store, on each backend the server supports."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that gives a server process its store: SQLite in its data dir (the default), or the test
    session's PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    return {"MEDIA_SERVER_DATABASE_URL": request.getfixturevalue("postgres_url")}


@dataclass
class ThrowawayRedis:
    """A ``redis-server`` of our own on a free port (the machine's Redis is shared), keeping nothing on disk;
    ``restart`` kills it and starts a new one on the same port (a Redis restart or failover that kept nothing)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls) -> ThrowawayRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        server = cls(free_port(), Path(tempfile.mkdtemp(prefix="media-server-redis-")))
        server.resume()
        return server

    def resume(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, *args, "--dir", str(self.directory), "--logfile", str(self.directory / "log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.kill()
        time.sleep(down_s)
        self.resume()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[ThrowawayRedis]:
    """A Redis of this test's own (``redis-server`` from the system's packages; skipped where there is none, a
    failure under CI=true)."""
    try:
        server = ThrowawayRedis.start()
    except (RuntimeError, OSError) as exc:
        _missing(f"no Redis: {exc}")
        raise
    try:
        yield server
    finally:
        server.stop()
