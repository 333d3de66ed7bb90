"""One ``StreamCall`` (``media_server.v1.MediaServer``, proto/media_server/v1/api.proto): a call like any other
(dashboard, insights, consent, storage) whose events stream back to the client on the same RPC.

The first request is ``start`` (within ``ingest.start_timeout_s``), then ``audio`` of the declared channels,
``dtmf``, ``finalize`` (each channel's open utterance gets its final now) and ``stop``. Refusals: INVALID_ARGUMENT for
a start or input that cannot be used (after the call's events, when the call was open), ALREADY_EXISTS for a call id
in use, RESOURCE_EXHAUSTED with a ``grpc-retry-pushback-ms`` trailer when the server is full.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeAlias

import grpc

from media_server.audio import Audio
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held
from media_server.calls.lifecycle import CallEnd, CallRefused, LiveCall, new_call_id
from media_server.ingest.stream_call.start import MAX_CALL_ID, BadRequest, Decoder, channels, decoder, metadata
from media_server.rpc.auth import abort, require_key
from media_server.rpc.refusals import refuse
from media_server.rpc.relay import first_request, relay
from media_server.rpc.slots import StreamSlots
from media_server.services import Services
from media_server.v1 import api_pb2
from media_server.v1 import events_pb2 as pb

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
SOURCE = "grpc"
DIGITS = "0123456789*#ABCD"


async def stream_call(
    services: Services, slots: StreamSlots, requests: AsyncIterator[api_pb2.StreamCallRequest], context: Context
) -> AsyncGenerator[pb.Event, None]:
    """The RPC's responses: the call's events, ``call_started`` to ``call_ended``."""
    key = await require_key(services, context, "ingest")
    await slots.take(context)
    call: LiveCall | None = None
    held: Held | None = None
    try:
        start = await _first(services, requests, context)
        opened, decode = await _open(services, key, start, context)
        call = opened
        held = services.sessions.hold(key.id, lambda: opened.end(CallEnd.KEY_REVOKED))
        idle_s = services.settings.ingest.idle_timeout_s
        handle = _Requests(call, decode).handle
        async with contextlib.aclosing(
            relay(call, requests, handle, context, idle_s=idle_s, invalid=BadRequest)
        ) as events:
            async for event in events:
                yield event
    finally:
        if held is not None:
            held.release()
        slots.give()
        if call is not None:
            await call.close()  # a cancelled RPC: the call ends as interrupted and is still stored


async def _first(
    services: Services, requests: AsyncIterator[api_pb2.StreamCallRequest], context: Context
) -> api_pb2.StreamStart:
    first = await first_request(requests, services.settings.ingest.start_timeout_s, context, "start message")
    if first.WhichOneof("request") != "start":
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be `start`")
    start: api_pb2.StreamStart = first.start
    return start


async def _open(
    services: Services, key: ApiKey, start: api_pb2.StreamStart, context: Context
) -> tuple[LiveCall, Decoder]:
    try:
        decode = decoder(start)
        specs = channels(start)
        meta = metadata(start)
        if len(start.call_id) > MAX_CALL_ID:
            raise BadRequest(f"start.call_id: at most {MAX_CALL_ID} characters")
    except BadRequest as exc:
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    call_id = start.call_id or new_call_id(SOURCE)
    try:
        call = await services.calls.open(call_id, key.team, SOURCE, meta, specs, subscribe=True)
    except CallRefused as exc:
        await refuse(context, exc)
    return call, decode


class _Requests:
    """The requests after ``start``, into the call."""

    def __init__(self, call: LiveCall, decode: Decoder) -> None:
        self.call = call
        self.decode = decode
        self.channels = call.channels

    async def handle(self, request: api_pb2.StreamCallRequest) -> bool:
        """True for ``stop``; raises ``BadRequest`` for a request that cannot be used."""
        kind = request.WhichOneof("request")
        if kind == "audio":
            channel = self.channels.get(request.audio.channel)
            if channel is None:
                raise BadRequest(f"audio for channel {request.audio.channel}, which the start did not declare")
            self.call.push(Audio(channel.index, self.decode(request.audio.data), channel.sample_rate))
        elif kind == "dtmf":
            digit = request.dtmf.digit
            if request.dtmf.channel not in self.channels:
                raise BadRequest(f"dtmf on channel {request.dtmf.channel}, which the start did not declare")
            if len(digit) != 1 or digit not in DIGITS:
                raise BadRequest(f"dtmf.digit must be one of 0-9, *, #, A-D; got {digit!r}")
            await self.call.dtmf(request.dtmf.channel, digit)
        elif kind == "finalize":
            self.call.finalize()
        elif kind == "stop":
            return True
        else:
            raise BadRequest("`start` may come only once, first" if kind == "start" else "an empty request")
        return False
