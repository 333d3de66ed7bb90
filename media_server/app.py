"""The ASGI application: REST, websockets, and the services behind them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from media_server import __version__
from media_server.api import audit, calls, events, keys, listen, live, models, people, team, upload, webhooks
from media_server.api import grpc as grpc_api
from media_server.api.auth import require_key, services_of
from media_server.api.openapi import declare_key_scheme
from media_server.config import Settings
from media_server.health import StoreWritable
from media_server.health import live as health_live
from media_server.health import ready as health_ready
from media_server.ingest.listeners import close_listeners, start_listeners
from media_server.ingest.registry import PROTOCOLS
from media_server.metrics import ServerMetrics
from media_server.services import Services
from media_server.workers.remote import RemoteScheduler

log = logging.getLogger(__name__)


def _dashboard_dir() -> Path:
    """Installed from the wheel, the dashboard is the package data of ``media_server.dashboard`` (setup.py); in a
    source checkout it is ``dashboard/`` beside ``media_server/``."""
    here = Path(__file__).resolve().parent
    packaged = here / "dashboard"
    return packaged if (packaged / "index.html").is_file() else here.parent / "dashboard"


DASHBOARD_DIR = _dashboard_dir()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        app.state.store_writable = StoreWritable(services.store)
        metrics.attach(services, getattr(app.state, "connection_limits", None))
        log.info(
            "media server ready: model %s on %s, database %s",
            services.scheduler.engine.name,
            services.scheduler.engine.device,
            settings.db_url.split("///")[0] + "///…" if "///" in settings.db_url else settings.db_url_for_logs,
        )
        try:
            listeners = await start_listeners(services, [grpc_api.add_to_server])
            app.state.listeners = listeners
            try:
                yield
            finally:
                await close_listeners(listeners)
        finally:
            metrics.detach()
            await services.stop()

    app = FastAPI(title="media-server", version=__version__, lifespan=lifespan)
    metrics = ServerMetrics(settings.metrics)
    app.state.metrics = metrics
    for protocol in PROTOCOLS:
        if protocol.router is not None:
            app.include_router(protocol.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)  # (before calls: /v1/calls/export is not a call id)
    app.include_router(calls.router)
    app.include_router(upload.router)  # POST /v1/calls: a recording
    app.include_router(calls.reps_router)
    app.include_router(live.router)
    app.include_router(listen.router)
    app.include_router(team.router)
    app.include_router(audit.router)
    app.include_router(keys.router)
    app.include_router(people.router)
    declare_key_scheme(app)
    if settings.dashboard.enabled:
        _mount_dashboard(app, settings.dashboard.directory or DASHBOARD_DIR)

    @app.get("/health/live", tags=["status"], response_model=models.Alive)
    async def health_live_() -> dict[str, str]:
        """Liveness: the process answers."""
        return health_live()

    @app.get("/health", tags=["status"], response_model=models.Alive)
    async def health() -> dict[str, str]:
        """Liveness (as ``/health/live``)."""
        return health_live()

    @app.get(
        "/health/ready",
        tags=["status"],
        response_model=models.Ready,
        responses={503: {"model": models.NotReady, "description": "not ready: `reason` says why"}},
    )
    async def ready(request: Request) -> JSONResponse:
        """Readiness: new calls are taken and can be stored. 503 while the model loads, while the store fails or
        cannot be written (disk full, database gone, read-only), while a shared database (PostgreSQL) or the event
        bus (Redis) does not answer, while no recognition worker answers (workers.urls), or while the server is
        shutting down (``media_server/health.py``)."""
        state = request.app.state
        return await health_ready(getattr(state, "services", None), getattr(state, "store_writable", None))

    @app.get("/metrics", tags=["status"], response_class=PlainTextResponse)
    async def metrics_(request: Request) -> Response:
        """Prometheus text format; ``Authorization: Bearer`` with an admin API key or ``metrics.token`` (none with
        ``metrics.public``). ``media_server/metrics.py`` lists the series."""
        return await metrics.scrape(request)

    @app.get("/v1/status", tags=["status"], response_model=models.Status, responses=models.AUTH)
    async def status(request: Request) -> dict[str, Any]:
        key = await require_key(request)
        services = services_of(request)
        diarization = services.calls.services.diarization
        return {
            "version": __version__,
            "model": services.scheduler.engine.name,
            "finalModel": final.name if (final := getattr(services.scheduler, "final_engine", None)) else None,
            "device": services.scheduler.engine.device,
            "liveCalls": sum(1 for c in services.calls.live.values() if c.team == key.team),
            "scheduler": {_camel(k): v for k, v in dataclasses.asdict(services.scheduler.stats()).items()},
            # Mixed channels' speakers (None: diarization is off): lanes are channels, windows their d-vectors.
            "diarization": None
            if diarization is None
            else {_camel(k): v for k, v in dataclasses.asdict(diarization.stats()).items()},
            "listeners": [listener.status() for listener in request.app.state.listeners],
            "journal": services.journal.stats(),
            "eventLoop": services.loop_lag.stats(),  # lag of the event loop over the last minute
            "bus": services.bus.stats(),
            # Recognition workers (workers.urls; None: decoding in-process): health, load, bytes to and from each.
            "workers": services.scheduler.workers() if isinstance(services.scheduler, RemoteScheduler) else None,
            "cluster": services.lease.stats() if services.lease is not None else None,
        }

    return app


def _mount_dashboard(app: FastAPI, directory: Path) -> None:
    """The dashboard's plain files: ``/`` is its page, ``/dashboard/...`` its script and styles. They hold no data:
    the page asks the API for everything with the key the user signs in with."""
    index = directory / "index.html"
    if not index.is_file():
        log.warning("no dashboard at %s: / serves nothing (set dashboard.directory)", directory)
        return
    app.mount("/dashboard", StaticFiles(directory=directory), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
