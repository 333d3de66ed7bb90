"""The servers that are not HTTP routes (SIP, AudioSocket, gRPC): started with the app, closed before the calls end."""

from __future__ import annotations

import logging

from media_server.ingest.protocol import Listener
from media_server.ingest.registry import PROTOCOLS
from media_server.services import Services

log = logging.getLogger(__name__)


async def start_listeners(services: Services) -> list[Listener]:
    listeners: list[Listener] = []
    settings = services.settings
    try:
        for protocol in PROTOCOLS:
            if protocol.listener is not None and protocol.enabled(settings):
                listeners.append(await protocol.listener(services))
        if settings.grpc.enabled:
            from media_server.rpc.server import GrpcServer

            listeners.append(await GrpcServer.start(services))
    except BaseException:
        await close_listeners(listeners)
        raise
    return listeners


async def close_listeners(listeners: list[Listener]) -> None:
    for listener in reversed(listeners):
        try:
            await listener.close()
        except Exception:
            log.exception("could not close %r", listener)
