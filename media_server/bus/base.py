"""The bus interface: fans published events out to live subscribers. Backends: in-process (``memory``), one
Redis stream shared by several servers (``redis``).

Events reach the bus with their id already given, in id order, after they were stored: ids are the journal's
(``store/journal.py``). Resuming from an earlier id is the journal's too (from the store), except on a bus that
several servers publish to (:class:`ResumingBus`): their ids interleave, so the bus's own order decides what
came after an id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, runtime_checkable

from media_server.v1 import events_pb2 as pb


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind; it was dropped so that it never slows a call."""


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[pb.Event]: ...

    def close(self) -> None: ...


#: ``(events, left out)``: the store's events of a team (or call, when given) with ids above ``after``.
StoredAfter = Callable[[str, str | None, int], Awaitable[tuple[list[pb.Event], int]]]


class EventBus(Protocol):
    async def start(self) -> None: ...

    async def publish(self, event: pb.Event) -> None:
        """Fan a stored event out to the subscribers of its team and call. Never waits on a subscriber."""
        ...

    def subscribe(self, team: str, call_id: str | None = None) -> Subscription:
        """The events of one call (or of every call of ``team``) published from now on."""
        ...

    async def close(self) -> None: ...

    def stats(self) -> dict[str, object]: ...

    async def forget(self, team: str, call_ids: set[str]) -> int:
        """Drop what the bus still holds of these calls (an erasure); how many events."""
        ...

    async def reachable(self) -> bool:
        """It works now (readiness)."""
        ...


@runtime_checkable
class ResumingBus(EventBus, Protocol):
    def resume(self, team: str, call_id: str | None, after: int, stored: StoredAfter) -> Subscription:
        """The events after event ``after`` in the bus's order, then live ones; ``stored`` serves an id the bus no
        longer holds."""
        ...
