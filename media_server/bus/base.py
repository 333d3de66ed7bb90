"""The bus interface: fans published events out to live subscribers. Backends: in-process (``memory``), Redis
Streams across nodes (later).

Events reach the bus with their id already given, in id order, after they were stored: ids and replay from an
earlier id are the journal's (``store/journal.py``), not the bus's.
"""

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
    async def publish(self, event: pb.Event) -> None:
        """Fan a stored event out to the subscribers of its team and call. Never waits on a subscriber."""
        ...

    def subscribe(self, team: str, call_id: str | None = None) -> Subscription:
        """The events of one call (or of every call of ``team``) published from now on."""
        ...

    async def close(self) -> None: ...
