"""What an ingest protocol is to the server: its faces (HTTP/websocket routes, a gRPC service, a listener of its
own) and nothing else. Each protocol lives in one folder under ``ingest/`` and exports one :class:`IngestProtocol`;
``ingest/registry.py`` lists them, and the app starts what they declare. Every face is a thin adapter over
:mod:`media_server.calls.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter

from media_server.config import Settings
from media_server.rpc.server import GrpcFace
from media_server.services import Services


class Listener(Protocol):
    """A server of a protocol's own (SIP, AudioSocket's TCP), started with the app, closed before the calls end."""

    def status(self) -> dict[str, Any]:
        """What /v1/status shows of it."""

    async def close(self) -> None:
        """Stop accepting; end the live calls this listener feeds."""


@dataclass(frozen=True)
class IngestProtocol:
    name: str
    router: APIRouter | None = None  # its HTTP and websocket routes
    grpc: GrpcFace | None = None  # its gRPC service (only added when ``[grpc] enabled``)
    listener: Callable[[Services], Awaitable[Listener]] | None = None  # started when ``enabled(settings)``
    enabled: Callable[[Settings], bool] = lambda settings: True
