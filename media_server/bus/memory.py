"""In-process event bus: a bounded replay buffer per call and a bounded queue per subscriber."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from media_server.bus.base import SubscriberTooSlow
from media_server.events import new_event, stamp
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)


@dataclass
class _CallLog:
    team: str
    events: deque[pb.Event]
    dropped: int = 0  # events that fell off the front of the buffer
    last_dropped_id: int = 0  # the id of the newest of them
    ended_at: float | None = None


@dataclass(eq=False)
class _MemorySubscription:
    bus: InMemoryEventBus
    team: str
    call_id: str | None
    queue: asyncio.Queue[pb.Event]
    replay: list[pb.Event] = field(default_factory=list)
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
        for event in self.replay:
            yield event
        self.replay = []
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
    def __init__(self, buffer_per_call: int = 5000, keep_ended_s: float = 600.0, subscriber_queue: int = 1000):
        self.buffer_per_call = buffer_per_call
        self.keep_ended_s = keep_ended_s
        self.subscriber_queue = subscriber_queue
        self._ids = itertools.count(1)
        self._logs: dict[str, _CallLog] = {}
        self._subscriptions: set[_MemorySubscription] = set()
        self._last_id = 0

    @property
    def last_id(self) -> int:
        return self._last_id

    async def publish(self, event: pb.Event) -> pb.Event:
        self._last_id = next(self._ids)
        stamp(event, self._last_id)
        entry = self._logs.get(event.call_id)
        if entry is None:
            entry = self._logs[event.call_id] = _CallLog(event.team, deque(maxlen=self.buffer_per_call))
        if len(entry.events) == entry.events.maxlen:
            entry.dropped += 1
            entry.last_dropped_id = entry.events[0].id if entry.events else event.id
        entry.events.append(event)
        for sub in list(self._subscriptions):
            if sub.matches(event):
                sub.offer(event)
        return event

    def subscribe(self, team: str, call_id: str | None = None, after: int | None = None) -> _MemorySubscription:
        self._prune()
        sub = _MemorySubscription(self, team, call_id, asyncio.Queue(maxsize=self.subscriber_queue))
        if after is not None:
            if call_id is None:
                logs = self._team_logs(team)
            else:
                logs = [self._logs[call_id]] if call_id in self._logs else []
            sub.replay = self._replay(logs, after, call_id, team)
        self._subscriptions.add(sub)  # no await since the replay snapshot: nothing can slip between
        return sub

    def call_ended(self, call_id: str) -> None:
        entry = self._logs.get(call_id)
        if entry is not None:
            entry.ended_at = time.monotonic()
        self._prune()

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            sub.close()

    def _team_logs(self, team: str) -> list[_CallLog]:
        return [entry for entry in self._logs.values() if entry.team == team]

    def _replay(self, logs: Iterable[_CallLog], after: int, call_id: str | None, team: str) -> list[pb.Event]:
        streams = []
        gaps: list[pb.Event] = []
        for entry in logs:
            if entry.team != team:
                continue
            if entry.dropped and entry.events and entry.last_dropped_id > after:
                # Older events of this call are gone: say so instead of silently losing them.
                gap = new_event(
                    entry.events[0].call_id,
                    team,
                    error=pb.Error(
                        code="events_lost",
                        message=f"{entry.dropped} events before id {entry.events[0].id} are no longer buffered",
                    ),
                )
                stamp(gap, 0)
                gaps.append(gap)
            streams.append([e for e in entry.events if e.id > after and e.team == team])
        return gaps + list(heapq.merge(*streams, key=lambda e: e.id))

    def _prune(self) -> None:
        if self.keep_ended_s <= 0:
            horizon = time.monotonic()
        else:
            horizon = time.monotonic() - self.keep_ended_s
        for call_id in [c for c, e in self._logs.items() if e.ended_at is not None and e.ended_at <= horizon]:
            del self._logs[call_id]
