"""The server's event journal: the one owner of event ids, and the write path of every call.

Every event of every call goes through :meth:`Journal.append`, which gives it the next event id: ids increase
within this server and are never reused, by it or by another server on the same database. The journal claims ids
in blocks (:meth:`Store.claim_ids`: one statement raises the store's counter, so two servers never get the same
block; a restart claims a new one) and claims the next block while half of the current one is left. Should appends
outrun the claims (a burst, a failing store), ids past the block are handed out provisionally: claimed before they
are stored, and renumbered first if another server took the ids after the block meanwhile (nothing has seen them:
an event is published only once stored).
A writer task stores what was appended in group commits (one transaction for all that
queued while the previous one ran, after ``commit_interval_s``), in order: the event itself (all but interim
transcripts: those are not replayable) and the rows of its call that it changes (``store/writes.py``). Only then
are the events handed to the bus, in id order: an event a subscriber saw is on disk (a batch of interims alone
needs no write and is published at once). A subscriber resuming with
``after=`` is served from the store up to the newest published id, then live (:meth:`Journal.subscribe`).

When the store fails (disk full, database gone), the batch stays queued and is retried with a growing delay; the
calls with events waiting are told (``on_failure``: the lifecycle ends them as ``storage_failed`` and their peers
get an error); :attr:`healthy` is False until a write succeeds again. What waits longer than ``retry_for_s`` (or
past ``max_pending`` events) is given up: never published, its calls closed as ``storage_failed`` once the store
is back. An entry the database rejects on its own (a constraint, a value it cannot hold) is dropped alone; the
others go on. The call id is the database's to give: a ``call_started`` whose (team, call id) the calls table
holds already is refused with :class:`CallIdTaken`, whichever server holds that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DataError, IntegrityError

from media_server.bus import EventBus, ResumingBus, SubscriberTooSlow, Subscription
from media_server.events import events_lost, new_event, stamp
from media_server.store.store import CallKey, Logged, Store
from media_server.store.writes import CallOpened, Write
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

_MAX_BATCH = 2000
_LOST_KEPT = 100_000  # ids of events given up that committed() still recognises
_BLOCK = 1000  # event ids claimed at a time (a restart skips what was claimed and not used)
_RETRY_FIRST_S, _RETRY_MAX_S = 0.25, 5.0


class StorageFailed(Exception):
    """An event could not be stored (and so was never published)."""


class CallIdTaken(StorageFailed):
    """A ``call_started`` refused: the team has a call of this id already (live on any server, or stored)."""


@dataclass
class _Replay:
    """A subscription resuming from an id: the store's events up to ``upto``, then the live ones."""

    journal: Journal
    live: Subscription
    team: str
    call_id: str | None
    after: int
    upto: int

    async def _iterate(self) -> AsyncIterator[pb.Event]:
        limit = self.journal.replay_max
        stored, left_out = await self.journal.store.events_after(self.team, self.call_id, self.after, self.upto, limit)
        if left_out:
            yield events_lost(self.call_id, self.team, left_out, limit)
        for event in stored:
            yield event
        async for event in self.live:
            if event.id == 0 or event.id > self.upto:  # (id 0: a notice that is not logged)
                yield event

    def __aiter__(self) -> AsyncIterator[pb.Event]:
        return self._iterate()

    def close(self) -> None:
        self.live.close()


