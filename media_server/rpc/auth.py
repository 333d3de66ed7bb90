"""API keys on gRPC calls: ``authorization: Bearer KEY`` metadata (``Token KEY`` too, as on HTTP)."""

from __future__ import annotations

from typing import NoReturn

import grpc

from media_server.auth.keys import ApiKey
from media_server.services import Services


def presented_key(context: grpc.aio.ServicerContext[object, object]) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name.lower() != "authorization" or not isinstance(value, str):
            continue
        scheme, _, secret = value.partition(" ")
        if scheme.lower() in ("bearer", "token") and secret.strip():
            return secret.strip()
    return None


async def require_key(
    services: Services, context: grpc.aio.ServicerContext[object, object], action: str = "read"
) -> ApiKey:
    """The caller's key, or the call is aborted: UNAUTHENTICATED (no or unknown key), PERMISSION_DENIED (its role
    may not do ``action``)."""
    key = await services.authenticate(presented_key(context))
    if key is None:
        await abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key (authorization: Bearer KEY)")
    if not key.can(action):
        await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"a {key.role.value} key may not {action}")
    return key


async def abort(context: grpc.aio.ServicerContext[object, object], code: grpc.StatusCode, message: str) -> NoReturn:
    """End the RPC with a status (grpc.aio's ``abort`` raises; this says so to the type checker)."""
    await context.abort(code, message)
    raise AssertionError("grpc.aio abort returned")
