"""A call fed by an API client that reads the call's own events back on the same stream.

gRPC ``StreamCall``, Riva's ``StreamingRecognize`` and Deepgram's ``/v1/listen`` are all this: open a call
(a call like any other: the dashboard shows it, insights run, consent holds, it is stored), push audio into it,
and turn its events into the protocol's responses. The subscription is taken before the call opens, so the
client sees every event of its call from ``call_started`` on, and none of another call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt

from media_server.audio import Audio
from media_server.auth.keys import ApiKey
from media_server.bus import SubscriberTooSlow, Subscription
from media_server.calls.call import Call, ChannelSpec
from media_server.calls.lifecycle import CallEnd
from media_server.calls.metadata import CallMetadata
from media_server.services import Services
from media_server.store.records import CallRecord
from media_server.v1 import events_pb2 as pb


def new_call_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class CallFeed:
    """Open with :meth:`open`; then :meth:`push` audio, iterate :meth:`events`, and :meth:`end` exactly once
    (also when the client vanished: the call is finalised and stored either way)."""

    def __init__(self, services: Services, call: Call, subscription: Subscription) -> None:
        self.services = services
        self.call = call
        self._subscription = subscription
        self._ended: asyncio.Task[CallRecord] | None = None

    @classmethod
    async def open(
        cls,
        services: Services,
        key: ApiKey,
        call_id: str,
        source: str,
        metadata: CallMetadata,
        channels: list[ChannelSpec],
    ) -> CallFeed:
        """Raises ``CallConflict`` when the id is live or stored."""
        subscription = services.bus.subscribe(key.team, call_id, after=services.bus.last_id)
        try:
            call = (await services.calls.open(call_id, key.team, source, metadata, channels)).call
        except BaseException:
            subscription.close()
            raise
        return cls(services, call, subscription)

    @property
    def id(self) -> str:
        return self.call.id

    def push(self, channel: int, pcm: npt.NDArray[np.int16]) -> None:
        """Audio of one channel at the channel's rate, in call order."""
        spec = self.call.channels[channel].spec
        self.call.push(Audio(channel, pcm, spec.sample_rate))

    def finalize(self) -> None:
        """Finalise what each channel has heard so far, now, without waiting for a pause (Deepgram's Finalize)."""
        self.call.finalize()

    async def events(self) -> AsyncIterator[pb.Event]:
        """The call's events, ending after ``call_ended``. A client that reads too slowly is cut off with
        ``SubscriberTooSlow``: the call itself never waits for it."""
        async for event in self._subscription:
            yield event
            if event.type == "call_ended":
                return

    def end(self, status: str, reason: str) -> asyncio.Task[CallRecord]:
        """Finalise, store and announce the call (once; later calls return the same task)."""
        if self._ended is None:
            self._ended = self.services.calls.end(self.call, CallEnd(reason))
        return self._ended

    async def close(self, status: str = "interrupted", reason: str = "disconnected") -> None:
        """The client is gone: end the call if nobody did, and drop the subscription."""
        task = self.end(status, reason)
        with contextlib.suppress(Exception):
            await asyncio.shield(task)
        self._subscription.close()


__all__ = ["CallFeed", "SubscriberTooSlow", "new_call_id"]
