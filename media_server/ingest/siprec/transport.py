"""SIP transports: aiosipua's UDP and TCP, plus TLS, each handing raw messages to one screening function.

aiosipua's transports parse and dispatch, and drop what they cannot parse. A recording server answers a
malformed request with 400 and a request from an address it does not serve with 403, so here every datagram
or stream message goes to ``on_raw`` first (see ``RecordingServer.receive``), which decides.
Responses over TCP and TLS go back on the connection the request came in on (RFC 3261 §18.2.2): the request's
top Via gets ``received`` and ``rport`` set to the connection's address, which aiosipua's routing then uses.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosipua import SipRequest
from aiosipua.transport import SipTransport, TcpSipTransport, UdpSipTransport

from media_server.tls import server_context

log = logging.getLogger(__name__)

RawHandler = Callable[["ScreenedTransport", bytes, tuple[str, int]], None]


class ScreenedTransport(SipTransport):
    """What the recording server needs of a transport beyond aiosipua's interface."""

    name: str = "UDP"
    on_raw: RawHandler | None = None

    def send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        raise NotImplementedError

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the configured port may be 0)."""
        raise NotImplementedError

    def deliver(self, request: object, addr: tuple[str, int]) -> None:
        if self.on_message is not None:
            self.on_message(request, addr)  # type: ignore[arg-type]

    def stamp(self, request: SipRequest, addr: tuple[str, int]) -> None:
        """Note where a request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581)."""
        vias = request.headers.get("via")
        if not vias:
            return
        top = vias[0]
        params = [p for p in top.split(";")[1:] if p.split("=")[0].strip().lower() not in ("received", "rport")]
        rport = any(p.strip().lower() == "rport" for p in top.split(";")[1:])
        head = top.split(";")[0]
        params.append(f"received={addr[0]}")
        if rport or self.reliable:
            params.append(f"rport={addr[1]}")
        request.headers.remove("Via")
        for value in [";".join([head, *params]), *vias[1:]]:
            request.headers.append("Via", value)

    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.on_raw is None:
            return
        try:
            self.on_raw(self, data, addr)
        except Exception:
            log.exception("SIP message from %s:%s could not be handled", *addr)


class _Datagrams(asyncio.DatagramProtocol):
    """aiosipua's own protocol asserts an asyncio transport class that uvloop's UDP transport is not."""

    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket error: %s", exc)


@dataclass
class UdpTransport(ScreenedTransport, UdpSipTransport):
    name: str = "UDP"
    on_raw: RawHandler | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=self.local_addr)
        self._udp_transport = transport

    def send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._udp_transport is not None:
            self._udp_transport.sendto(data, addr)

    @property
    def bound(self) -> tuple[str, int]:
        assert self._udp_transport is not None
        host, port = self._udp_transport.get_extra_info("sockname")[:2]
        return str(host), int(port)


@dataclass
class TcpTransport(ScreenedTransport, TcpSipTransport):
    name: str = "TCP"
    on_raw: RawHandler | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle_connection, host=self.local_addr[0], port=self.local_addr[1], ssl=self.ssl_context
        )

    def send_raw(self, data: bytes, addr: tuple[str, int]) -> None:
        connection = self._connections.get(addr)
        if connection is not None:
            connection[1].write(data)

    @property
    def bound(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """SIP over TLS; with ``client_ca`` (``sip.tls_client_ca``) an SBC without a certificate signed by it fails the
    handshake (mutual TLS, as SBCs configured for it expect)."""
    return server_context(cert, key, client_ca)
