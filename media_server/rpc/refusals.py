"""A call the lifecycle refused, as a gRPC status: ALREADY_EXISTS for a call id in use, RESOURCE_EXHAUSTED with a
``grpc-retry-pushback-ms`` trailer (which gRPC's retry policy honours) when the server is full, UNAVAILABLE with the
same trailer while it shuts down."""

from __future__ import annotations

from typing import NoReturn

import grpc

from media_server.calls.lifecycle import CallConflict, CallLifecycle, CallRefused, CallsFull, Forbidden, Unauthorized
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


async def refuse(
    context: grpc.aio.ServicerContext[object, object], refused: CallRefused, calls: CallLifecycle | None = None
) -> NoReturn:
    """``calls``: the lifecycle that refused, to tell a shutdown (UNAVAILABLE) from a full server."""
    if isinstance(refused, CallsFull):
        push_back(context, refused.retry_after_s * 1000)
        code = grpc.StatusCode.UNAVAILABLE if calls is not None and shutting_down(calls) else _CODES[CallsFull]
        await abort(context, code, f"try again later (in {refused.retry_after_s} s): {refused.message}")
    await abort(context, _CODES.get(type(refused), grpc.StatusCode.FAILED_PRECONDITION), refused.message)


def shutting_down(calls: CallLifecycle) -> bool:
    """No call may open, yet the server is under ``calls.max_live``: it is shutting down."""
    return calls.full and len(calls.live) < calls.max_live
