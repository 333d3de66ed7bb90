"""A call the lifecycle refused, as a gRPC status: ALREADY_EXISTS for a call id in use, RESOURCE_EXHAUSTED with a
``grpc-retry-pushback-ms`` trailer (which gRPC's retry policy honours) when the server is full, UNAVAILABLE with the
same trailer while it shuts down."""

from __future__ import annotations

from typing import NoReturn

import grpc

from media_server.calls.lifecycle import (
    CallConflict,
    CallRefused,
    CallsFull,
    Forbidden,
    Unauthorized,
    Unavailable,
)
from media_server.rpc.auth import abort

_CODES: dict[type[CallRefused], grpc.StatusCode] = {
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    CallConflict: grpc.StatusCode.ALREADY_EXISTS,
    CallsFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def push_back(context: grpc.aio.ServicerContext[object, object], retry_after_ms: int) -> None:
    """Tell the client's retry policy when to try again (set before the RPC is aborted)."""
    context.set_trailing_metadata((("grpc-retry-pushback-ms", str(retry_after_ms)),))


async def refuse(context: grpc.aio.ServicerContext[object, object], refused: CallRefused) -> NoReturn:
    """A shutdown or a failing store (:class:`Unavailable`) is UNAVAILABLE; a full server RESOURCE_EXHAUSTED."""
    if isinstance(refused, CallsFull):
        push_back(context, refused.retry_after_s * 1000)
        code = grpc.StatusCode.UNAVAILABLE if isinstance(refused, Unavailable) else _CODES[CallsFull]
        await abort(context, code, f"try again later (in {refused.retry_after_s} s): {refused.message}")
    await abort(context, _CODES.get(type(refused), grpc.StatusCode.FAILED_PRECONDITION), refused.message)
