"""The server's services in this test process, without the speech model (no VAD, no scheduler): enough for what
happens before and around transcription (refusals, capacity, storage), with calls whose consent is denied so that
no channel is transcribed. ``local_grpc`` serves gRPC faces on them, ``local_http`` HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import uvicorn
from fastapi import APIRouter, FastAPI

from media_server.auth.keys import Role
from media_server.bus import InMemoryEventBus
from media_server.calls.call import CallServices, ChannelSpec
from media_server.calls.lifecycle import CallLifecycle, LiveCall
from media_server.calls.metadata import CallMetadata, Consent
from media_server.config import GrpcSettings, IngestSettings, Settings
from media_server.rpc.server import GrpcFace, GrpcServer
from media_server.services import Services, streaming_config
from media_server.store.journal import Journal
from media_server.store.store import Store
from media_server.teams.directory import TeamDirectory
from models.asr.scheduler import DecodeScheduler
from models.vad import SileroVAD
from tests.conftest import free_port

#: What a stream's metadata says so that none of its channels is transcribed.
DENIED = {"rep_consent": "denied", "customer_consent": "denied"}


@dataclass
class Local:
    services: Services
    key: str  # an ingest key of team acme
    target: str = ""  # gRPC HOST:PORT
    ws_url: str = ""

    async def hold_a_call(self, call_id: str = "held", team: str = "acme") -> LiveCall:
        """A live call of its own (to fill the server: ``services.calls.max_live = 1``)."""
        metadata = CallMetadata()
        metadata.rep.consent = metadata.customer.consent = Consent.DENIED
        return await self.services.calls.open(call_id, team, "test", metadata, [ChannelSpec(0, "mixed", 8000)])


@contextlib.asynccontextmanager
async def local_services(tmp_path: Path, database_url: str | None = None, node: str = "") -> AsyncIterator[Local]:
    """``database_url``: the store (default: SQLite in ``tmp_path``); two of them on one database and with
    different ``node`` names are two servers sharing it."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        ingest=IngestSettings(idle_timeout_s=5, start_timeout_s=5),
        grpc=GrpcSettings(host="127.0.0.1", port=0),
    )
    store = Store(settings.db_url)
    await store.open()
    _, key = await store.create_key("acme", Role.INGEST)
    bus = InMemoryEventBus()
    journal = Journal(store, bus, node)
    await journal.start()
    # No model: the engine only names itself (what Deepgram's model_info says).
    no_vad = cast(SileroVAD, None)
    no_scheduler = cast(DecodeScheduler, SimpleNamespace(engine=SimpleNamespace(name="no model", device="cpu")))
    call_services = CallServices(journal, no_vad, no_scheduler, streaming_config(settings), settings.consent_policy)
    teams = TeamDirectory(store)
    services = Services(
        settings, store, bus, journal, no_vad, no_scheduler, CallLifecycle(call_services, store, teams), teams
    )
    try:
        yield Local(services, key)
    finally:
        await services.calls.shutdown()
        await journal.close()
        await bus.close()
        await store.close()


@contextlib.asynccontextmanager
async def local_grpc(tmp_path: Path, faces: Sequence[GrpcFace]) -> AsyncIterator[Local]:
    """The gRPC server the app runs (``rpc/server.py``), carrying ``faces``, on a free port."""
    async with local_services(tmp_path) as local:
        server = await GrpcServer.start(local.services, faces)
        local.target = f"127.0.0.1:{server.port}"
        try:
            yield local
        finally:
            await server.close()


@contextlib.asynccontextmanager
async def local_http(
    tmp_path: Path, routers: Sequence[APIRouter], database_url: str | None = None
) -> AsyncIterator[Local]:
    """``routers`` under uvicorn on a free port (``database_url``: the store, as for ``local_services``)."""
    async with local_services(tmp_path, database_url) as local:
        app = FastAPI()
        for router in routers:
            app.include_router(router)
        app.state.services = local.services
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="websockets-sansio"
            )
        )
        serving = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        local.ws_url = f"ws://127.0.0.1:{port}"
        try:
            yield local
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, 10)
