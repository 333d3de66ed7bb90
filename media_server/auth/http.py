"""Where a request carries its API key: ``Authorization: Bearer KEY`` (or ``Token KEY``), or ``?token=KEY``."""

from __future__ import annotations

from starlette.requests import HTTPConnection


def presented_key(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return conn.query_params.get("token") or None