@dataclass
class Journal:
    store: Store
    bus: EventBus
    node: str = ""  # this server, as the store records who holds a live call
    commit_interval_s: float = 0.0  # wait this long after a commit to gather the next batch
    retry_for_s: float = 60.0  # how long events wait for a failing store before they are given up
    max_pending: int = 200_000  # events waiting at most, while the store fails
    replay_max: int = 10_000  # events a resuming subscriber is sent from the store at most
    on_failure: Callable[[set[CallKey], str], None] | None = None  # calls whose events cannot be stored, and why
    on_commit: Callable[[float], None] | None = None  # observes each group commit's seconds (/metrics)
    healthy: bool = True
    failure: str = ""  # why the store fails, while it does
    _pending: deque[Logged] = field(default_factory=deque)
    _next_id: int = 1
    _published: int = 0
    _block_end: int = 0  # ids up to this one are claimed (past it: handed out, not claimed yet)
    _spare: tuple[int, int] | None = None  # the next block claimed, when it does not follow the current one
    _waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    _lost_ids: dict[int, tuple[type[StorageFailed], str]] = field(default_factory=dict)  # given up or refused, why
    _failing_since: float | None = None
    _failed_calls: set[CallKey] = field(default_factory=set)  # told already, during the current failure
    _lost_calls: set[CallKey] = field(default_factory=set)  # events given up: closed once the store is back
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _writer: asyncio.Task[None] | None = None
    _closing: bool = False
    batches: int = 0  # commits so far (the benchmark's figures)
    committed_events: int = 0  # appended events through the commits (interims too, which are not stored)
    stored_events: int = 0  # of them, stored in the log
    commit_seconds: float = 0.0

    async def start(self) -> None:
        first = await self.store.claim_ids(_BLOCK)
        self._next_id, self._block_end, self._published = first, first + _BLOCK - 1, first - 1
        self._writer = asyncio.create_task(self._run(), name="journal-writer")

    @property
    def last_id(self) -> int:
        """The newest published event id: a snapshot of the live calls taken with it tells a subscriber where to
        resume (``after=last_id``) without a gap."""
        return self._published

    @property
    def pending(self) -> int:
        return len(self._pending)

    def stats(self) -> dict[str, object]:
        """The write path's figures since the start (``/v1/status``)."""
        return {
            "healthy": self.healthy,
            "failure": self.failure,
            "pending": len(self._pending),
            "lastId": self._published,
            "batches": self.batches,
            "events": self.committed_events,
            "storedEvents": self.stored_events,
            "commitSeconds": round(self.commit_seconds, 4),
        }

    def append(self, event: pb.Event, *writes: Write) -> pb.Event:
        """Give the event its id and time and queue it (with its call's rows) for the next group commit; it is
        published once stored. Never waits."""
        if self._next_id > self._block_end and self._spare is not None:
            (self._next_id, self._block_end), self._spare = self._spare, None
        stamp(event, self._next_id)
        self._next_id += 1
        durable = not (event.type == "transcript" and not event.transcript.is_final)
        self._pending.append(Logged(event, durable, writes))
        if not self.healthy:
            self._tell({(event.team, event.call_id)}, self.failure)
        self._wake.set()
        return event

    async def committed(self, event: pb.Event) -> None:
        """Wait until the event is stored and published; ``StorageFailed`` if it was given up (or refused)."""
        lost = self._lost_ids.get(event.id)
        if lost is not None:
            error, why = lost
            raise error(why)
        if event.id <= self._published:
            return
        waiter = self._waiters.get(event.id)
        if waiter is None:
            waiter = self._waiters[event.id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def subscribe(self, team: str, call_id: str | None = None, after: int | None = None) -> Subscription:
        """Events of one call (or of every call of ``team``) with ``id > after`` (from the store, across
        restarts), then live ones; without ``after``, live ones only."""
        if after is not None and isinstance(self.bus, ResumingBus):
            return self.bus.resume(team, call_id, after, self._stored_after)
        live = self.bus.subscribe(team, call_id)
        if after is None or after >= self._published:
            return live
        return _Replay(self, live, team, call_id, after, self._published)

    async def _stored_after(self, team: str, call_id: str | None, after: int) -> list[pb.Event]:
        """The stored events after ``after`` (the newest ``replay_max``; a notice first if older ones matched)."""
        events, left_out = await self.store.events_after(team, call_id, after, 2**62, self.replay_max)
        return [events_lost(call_id, team, left_out, self.replay_max), *events] if left_out else events

    async def notice(self, call_id: str, team: str, **payload: object) -> None:
        """Tell a call's subscribers something that is not stored (the store failing; the end of a call that could
        not be stored): published at once, with id 0."""
        event = new_event(call_id, team, **payload)
        stamp(event, 0)
        await self.bus.publish(event)

    async def close(self, within_s: float = 10.0) -> None:
        """Store what is queued (within ``within_s``), then stop."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), within_s)
            except TimeoutError:
                log.error("%d events could not be stored before shutdown: %s", len(self._pending), self.failure)
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer

    # -- the writer ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = _RETRY_FIRST_S
        while True:
            if not self._pending:
                if self._closing:
                    return
                if not self.healthy:  # nothing queued: probe the store, so that readiness comes back
                    if await self._probe():
                        continue
                    if self._closing:
                        return
                    await self._pause(delay)
                    delay = min(delay * 2, _RETRY_MAX_S)
                    continue
                self._wake.clear()
                await self._wake.wait()
                if self.commit_interval_s > 0 and not self._closing:
                    await asyncio.sleep(self.commit_interval_s)
                continue
            started = time.perf_counter()
            batch: list[Logged] = []
            try:
                await self._claim()
                batch = [self._pending[i] for i in range(min(len(self._pending), _MAX_BATCH))]
                stored = any(e.durable or e.writes for e in batch)  # (else only interims: published at once)
                if stored:
                    await self.store.commit(batch)
            except asyncio.CancelledError:
                raise
            except (IntegrityError, DataError):
                await self._isolate(batch)
                continue
            except Exception as exc:
                self._failed(exc)
                if self._closing and self._failing_since is not None:
                    if time.monotonic() - self._failing_since > 5.0:
                        self._give_up("the server is shutting down")
                        return
                await self._pause(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                self._expire()
                continue
            delay = _RETRY_FIRST_S
            if stored:
                self.batches += 1
                self.committed_events += len(batch)
                self.stored_events += sum(1 for e in batch if e.durable)
                took = time.perf_counter() - started
                self.commit_seconds += took
                if self.on_commit is not None:
                    self.on_commit(took)
            for _ in batch:
                self._pending.popleft()
            if not self.healthy:
                await self._recovered()
            await self._publish(batch)

    async def _claim(self) -> None:
        """Claim ids ahead: the next block once half of this one is handed out, and at once any ids handed out
        past the claimed ones (renumbered if another server claimed those meanwhile)."""
        provisional = self._next_id - 1 - self._block_end
        if provisional <= 0 and (self._spare is not None or self._block_end - self._next_id + 1 > _BLOCK // 2):
            return
        size = _BLOCK + max(provisional, 0)
        first = await self.store.claim_ids(size)
        last = first + size - 1
        if provisional > 0 and first != self._block_end + 1:
            self._renumber(self._block_end + 1, first)
        elif provisional <= 0 and first != self._block_end + 1:
            self._spare = (first, last)
            return
        self._block_end = last

    def _renumber(self, since: int, first: int) -> None:
        """The queued events with ids from ``since`` on (handed out, never claimed, never seen) take ids from
        ``first`` on, in order; whoever waits for one of them waits for it under its new id."""
        next_id = first
        for entry in self._pending:
            old = entry.event.id
            if old < since:
                continue
            entry.event.id = next_id
            waiter = self._waiters.pop(old, None)
            if waiter is not None:
                self._waiters[next_id] = waiter
            next_id += 1
        log.info(
            "ids %d-%d were claimed by another server: %d queued events renumbered",
            since,
            self._next_id - 1,
            next_id - first,
        )
        self._next_id = next_id

    async def _pause(self, seconds: float) -> None:
        """Wait before a retry; a close cuts it short."""
        self._wake.clear()
        if self._closing:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _publish(self, batch: list[Logged]) -> None:
        for entry in batch:
            try:
                await self.bus.publish(entry.event)
            except Exception:
                log.exception("event %d could not be published", entry.event.id)
            self._published = entry.event.id
            waiter = self._waiters.pop(entry.event.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _isolate(self, batch: list[Logged]) -> None:
        """The database refused the batch over one entry's rows (a constraint, a value it cannot hold): store them
        one by one, drop the one it refuses, keep the others."""
        for entry in batch:
            event = entry.event
            try:
                await self.store.commit([entry])
            except (IntegrityError, DataError) as refused:
                self._pending.popleft()
                opens = any(isinstance(w, CallOpened) for w in entry.writes)
                if opens and await self._taken(event.team, event.call_id):
                    log.warning("call %s of team %s refused: the team has a call of this id", event.call_id, event.team)
                    self._fail_waiter(event.id, f"call {event.call_id!r} exists already", CallIdTaken)
                    continue  # (the call that opens learns it from committed(); it never started)
                log.error("event %d of call %s refused by the database: %s", event.id, event.call_id, refused)
                self._fail_waiter(event.id, str(refused.orig))
                if self.on_failure is not None:  # (told once; a later store failure may tell it again)
                    self.on_failure({(event.team, event.call_id)}, "the database refused its rows")
                continue
            except Exception:
                return  # the store itself fails: the main loop retries
            self._pending.popleft()
            await self._publish([entry])

    async def _taken(self, team: str, call_id: str) -> bool:
        try:
            return await self.store.call_exists(team, call_id)
        except Exception:
            return False

    def _failed(self, exc: Exception) -> None:
        reason = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
        if self.healthy:
            log.error("the store fails (%s): %d events wait, their calls end as storage_failed", reason, self.pending)
            self._failing_since = time.monotonic()
        self.healthy, self.failure = False, reason
        self._tell({(e.event.team, e.event.call_id) for e in self._pending}, reason)

    def _tell(self, calls: set[CallKey], reason: str) -> None:
        new = calls - self._failed_calls
        if not new:
            return
        self._failed_calls |= new
        if self.on_failure is not None:
            self.on_failure(new, reason)

    def _expire(self) -> None:
        if self._failing_since is None:
            return
        if time.monotonic() - self._failing_since > self.retry_for_s or len(self._pending) > self.max_pending:
            self._give_up(f"the store failed for {self.retry_for_s:g} s ({self.failure})")

    def _give_up(self, why: str) -> None:
        lost = {(e.event.team, e.event.call_id) for e in self._pending}
        log.error("giving up %d events of %d calls: %s", len(self._pending), len(lost), why)
        for entry in self._pending:
            self._fail_waiter(entry.event.id, why)
        self._pending.clear()
        self._lost_calls |= lost

    def _fail_waiter(self, event_id: int, why: str, error: type[StorageFailed] = StorageFailed) -> None:
        self._lost_ids[event_id] = (error, why)
        while len(self._lost_ids) > _LOST_KEPT:  # (oldest first: dicts keep insertion order)
            del self._lost_ids[next(iter(self._lost_ids))]
        waiter = self._waiters.pop(event_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_exception(error(why))

    async def _probe(self) -> bool:
        try:
            await self.store.probe()
            await self.store.close_lost(self._lost_calls)
        except Exception as exc:
            self._failed(exc)
            return False
        await self._recovered()
        return True

    async def _recovered(self) -> None:
        if self._lost_calls:
            try:
                await self.store.close_lost(self._lost_calls)
            except Exception:
                return
        log.warning("the store works again (it failed: %s)", self.failure)
        self.healthy, self.failure = True, ""
        self._failing_since = None
        self._failed_calls.clear()
        self._lost_calls.clear()
        # (a call told of the failure was ended; a later failure tells the calls live then)


__all__ = ["CallIdTaken", "Journal", "StorageFailed", "SubscriberTooSlow"]
