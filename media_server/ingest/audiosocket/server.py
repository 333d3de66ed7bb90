"""The AudioSocket TCP listener: Asterisk connects, each connection is a call (``session.py``).

AudioSocket carries no API key: sources are checked against ``audiosocket.allow`` before a byte is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from media_server.ingest.allowlist import AllowList
from media_server.ingest.audiosocket.session import AudioSocketSession
from media_server.services import Services

log = logging.getLogger(__name__)


class AudioSocketServer:
    """Accepts AudioSocket connections from Asterisk; each one is a call, run by ``AudioSocketSession``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.audiosocket
        self.allow = AllowList(self.settings.allow, "audiosocket.allow")
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    def status(self) -> dict[str, Any]:
        return {"protocol": "audiosocket", "port": self.port, "connections": len(self._sessions)}

    @classmethod
    async def start(cls, services: Services) -> AudioSocketServer:
        listener = cls(services)
        s = listener.settings
        try:
            listener._server = await asyncio.start_server(listener._accept, s.host, s.port)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"AudioSocket cannot listen on {s.host}:{s.port} ({exc.strerror or exc}): "
                "choose another audiosocket.port (MEDIA_SERVER_AUDIOSOCKET__PORT) or stop what uses it",
            ) from exc
        listener.port = int(listener._server.sockets[0].getsockname()[1])
        log.info(
            "AudioSocket listening on %s:%d (team %s, consent %s, speaker %s%s)",
            s.host,
            listener.port,
            s.team,
            s.consent,
            s.speaker,
            f", from {', '.join(s.allow)} only" if s.allow else "",
        )
        return listener

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, peer = _peer(writer)
        if self._closing or not self.allow.allows(host):
            if not self._closing:
                log.warning("audiosocket connection from %s refused: not in audiosocket.allow", peer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await AudioSocketSession(reader, writer, self.services, peer).run()
        finally:
            self._sessions.discard(task)

    async def close(self) -> None:
        """Stop accepting; end the calls still streaming as interrupted (``server_shutdown``), stored."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        if sessions:
            await asyncio.gather(*sessions, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        log.info("AudioSocket server on port %d closed", self.port)


def _peer(writer: asyncio.StreamWriter) -> tuple[str, str]:
    """The source host, and host:port for the logs."""
    address = writer.get_extra_info("peername")
    if not isinstance(address, tuple) or len(address) < 2:
        return "", "?"
    host, port = str(address[0]), address[1]
    return host, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
