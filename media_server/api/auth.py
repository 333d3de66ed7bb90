"""API keys on HTTP and websocket requests: ``Authorization: Bearer KEY`` or ``?token=KEY``."""

from __future__ import annotations

from fastapi import HTTPException, Request, WebSocket

from media_server.auth.keys import ApiKey
from media_server.services import Services


def services_of(conn: Request | WebSocket) -> Services:
    services: Services = conn.app.state.services
    return services


def presented_key(conn: Request | WebSocket) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    token = conn.query_params.get("token")
    return token or None


async def require_key(request: Request, action: str = "read") -> ApiKey:
    key = await services_of(request).authenticate(presented_key(request))
    if key is None:
        raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
    if not key.can(action):
        raise HTTPException(403, f"a {key.role.value} key may not {action}")
    return key
