"""A streaming RPC that feeds a call: the client's requests go in on a reader task, the call's events come out.

Shared by ``StreamCall`` (``ingest/stream_call``) and Riva's ``StreamingRecognize`` (``ingest/riva``): each hands
:func:`relay` its way of taking one request and turns the events into its own responses. However the RPC ends, the
call ends once: completed when the client stops (its stop message, or a half-close), interrupted when the requests
stop coming (``ingest.idle_timeout_s``), when the handler is cancelled (the client went away), and with
INVALID_ARGUMENT after its events when a request could not be used. A call the server ended (shutdown, storage
failure) ends the RPC with UNAVAILABLE after its events, the message naming the reason (``calls/watch.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from media_server.bus import SubscriberTooSlow
from media_server.calls.lifecycle import CallEnd, LiveCall
from media_server.calls.watch import SERVER_ENDS, CallEndedByServer, EndWatch, said
from media_server.rpc.auth import abort
from media_server.rpc.refusals import push_back
from media_server.rpc.slots import RETRY_PUSHBACK_MS
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

Request = TypeVar("Request")
#: Takes one request into the call; True when it was the client's stop. Raises the protocol's error for a request
#: that cannot be used.
Handler = Callable[[Request], Awaitable[bool]]

HALF_CLOSE_GRACE_S = 0.3


async def first_request(
    requests: AsyncIterator[Request], timeout_s: float, context: grpc.aio.ServicerContext[Any, Any], what: str
) -> Request:
    """The stream's first request (``what`` it must be, for the client's error): INVALID_ARGUMENT when the stream
    ends first, DEADLINE_EXCEEDED when it does not come within ``timeout_s`` (``ingest.start_timeout_s``)."""
    try:
        return await asyncio.wait_for(anext(requests), timeout_s)
    except StopAsyncIteration:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"the stream ended before its {what}")
    except TimeoutError:
        await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"no {what} within {timeout_s:g} s")


async def relay(
    call: LiveCall,
    requests: AsyncIterator[Request],
    handle: Handler[Request],
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    idle_s: float,
    invalid: type[Exception],
    at_end: Callable[[], None] | None = None,
) -> AsyncGenerator[pb.Event, None]:
    """The call's events while a reader hands the client's requests to ``handle``; ``invalid``: the protocol's
    error for a request it cannot use; ``at_end``: what to do when the requests end (push what a decoder holds).
    Use under ``contextlib.aclosing``: a handler cancelled while its own response is being written must still close
    this, so that the call ends now and not when collected."""
    problem: list[str] = []
    reader = _read(call, requests, handle, idle_s, invalid, at_end, problem)
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
    reason = call.end_reason
    if reason is CallEnd.KEY_REVOKED:
        await abort(context, grpc.StatusCode.UNAUTHENTICATED, f"{said(reason)} (what was transcribed is kept)")
    if reason is CallEnd.TOO_FAST:
        await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"{said(reason)} (what was transcribed is kept)")
    if reason is not None and reason in SERVER_ENDS:
        message = f"{said(reason)} (the call ended: {reason.value}; what was transcribed is kept)"
        await abort(context, grpc.StatusCode.UNAVAILABLE, message)


async def _read(
    call: LiveCall,
    requests: AsyncIterator[Request],
    handle: Handler[Request],
    idle_s: float,
    invalid: type[Exception],
    at_end: Callable[[], None] | None,
    problem: list[str],
) -> None:
    """Hand the client's requests to ``handle`` until they stop; end the call however they stop."""
    reason = CallEnd.DISCONNECTED
    watch = EndWatch()  # the server may end the call (shutdown, storage failure): then reading stops
    watch.follow(call)
    try:
        while True:
            try:
                request = await watch.next(anext(requests), idle_s)
            except CallEndedByServer as exc:
                reason = exc.reason
                return
            except StopAsyncIteration:
                if at_end is not None:
                    at_end()
                # grpc.aio ends the request stream alike when the client half-closes and when it cancels; a cancel
                # is followed within milliseconds by the handler's cancellation, and relay then ends the call as
                # interrupted first. Only a half-close outlives this grace: the call is completed.
                await asyncio.sleep(HALF_CLOSE_GRACE_S)
                reason = CallEnd.STOP
                return
            except TimeoutError:
                reason = CallEnd.IDLE_TIMEOUT
                await call.notice("idle_timeout", f"no audio for {idle_s:g} s")
                return
            if await handle(request):
                reason = CallEnd.STOP
                return
    except invalid as exc:
        problem.append(str(exc))
        reason = CallEnd.PROTOCOL_ERROR
        await call.notice("invalid_argument", str(exc))
    except asyncio.CancelledError:
        raise
    except Exception:  # the RPC went away under us (cancelled, connection lost)
        log.debug("call %s: the request stream failed", call.id, exc_info=True)
    finally:
        watch.close()
        call.end(reason)
