"""The bus interface. Backends: in-process (``memory``), Redis Streams across nodes (later)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from media_server.v1 import events_pb2 as pb


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind; it was dropped so that it never slows a call."""


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[pb.Event]: ...

    def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, event: pb.Event) -> pb.Event:
        """Stamp ``id`` and ``time``, keep the event for resuming subscribers and fan it out.

        Never waits on a subscriber.
        """
        ...

    def subscribe(self, team: str, call_id: str | None = None, after: int | None = None) -> Subscription:
        """Events of one call (or of every call of ``team``) with ``id > after``, then live ones."""
        ...

    @property
    def last_id(self) -> int:
        """The id of the newest event published so far (0 before the first): a snapshot of the live calls
        taken with it tells a subscriber where to resume (``after=last_id``) without a gap."""
        ...

    def call_ended(self, call_id: str) -> None:
        """The call's events stay resumable for a while, then are forgotten."""
        ...

    async def close(self) -> None: ...
