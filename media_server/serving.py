"""uvicorn, with a shutdown that ends the calls before the connections: ``media-server serve`` runs this.

uvicorn's own shutdown (SIGTERM, SIGINT) closes every connection first and runs the app's lifespan shutdown last,
so a call live at that moment would be stored ``disconnected``. Here the calls go first: new calls are refused
(``CallsFull``: websocket 1013, HTTP 503, SIP 503, gRPC UNAVAILABLE), every live call ends ``server_shutdown``
(its open utterances finalised within ``calls.drain_timeout_s``, then cut) and each adapter tells its peer
(``ingest/farewell.py``); only then does uvicorn close what is left and run the lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)

FAREWELL_S = 0.5  # for adapters that say goodbye after their call is stored (Deepgram's last results)


class GracefulServer(uvicorn.Server):
    """``app``: the application in ``config``, whose lifespan puts its ``Services`` in ``app.state.services``."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self.app.state, "services", None)
        if services is not None:
            calls = services.calls
            live = len(calls.live)
            log.info("shutting down: no new calls; ending %d live (drain timeout %g s)", live, calls.drain_timeout_s)
            await calls.shutdown()
            if live:
                await asyncio.sleep(FAREWELL_S)
        await super().shutdown(sockets)
        # uvicorn raises the signal it caught again once it is done, and SIGTERM's default then kills the process
        # (status -15): a shutdown that went as planned exits 0.
        self._captured_signals.clear()
