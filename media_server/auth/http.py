"""Where a request carries its API key: ``Authorization: Bearer KEY`` (or ``Token KEY``); on a websocket also the
subprotocol pair ``Sec-WebSocket-Protocol: token, KEY`` (or ``bearer, KEY``: what a browser can send, as
Deepgram's clients do); ``?token=KEY`` for older clients (query strings end up in proxies' logs: prefer the others).
"""

from __future__ import annotations

from itertools import pairwise

from starlette.requests import HTTPConnection

AUTH_SUBPROTOCOLS = ("token", "bearer")


def presented_key(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    offered = subprotocol_key(conn)
    if offered is not None:
        return offered[1]
    return conn.query_params.get("token") or None


def offered_subprotocols(conn: HTTPConnection) -> list[str]:
    return [p.strip() for p in conn.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]


def subprotocol_key(conn: HTTPConnection) -> tuple[str, str] | None:
    """A websocket's key in its subprotocols: (the scheme as offered, which the server answers with, the key)."""
    if conn.scope.get("type") != "websocket":
        return None
    offered = offered_subprotocols(conn)
    for name, value in pairwise(offered):
        if name.lower() in AUTH_SUBPROTOCOLS:
            return name, value
    return None


def auth_subprotocol(conn: HTTPConnection) -> str | None:
    """The subprotocol to accept a websocket with when its key came as one (a browser fails the connection unless
    one of its offers is answered); None otherwise."""
    offered = subprotocol_key(conn)
    return offered[0] if offered is not None else None
