"""The server's log, as a security reviewer reads it: API keys given as ``?token=`` (the dashboard's websockets)
and people looked up by phone number leave no trace in it; the request lines are still there, path only. The
session's real server process (``tests/conftest.py``), its log file."""

from __future__ import annotations

import asyncio
import time

import httpx
from websockets.asyncio.client import connect

from tests.conftest import Server


async def test_no_key_and_no_phone_number_from_a_query_string_reaches_the_log(server: Server) -> None:
    key = server.keys["admin"]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.get("/v1/calls", params={"participant": "+1 555 867 5309", "token": key})
        assert answer.status_code == 200
    async with connect(f"{server.ws_url}/v1/events?after=0&token={key}") as ws:
        await asyncio.sleep(0.2)
        await ws.close()
    deadline = time.monotonic() + 5
    while '"GET /v1/calls?…' not in server.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    log = server.log()
    assert '"GET /v1/calls?… HTTP/1.1" 200' in log and '"WebSocket /v1/events?…"' in log
    for secret in (*server.keys.values(), "5558675309", "867+5309", "867%205309", "867 5309"):
        assert secret not in log, secret
