"""The websocket ingest runner (``ingest/websocket.py``) in process, behind the Twilio, Telnyx and L16 routes:
what a client is told when the server is full, and that the slot is usable again once a call ends.

Every participant's consent is denied, so no channel is transcribed and no VAD or model is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.auth.keys import Role
from media_server.bus import InMemoryEventBus
from media_server.calls.call import CallServices, ChannelSpec
from media_server.calls.lifecycle import CallEnd, CallLifecycle
from media_server.calls.metadata import CallMetadata, Consent
from media_server.config import IngestSettings, Settings
from media_server.ingest.l16 import PROTOCOL as L16
from media_server.ingest.twilio import PROTOCOL as TWILIO
from media_server.services import Services, streaming_config
from media_server.store.journal import Journal
from media_server.store.store import Store
from media_server.teams.directory import TeamDirectory
from models.asr.scheduler import DecodeScheduler
from models.vad import SileroVAD
from tests.conftest import free_port

DENIED = {"repConsent": "denied", "customerConsent": "denied"}


@dataclass
class Local:
    services: Services
    ws_url: str
    key: str


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Local]:
    settings = Settings(data_dir=tmp_path, ingest=IngestSettings(idle_timeout_s=5, start_timeout_s=5))
    store = Store(settings.db_url)
    await store.open()
    _, key = await store.create_key("acme", Role.INGEST)
    bus = InMemoryEventBus()
    journal = Journal(store, bus)
    await journal.start()
    no_vad, no_scheduler = cast(SileroVAD, None), cast(DecodeScheduler, None)
    call_services = CallServices(journal, no_vad, no_scheduler, streaming_config(settings), settings.consent_policy)
    teams = TeamDirectory(store)
    services = Services(
        settings, store, bus, journal, no_vad, no_scheduler, CallLifecycle(call_services, store, teams), teams
    )
    app = FastAPI()
    for protocol in (TWILIO, L16):
        assert protocol.router is not None
        app.include_router(protocol.router)
    app.state.services = services
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="websockets-sansio")
    )
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield Local(services, f"ws://127.0.0.1:{port}", key)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
        await services.calls.shutdown()
        await journal.close()
        await bus.close()
        await store.close()


def start_frame(route: str, call_id: str) -> str:
    """The first frame of each protocol, as its documents show it, with consent denied for both parties."""
    if route == "twilio":
        start = {
            "callSid": call_id,
            "tracks": ["inbound", "outbound"],
            "customParameters": DENIED,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        return json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": "MZ1"})
    if route == "telnyx":
        start = {
            "call_control_id": call_id,
            "custom_parameters": DENIED,
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        }
        return json.dumps({"event": "start", "sequence_number": "1", "start": start, "stream_id": "s1"})
    return json.dumps({"callSid": call_id, "sampleRate": 8000, "mixType": "stereo", **DENIED})


def stop_frame(route: str) -> str:
    return json.dumps({"event": "stop", "stop": {}} if route != "l16" else {"event": "stop"})


@pytest.mark.parametrize("route", ["twilio", "telnyx", "l16"])
async def test_a_call_over_capacity_is_told_to_try_again_later(local: Local, route: str) -> None:
    calls = local.services.calls
    calls.max_live = 1
    metadata = CallMetadata()
    metadata.rep.consent = metadata.customer.consent = Consent.DENIED
    held = await calls.open("held", "acme", "test", metadata, [ChannelSpec(0, "mixed", 8000)])
    url = f"{local.ws_url}/v1/ingest/{route}"
    headers = {"Authorization": f"Bearer {local.key}"}

    async with connect(url, additional_headers=headers) as ws:
        await ws.send(start_frame(route, f"{route}-refused"))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1013
    assert (ws.close_reason or "").startswith("try again later (in 5 s)"), ws.close_reason
    assert "calls.max_live" in (ws.close_reason or "")
    assert list(calls.live) == ["held"], "the call already live is not touched"
    assert not await local.services.store.call_exists("acme", f"{route}-refused")

    await held.close(CallEnd.STOP)  # a slot frees: the same call is taken now
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(start_frame(route, f"{route}-refused"))
        await ws.send(stop_frame(route))
        await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1000
    record = await local.services.store.get_call("acme", f"{route}-refused")
    assert record is not None and (record.status, record.end_reason) == ("completed", "stop")
