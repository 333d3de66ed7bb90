"""In-process event bus: a bounded queue per subscriber."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from media_server.bus.base import SubscriberTooSlow
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _MemorySubscription:
    bus: InMemoryEventBus
    team: str
    call_id: str | None
    queue: asyncio.Queue[pb.Event]
    overflowed: int = 0
    closed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, event: pb.Event) -> bool:
        return event.team == self.team and (self.call_id is None or event.call_id == self.call_id)

    def offer(self, event: pb.Event) -> None:
        if self.overflowed:
            self.overflowed += 1
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = 1
            self._wake.set()

    async def _iterate(self) -> AsyncIterator[pb.Event]:
        while not self.closed:
            if self.overflowed:
                raise SubscriberTooSlow(f"more than {self.queue.maxsize} events were waiting")
            if self.queue.empty():
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
                continue
            yield self.queue.get_nowait()

    def __aiter__(self) -> AsyncIterator[pb.Event]:
        return self._iterate()

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self.bus._subscriptions.discard(self)


class InMemoryEventBus:
    def __init__(self, subscriber_queue: int = 1000):
        self.subscriber_queue = subscriber_queue
        self._subscriptions: set[_MemorySubscription] = set()

    async def start(self) -> None:
        pass

    def stats(self) -> dict[str, object]:
        return {"backend": "memory", "healthy": True, "subscribers": len(self._subscriptions)}

    async def reachable(self) -> bool:
        return True

    async def forget(self, team: str, call_ids: set[str]) -> int:
        return 0  # (it holds nothing: events are handed on as they come)

    async def publish(self, event: pb.Event) -> None:
        for sub in list(self._subscriptions):
            if sub.matches(event):
                sub.offer(event)

    def subscribe(self, team: str, call_id: str | None = None) -> _MemorySubscription:
        sub = _MemorySubscription(self, team, call_id, asyncio.Queue(maxsize=self.subscriber_queue))
        self._subscriptions.add(sub)
        return sub

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()
