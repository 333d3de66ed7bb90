"""The server's limits and defaults against clients that misbehave or probe (issue 18): slow and half-sent requests
are cut, connections are capped, every ingest path has its capacity limit, reflection is off, the key scheme is in
``/openapi.json``, and the data dir is its owner's alone. A real `media-server serve` with small limits, raw
sockets, real websocket and gRPC clients."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.ingest.allowlist import AllowList
from tests.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 24
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "MEDIA_SERVER_HTTP__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "MEDIA_SERVER_HTTP__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "MEDIA_SERVER_CALLS__MAX_BY_SOURCE__TWILIO": "1",
        "MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": "5",
    }
    srv = start_server(tmp_path_factory.mktemp("limited"), env)
    yield srv
    stop_server(srv)


def _address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def test_half_sent_and_silent_connections_are_closed(limited: Server) -> None:
    half = socket.create_connection(_address(limited))
    silent = socket.create_connection(_address(limited))
    try:
        half.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # ... and never the rest (slowloris)
        for sock in (half, silent):
            closed, _ = _closed_within(sock, HEADER_TIMEOUT_S + 5)
            assert closed, "a connection that never completed its request headers stayed open"
    finally:
        half.close()
        silent.close()
    # A request sent whole, even slowly within the limit, is served.
    with socket.create_connection(_address(limited)) as ok:
        ok.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(HEADER_TIMEOUT_S / 3)
        ok.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        _, answer = _closed_within(ok, 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


def test_connections_over_the_cap_get_503_and_the_server_stays_usable(limited: Server) -> None:
    flood = [socket.create_connection(_address(limited)) for _ in range(MAX_CONNECTIONS + 8)]
    try:
        answers = []
        for sock in flood:
            sock.settimeout(0.5)
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                answers.append(b"")
        refused = [a for a in answers if a]
        assert len(refused) >= 8, f"{len(refused)} of {len(flood)} connections refused over a cap of {MAX_CONNECTIONS}"
        assert all(a.startswith(b"HTTP/1.1 503") and b"retry-after: " in a for a in refused), refused[0]
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # (the closed sockets leave the server's count as it notices them)
        try:
            assert httpx.get(f"{limited.url}/health", timeout=2).status_code == 200
            break
        except (httpx.HTTPError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert "over http.max_connections" in limited.log()


async def _twilio_start(ws: object, call_id: str, token: str) -> None:
    start = {
        "streamSid": "MZ" + call_id,
        "callSid": call_id,
        "tracks": ["inbound"],
        "customParameters": {"token": token, **GRANTED},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))  # type: ignore[attr-defined]
    await ws.send(
        json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": start["streamSid"]})
    )  # type: ignore[attr-defined]


async def test_twilio_streams_over_their_limit_are_told_to_come_back(limited: Server) -> None:
    key = limited.keys["ingest"]
    async with connect(f"{limited.ws_url}/v1/ingest/twilio") as first:
        await _twilio_start(first, f"CA{uuid.uuid4().hex}", key)
        await asyncio.sleep(1.0)  # (the first call is open)
        async with connect(f"{limited.ws_url}/v1/ingest/twilio") as second:
            await _twilio_start(second, f"CA{uuid.uuid4().hex}", key)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(second.recv(), 10)
            assert second.close_code == 1013, (second.close_code, second.close_reason)
            assert "calls.max_by_source.twilio" in (second.close_reason or "")
        # Another path's calls are not counted against Twilio's limit.
        async with connect(
            f"{limited.ws_url}/v1/ingest/l16", additional_headers={"Authorization": f"Bearer {key}"}
        ) as l16:
            await l16.send(json.dumps({"callSid": f"L16-{uuid.uuid4().hex}", "sampleRate": 8000, **GRANTED}))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(l16.recv(), 1.5)  # (no close: the call is open)


@pytest.fixture
async def channel(limited: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(limited.grpc_target) as ch:
        yield ch


async def test_grpc_reflection_is_off_unless_turned_on(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    # The reflection method called with its one request sent with the call (a streaming request that the server
    # refuses before the client has sent it would end INTERNAL on the client's side instead).
    ask = channel.unary_unary(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_openapi_declares_the_key_scheme(limited: Server) -> None:
    schema = httpx.get(f"{limited.url}/openapi.json", timeout=10).json()
    scheme = schema["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["security"] == [{"apiKey": []}]
    assert schema["paths"]["/health"]["get"]["security"] == []
    assert "subprotocol" in schema["info"]["description"]
    assert httpx.get(f"{limited.url}/docs", timeout=10).status_code == 200


def test_the_data_dir_is_the_owners_alone(limited: Server) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(limited.data_dir) == 0o700
    for name in ("media_server.db", "server.lock", "node-id"):
        assert mode(limited.data_dir / name) == 0o600, name


def test_a_data_dir_open_to_others_is_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "open"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "media_server.db").touch(mode=0o644)
    (data / "media_server.db").chmod(0o644)
    srv = start_server(data)
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "media_server.db").stat().st_mode) == 0o600
    finally:
        stop_server(srv)


def test_an_empty_allow_list_allows_no_one() -> None:
    assert not AllowList([]).allows("127.0.0.1")
    assert AllowList(["0.0.0.0/0", "::/0"]).allows("203.0.113.9") and AllowList(["::/0"]).allows("2001:db8::1")
    assert AllowList(["10.0.0.0/8"]).allows("::ffff:10.1.2.3") and not AllowList(["10.0.0.0/8"]).allows("11.0.0.1")


async def test_two_teams_may_use_one_call_id_and_neither_learns_of_the_other(limited: Server) -> None:
    """Team globex streams a call with the id of team acme's live call: it gets its own call, not "already
    exists" (which would tell it acme's ids and let it squat them)."""
    call_id = f"CA_T1-{uuid.uuid4().hex[:8]}"
    acme, globex = limited.keys["ingest"], limited.keys["other"]
    opened = []
    for key in (acme, globex):
        ws = await connect(f"{limited.ws_url}/v1/ingest/l16", additional_headers={"Authorization": f"Bearer {key}"})
        await ws.send(json.dumps({"callSid": call_id, "sampleRate": 8000, **GRANTED}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 1.5)  # (no close: the call is open)
        opened.append(ws)
    for ws in opened:
        await ws.close()
    for key in (limited.keys["admin"], globex):
        with limited.http(key) as http:
            deadline = time.monotonic() + 10
            while (call := http.get(f"/v1/calls/{call_id}").json()).get("status") == "live":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            assert call["id"] == call_id and call["status"] != "live"
