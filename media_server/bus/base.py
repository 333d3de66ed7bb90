"""The bus interface: fans published events out to live subscribers. Backends: in-process (``memory``), one
Redis stream shared by several servers (``redis``).

Events reach the bus with their id already given, in id order, after they were stored: ids are the journal's
(``store/journal.py``). Resuming from an earlier id is the journal's too (from the store), except on a bus that
several servers publish to (:class:`ResumingBus`): their ids interleave, so the bus's own order decides what
came after an id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, Protocol, TypeVar, runtime_checkable

from media_server.v1 import events_pb2 as pb


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind; it was dropped so that it never slows a call."""


T = TypeVar("T")


class Inbox(Generic[T]):
    """A subscriber's bounded queue: ``offer`` never waits; once more than ``size`` items wait, the subscriber is
    overflowed and its reader gets :class:`SubscriberTooSlow` (it was dropped so that it never slows a call)."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=size)
        self.overflowed = 0  # items offered since it overflowed
        self.closed = False
        self._wake = asyncio.Event()

    def offer(self, item: T) -> None:
        if self.overflowed:
            self.overflowed += 1
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = 1
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def items(self) -> AsyncIterator[T]:
        """What is offered, in order, until closed; ``SubscriberTooSlow`` once it overflowed."""
        while not self.closed:
            if self.overflowed:
                raise SubscriberTooSlow(f"more than {self.queue.maxsize} events were waiting")
            if not self.queue.empty():
                yield self.queue.get_nowait()
                continue
            self._wake.clear()
            getter = asyncio.ensure_future(self.queue.get())
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                done, _ = await asyncio.wait({getter, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
                if not getter.done():
                    getter.cancel()
            if getter in done and not getter.cancelled():
                yield getter.result()


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[pb.Event]: ...

    def close(self) -> None: ...


#: The store's events of a team (or call, when given) with ids above ``after`` (an ``events_lost`` notice first
#: where it holds more than a resume sends).
StoredAfter = Callable[[str, str | None, int], Awaitable[list[pb.Event]]]


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
