"""The HTTP connections uvicorn accepts, with the limits uvicorn lacks: a time to send a request's headers, and a
cap on open connections.

uvicorn closes an idle keep-alive connection after a response (``http.keepalive_timeout_s``) but waits forever
for the first request on a new connection and for the rest of a half-sent one (slowloris). Here every request's
headers must be complete within ``http.header_timeout_s`` of the connection opening (or of the previous response),
else the connection is closed; a connection over ``http.max_connections`` (websockets included) is answered 503
with Retry-After and closed at once, before anything is read. Websockets, once upgraded, are the protocol's own
(their pings find dead peers; ingest streams end when idle, ``ingest.idle_timeout_s``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: %d\r\n"
    b"connection: close\r\ncontent-length: 52\r\n\r\nthe server holds all the connections it may; retry\n\n"
)
_WARN_EVERY_S = 10.0


class ConnectionLimits:
    """What :class:`GuardedHttp` enforces (one per server; the protocol class reads it)."""

    def __init__(self, header_timeout_s: float, max_connections: int, retry_after_s: int = 5) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self.retry_after_s = retry_after_s
        self.refused = 0
        self.timed_out = 0
        self._warned: dict[str, float] = {}

    def warn(self, kind: str, what: str) -> None:
        """Once per ``_WARN_EVERY_S`` and kind at most: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY_S) >= _WARN_EVERY_S:
            self._warned[kind] = now
            log.warning("%s (refused so far: %d over the cap, %d header timeouts)", what, self.refused, self.timed_out)


def guarded_http(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``."""

    class GuardedHttp(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                limits.refused += 1
                limits.warn("cap", f"over http.max_connections ({limits.max_connections}): new connections refused")
                transport.write(_FULL % limits.retry_after_s)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(limits.header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                limits.timed_out += 1
                limits.warn("headers", f"a request's headers did not come within {limits.header_timeout_s:g} s: closed")
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # (a keep-alive connection's next request: its headers get the same time)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedHttp


def uvicorn_limits(limits: ConnectionLimits, keepalive_timeout_s: float) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that apply them."""
    return {"http": guarded_http(limits), "timeout_keep_alive": keepalive_timeout_s}
