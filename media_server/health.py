"""Liveness and readiness, for a load balancer or an orchestrator's probes.

``/health/live`` (and ``/health``): the process answers. ``/health/ready``: new calls are taken and can be stored:
503 while the model is loading (starting), while the store cannot be written (a failing journal, or a probe write
that fails: a full disk or database, a read-only file), while a shared database (PostgreSQL) or the event bus
(Redis) does not answer, while no recognition worker answers (``workers.urls``), or while the server shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse

from media_server.workers.remote import RemoteScheduler

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from media_server.services import Services
    from media_server.store.store import Store


class StoreWritable:
    """Can the store take a write now? A probe write (``Store.probe``: written and removed in one transaction) at
    most every ``every_s``: an idle server's store fails no journal write, yet the next call's would."""

    def __init__(self, store: Store, every_s: float = 2.0, timeout_s: float = 3.0) -> None:
        self.store = store
        self.every_s = every_s
        self.timeout_s = timeout_s
        self._failure: str | None = None
        self._at = -1e9
        self._task: asyncio.Task[None] | None = None

    async def failure(self) -> str | None:
        """Why the store cannot be written (None: it can)."""
        if self._task is None and time.monotonic() - self._at >= self.every_s:
            self._task = asyncio.create_task(self._probe(), name="store-probe")
        if self._task is not None:
            try:  # (shielded: a probe write is never cancelled half-way, which would hold its connection)
                await asyncio.wait_for(asyncio.shield(self._task), self.timeout_s)
            except TimeoutError:
                return f"a write to the store took over {self.timeout_s:g} s"
        return self._failure

    async def _probe(self) -> None:
        try:
            await self.store.probe()
            self._failure = None
        except Exception as exc:  # (readiness answers anyone: a category there, the database's own words in the log)
            detail = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
            failure = failure_category(detail)
            if failure != self._failure:
                log.warning("the store's probe write failed: %s", detail)
            self._failure = failure
        finally:
            self._at = time.monotonic()
            self._task = None


def failure_category(detail: str) -> str:
    """What readiness (which answers anyone) says of a store failure; the database's own words (a PostgreSQL error
    can name a user, host or table) go to the log only."""
    return "full (the database or its disk)" if "full" in detail.lower() else "the write failed"


def live() -> dict[str, str]:
    return {"status": "ok"}


async def ready(services: Services | None, writable: StoreWritable | None) -> JSONResponse:
    if services is None or writable is None:
        return JSONResponse({"ready": False, "reason": "starting"}, status_code=503)
    journal = services.journal
    if not journal.healthy:
        reason = f"storage failing: {failure_category(journal.failure)}"
        return JSONResponse({"ready": False, "reason": reason, "pendingEvents": journal.pending}, 503)
    if services.calls.closing:
        return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
    if not await services.store.reachable():
        return JSONResponse({"ready": False, "reason": "database unreachable"}, status_code=503)
    if (failure := await writable.failure()) is not None:
        return JSONResponse({"ready": False, "reason": f"storage not writable: {failure}"}, status_code=503)
    if not await services.bus.reachable():
        return JSONResponse({"ready": False, "reason": "event bus (Redis) unreachable"}, status_code=503)
    if isinstance(services.scheduler, RemoteScheduler) and not services.scheduler.reachable:
        return JSONResponse({"ready": False, "reason": "no recognition worker reachable"}, status_code=503)
    return JSONResponse({"ready": True, "liveCalls": len(services.calls.live)})
