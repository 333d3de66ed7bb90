"""API keys on HTTP and websocket requests."""

from __future__ import annotations

from fastapi import HTTPException, Request, WebSocket

from media_server.auth.http import presented_key
from media_server.auth.keys import ApiKey
from media_server.services import Services


def services_of(conn: Request | WebSocket) -> Services:
    services: Services = conn.app.state.services
    return services


async def require_key(request: Request, action: str = "read") -> ApiKey:
    key = await services_of(request).authenticate(presented_key(request))
    if key is None:
        raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})
    if not key.can(action):
        raise HTTPException(403, f"a {key.role.value} key may not {action}")
    return key
