"""In-process event bus: a bounded queue per subscriber."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from media_server.bus.base import Inbox
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _MemorySubscription:
    bus: InMemoryEventBus
    team: str
    call_id: str | None
    inbox: Inbox[pb.Event]

    def matches(self, event: pb.Event) -> bool:
        return event.team == self.team and (self.call_id is None or event.call_id == self.call_id)

    def offer(self, event: pb.Event) -> None:
        self.inbox.offer(event)

    def __aiter__(self) -> AsyncIterator[pb.Event]:
        return self.inbox.items()

    def close(self) -> None:
        self.inbox.close()
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
        sub = _MemorySubscription(self, team, call_id, Inbox(self.subscriber_queue))
        self._subscriptions.add(sub)
        return sub

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()
