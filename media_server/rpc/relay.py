"""A streaming RPC that feeds a call: the client's requests go in on a reader task, the call's events come out.

Shared by ``StreamCall`` (``ingest/stream_call``) and Riva's ``StreamingRecognize`` (``ingest/riva``); each turns the
events into its own responses. However the RPC ends, the call ends once: completed or interrupted as the reader saw
the requests end, interrupted when the handler is cancelled (the client went away), interrupted with INVALID_ARGUMENT
after its events when the reader found bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import grpc

from media_server.bus import SubscriberTooSlow
from media_server.calls.lifecycle import CallEnd, LiveCall
from media_server.rpc.auth import abort
from media_server.rpc.refusals import push_back
from media_server.rpc.slots import RETRY_PUSHBACK_MS
from media_server.v1 import events_pb2 as pb

HALF_CLOSE_GRACE_S = 0.3


async def requests_ended() -> None:
    """Call when the client's request stream ends, before ending the call as completed. grpc.aio ends it the same
    way when the client half-closes and when it cancels; a cancel is followed within milliseconds by the handler's
    cancellation, and ``relay`` then ends the call as interrupted first. Only a half-close outlives this grace."""
    await asyncio.sleep(HALF_CLOSE_GRACE_S)


async def relay(
    call: LiveCall,
    reader: Coroutine[Any, Any, None],
    context: grpc.aio.ServicerContext[Any, Any],
    problem: list[str],
) -> AsyncGenerator[pb.Event, None]:
    """The call's events while ``reader`` pushes the client's audio; ``reader`` ends the call when the requests end
    and appends to ``problem`` what was wrong with them. Use under ``contextlib.aclosing``: a handler cancelled while
    its own response is being written must still close this, so that the call ends now and not when collected."""
    task = asyncio.create_task(reader, name=f"rpc-{call.id}")
    complete = False
    try:
        async for event in call.events():
            yield event
        complete = True
    except SubscriberTooSlow:
        push_back(context, RETRY_PUSHBACK_MS)
        await abort(
            context,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the client read the call's responses too slowly; Subscribe with call_id={call.id!r} to follow it",
        )
    finally:
        if not complete:
            # Cancelled (the client went away) or cut off: say so before the reader, which may have seen the
            # request stream end as if half-closed (grpc.aio ends it alike) and call it completed. The first end
            # of a call is the one kept.
            call.end(CallEnd.DISCONNECTED)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if problem:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem[0])
