"""The servers that are not HTTP routes (SIP, AudioSocket, gRPC): started with the app, closed before the calls end."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from media_server.ingest.protocol import Listener
from media_server.ingest.registry import PROTOCOLS
from media_server.rpc.server import GrpcFace, GrpcServer
from media_server.services import Services

log = logging.getLogger(__name__)


async def start_listeners(services: Services, grpc_api: Sequence[GrpcFace] = ()) -> list[Listener]:
    """``grpc_api``: the app's own gRPC services, served beside each protocol's gRPC face."""
    listeners: list[Listener] = []
    settings = services.settings
    try:
        for protocol in PROTOCOLS:
            if protocol.listener is not None and protocol.enabled(settings):
                listeners.append(await protocol.listener(services))
        if settings.grpc.enabled:
            faces = [p.grpc for p in PROTOCOLS if p.grpc is not None and p.enabled(settings)]
            listeners.append(await GrpcServer.start(services, [*grpc_api, *faces]))
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
