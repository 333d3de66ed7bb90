"""The event bus across servers: one Redis stream that every server publishes to and reads from.

Every server sharing a Redis and a database publishes its calls' events (already stored, with the journal's ids)
to one stream, ``<prefix>events``, and reads it back in one task that fans the events out to its own subscribers:
every subscriber, on any server, sees every event of its team (or call) once, in the stream's order, which is the
same on every server. Event ids stay the journal's (unique across servers, the store's key); the stream's order is
not theirs (two servers' ids interleave), so resuming after an id goes by where that event stands in the stream:
a hash per minute, ``<prefix>ids:<minute>``, maps each id to its stream entry. Resume finds the entry and goes on
from it, on any server, also after the server that published the event died. An id the stream no longer holds
(older than ``window_s``, which the stream is trimmed to, or lost with a Redis that kept nothing) is resumed from
the store instead (exact for one call, whose ids increase; for a whole team only within one server's ids).

Redis going away stops nothing but the fan-out: publishing queues (in order, ``max_outbox`` events at most) and is
retried until Redis answers, then the queue goes out in order; the reader reconnects and reads on from the last
entry it saw (a Redis that kept nothing starts its stream's ids from its clock, after the old ones). Subscribers
wait meanwhile; nothing they were told is lost, nothing is repeated (publishing is idempotent: an id the stream
holds already is not added again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from media_server.bus.base import Inbox, StoredAfter
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

StreamId = tuple[int, int]

_BATCH = 500  # entries per round trip, publishing and reading
_BLOCK_MS = 1000  # how long one read waits for new entries
_RETRY_FIRST_S, _RETRY_MAX_S = 0.1, 2.0

# KEYS: the stream. ARGV: event id (0: a notice, not indexed), team, call id, payload, window ms, index prefix.
# Adds the event unless the stream holds its id already (a publish retried after a lost reply); returns its entry.
_PUBLISH = """
local j = ARGV[1]
local prefix = ARGV[6]
local now = redis.call('TIME')
local minute = math.floor(tonumber(now[1]) / 60)
if j ~= '0' then
  for m = minute - 1, minute do
    local found = redis.call('HGET', prefix .. m, j)
    if found then return found end
  end
end
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local oldest = string.format('%d', now_ms - tonumber(ARGV[5]))
local sid = redis.call('XADD', KEYS[1], 'MINID', '~', oldest, '*', 't', ARGV[2], 'c', ARGV[3], 'e', ARGV[4])
if j ~= '0' then
  local key = prefix .. minute
  redis.call('HSET', key, j, sid)
  redis.call('EXPIRE', key, math.floor(tonumber(ARGV[5]) / 1000) + 120)
end
return sid
"""

# ARGV: event id, minutes to look back, index prefix. The stream entry of that event, or nil.
_LOCATE = """
local now = redis.call('TIME')
local minute = math.floor(tonumber(now[1]) / 60)
for m = minute, minute - tonumber(ARGV[2]), -1 do
  local found = redis.call('HGET', ARGV[3] .. m, ARGV[1])
  if found then return found end
end
return nil
"""


def parse_id(raw: bytes | str) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _text(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def _replayable(event: pb.Event) -> bool:
    """What a resume hands out, as from the store: logged events, no notices (id 0), no interim transcripts."""
    return event.id != 0 and not (event.type == "transcript" and not event.transcript.is_final)


@dataclass(eq=False)
class _RedisSubscription:
    bus: RedisEventBus
    team: str
    call_id: str | None
    inbox: Inbox[tuple[StreamId, pb.Event]]
    after: int | None = None
    stored: StoredAfter | None = None

    def offer(self, sid: StreamId, event: pb.Event) -> None:
        self.inbox.offer((sid, event))

    async def _iterate(self) -> AsyncIterator[pb.Event]:
        last: StreamId = (0, 0)  # live entries up to this one were handed out by the catch-up
        seen: set[int] = set()  # ids the store handed out (a resume the stream could not serve)
        if self.after is not None:
            start = await self.bus.locate(self.after)
            if start is not None:
                async for sid, event in self.bus.entries_after(start, self.team, self.call_id):
                    last = sid
                    if _replayable(event):
                        yield event
            elif self.stored is not None:
                for event in await self.stored(self.team, self.call_id, self.after):
                    seen.add(event.id)
                    yield event
        async for sid, event in self.inbox.items():
            if sid <= last or (event.id and event.id in seen):
                continue
            yield event

    def __aiter__(self) -> AsyncIterator[pb.Event]:
        return self._iterate()

    def close(self) -> None:
        self.inbox.close()
        self.bus._detach(self)


@dataclass
class _Outgoing:
    event_id: int
    team: str
    call_id: str
    payload: bytes


class RedisEventBus:
    """``bus = "redis"``: events fan out to every server's subscribers through one Redis stream."""

    resumes = True  # it holds the recent events itself, in the order every server sees them

    def __init__(
        self,
        url: str,
        prefix: str = "media-server:",
        window_s: float = 600.0,
        subscriber_queue: int = 1000,
        max_outbox: int = 200_000,
    ):
        self.url = url
        self.prefix = prefix
        self.stream = f"{prefix}events"
        self.window_s = window_s
        self.subscriber_queue = subscriber_queue
        self.max_outbox = max_outbox
        self._failing: dict[str, str] = {}  # what fails now (publishing, reading, resuming): why
        self._started = False
        self.published = 0  # entries added to the stream by this server
        self.received = 0  # entries read from the stream
        self.dropped = 0  # events given up because the outbox was full while Redis was away
        self._subscriptions: set[_RedisSubscription] = set()
        self._by_key: dict[tuple[str, str | None], set[_RedisSubscription]] = {}  # (team, call id or None)
        self._outbox: deque[_Outgoing] = deque()
        self._enqueued = 0  # events handed to publish() so far
        self._flushed = 0  # of them, in the stream (or given up)
        self._flushed_cond = asyncio.Condition()
        self._outbox_wake = asyncio.Event()
        self._position: StreamId = (0, 0)  # the last entry the reader read
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        # Two clients: the reader's blocking reads would hold up publishing on a shared connection.
        self._client = redis_client(url, socket_connect_timeout=2, socket_timeout=5, socket_keepalive=True)
        self._reader_client = redis_client(
            url, socket_connect_timeout=2, socket_timeout=_BLOCK_MS / 1000 + 5, socket_keepalive=True
        )
        self._publish_script = self._client.register_script(_PUBLISH)
        self._locate_script = self._client.register_script(_LOCATE)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self, wait_s: float = 10.0) -> None:
        """Find the stream's end (where this server's subscribers start) and start publishing and reading.
        Raises ``ConnectionError`` when Redis does not answer within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._position = await self._tail()
                break
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"Redis at {_safe(self.url)} does not answer: {exc}") from exc
                await asyncio.sleep(0.2)
        self._started = True
        self._tasks = [
            asyncio.create_task(self._read(), name="redis-bus-reader"),
            asyncio.create_task(self._flush(), name="redis-bus-publisher"),
        ]

    async def close(self, within_s: float = 5.0) -> None:
        """Publish what is queued (within ``within_s``), then stop."""
        if self._outbox and self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_flushed(self._enqueued), within_s)
        if self._outbox:
            log.error("%d events were not published to Redis before shutdown (they are stored)", len(self._outbox))
        self._closing = True
        self._outbox_wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self._subscriptions):
            sub.close()
        await self._client.aclose()
        await self._reader_client.aclose()

    def stats(self) -> dict[str, object]:
        return {
            "backend": "redis",
            "healthy": self.healthy,
            "failure": self.failure,
            "outbox": len(self._outbox),
            "published": self.published,
            "received": self.received,
            "dropped": self.dropped,
            "subscribers": len(self._subscriptions),
        }

    async def reachable(self) -> bool:
        """Redis answers a ping now (readiness)."""
        try:
            return bool(await asyncio.wait_for(self._client.ping(), 2.0))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- publishing ------------------------------------------------------------------------------------

    async def publish(self, event: pb.Event) -> None:
        """Queue the event for the stream; never waits (Redis away: it waits in the outbox, in order)."""
        if len(self._outbox) >= self.max_outbox:
            self._outbox.popleft()
            self.dropped += 1
            self._flushed += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("Redis away too long: %d events not fanned out (they are stored)", self.dropped)
        self._outbox.append(_Outgoing(event.id, event.team, event.call_id, event.SerializeToString()))
        self._enqueued += 1
        self._outbox_wake.set()

    async def _flush(self) -> None:
        delay = _RETRY_FIRST_S
        while not self._closing:
            if not self._outbox:
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            batch = [self._outbox[i] for i in range(min(len(self._outbox), _BATCH))]
            window_ms = str(int(self.window_s * 1000))
            index = f"{self.prefix}ids:"
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for out in batch:
                        await self._publish_script(
                            keys=[self.stream],
                            args=[out.event_id, out.team, out.call_id, out.payload, window_ms, index],
                            client=pipe,
                        )
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                self._failed("publishing", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            delay = _RETRY_FIRST_S
            sent = 0
            for out in batch:  # (the oldest may have been given up meanwhile, the outbox being full)
                if self._outbox and self._outbox[0] is out:
                    self._outbox.popleft()
                    sent += 1
            self._recovered("publishing")
            self.published += sent
            async with self._flushed_cond:
                self._flushed += sent
                self._flushed_cond.notify_all()

    async def _wait_flushed(self, count: int) -> None:
        async with self._flushed_cond:
            await self._flushed_cond.wait_for(lambda: self._flushed >= count)

    # -- reading ---------------------------------------------------------------------------------------

    async def _tail(self) -> StreamId:
        last: Any = await self._client.xrevrange(self.stream, "+", "-", count=1)
        return parse_id(last[0][0]) if last else (0, 0)

    async def _read(self) -> None:
        delay = _RETRY_FIRST_S
        while not self._closing:
            try:
                reply: Any = await self._reader_client.xread(
                    {self.stream: _text(self._position)}, count=_BATCH, block=_BLOCK_MS
                )
            except (RedisError, OSError) as exc:
                self._failed("reading", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            delay = _RETRY_FIRST_S
            self._recovered("reading")
            for _stream, entries in reply or []:
                for raw_id, fields in entries:
                    self._position = parse_id(raw_id)
                    self.received += 1
                    self._dispatch(self._position, fields)

    def _dispatch(self, sid: StreamId, fields: dict[bytes, bytes]) -> None:
        team, call_id = fields.get(b"t", b"").decode(), fields.get(b"c", b"").decode()
        targets = [*self._by_key.get((team, None), ()), *self._by_key.get((team, call_id), ())]
        if not targets:
            return
        event = _decode(fields)
        if event is None:
            return
        for sub in targets:
            sub.offer(sid, event)

    # -- subscribing -----------------------------------------------------------------------------------

    def subscribe(self, team: str, call_id: str | None = None) -> _RedisSubscription:
        """The events of one call (or of every call of ``team``), from any server, read from now on."""
        sub = _RedisSubscription(self, team, call_id, Inbox(self.subscriber_queue))
        self._attach(sub)
        return sub

    def resume(self, team: str, call_id: str | None, after: int, stored: StoredAfter) -> _RedisSubscription:
        """The events after event ``after`` in the stream's order (from any server), then live ones; where the
        stream no longer holds ``after``, the store's events with larger ids (``stored``) instead."""
        sub = _RedisSubscription(self, team, call_id, Inbox(self.subscriber_queue), after=after, stored=stored)
        self._attach(sub)  # (from now: what the catch-up reads as well is skipped by its entry id)
        return sub

    def _attach(self, sub: _RedisSubscription) -> None:
        self._subscriptions.add(sub)
        self._by_key.setdefault((sub.team, sub.call_id), set()).add(sub)

    def _detach(self, sub: _RedisSubscription) -> None:
        self._subscriptions.discard(sub)
        subs = self._by_key.get((sub.team, sub.call_id))
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_key[sub.team, sub.call_id]

    async def locate(self, event_id: int) -> StreamId | None:
        """The stream entry of an event, or None when the stream does not hold it. Events this server published
        before the call are in the stream first (waited for while Redis answers)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_flushed(self._enqueued), 5.0)
        minutes = int(self.window_s // 60) + 2
        for attempt in range(50):
            try:
                found = await self._locate_script(args=[event_id, minutes, f"{self.prefix}ids:"])
                self._recovered("resuming")
                return parse_id(found) if found else None
            except (RedisError, OSError) as exc:
                self._failed("resuming", exc)
                await asyncio.sleep(min(_RETRY_FIRST_S * 2**attempt, _RETRY_MAX_S))
        return None

    async def entries_after(
        self, start: StreamId, team: str, call_id: str | None
    ) -> AsyncIterator[tuple[StreamId, pb.Event]]:
        """The stream's entries after ``start`` of a team (or call), oldest first, up to the stream's end."""
        cursor = start
        while True:
            page: list[Any] = []
            for attempt in range(50):
                try:
                    page = cast(Any, await self._client.xrange(self.stream, f"({_text(cursor)}", "+", count=_BATCH))
                    self._recovered("resuming")
                    break
                except (RedisError, OSError) as exc:
                    self._failed("resuming", exc)
                    await asyncio.sleep(min(_RETRY_FIRST_S * 2**attempt, _RETRY_MAX_S))
            for raw_id, fields in page:
                cursor = parse_id(raw_id)
                if fields.get(b"t", b"").decode() != team:
                    continue
                if call_id is not None and fields.get(b"c", b"").decode() != call_id:
                    continue
                event = _decode(fields)
                if event is not None:
                    yield cursor, event
            if len(page) < _BATCH:
                return

    async def forget(self, team: str, call_ids: set[str]) -> int:
        """Delete the stream's entries of these calls (an erasure: nothing a resume hands out holds them); what this
        server published before is in the stream first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_flushed(self._enqueued), 5.0)
        removed, cursor = 0, "-"
        while True:
            page: Any = await self._client.xrange(self.stream, cursor, "+", count=_BATCH)
            doomed = [
                raw_id
                for raw_id, fields in page
                if fields.get(b"t", b"").decode() == team and fields.get(b"c", b"").decode() in call_ids
            ]
            if doomed:
                removed += int(await self._client.xdel(self.stream, *doomed))
            if len(page) < _BATCH:
                return removed
            cursor = f"({page[-1][0].decode()}"

    # -- health ----------------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Redis answers: started, and nothing fails now."""
        return self._started and not self._failing

    @property
    def failure(self) -> str:
        return "; ".join(f"{doing}: {why}" for doing, why in self._failing.items())

    def _failed(self, doing: str, exc: BaseException) -> None:
        if not self._failing:
            log.error("Redis at %s fails (%s: %s); events wait and go out when it is back", _safe(self.url), doing, exc)
        self._failing[doing] = str(exc) or type(exc).__name__

    def _recovered(self, doing: str) -> None:
        if self._failing.pop(doing, None) is not None and not self._failing:
            log.warning("Redis answers again")


def _decode(fields: dict[bytes, bytes]) -> pb.Event | None:
    event = pb.Event()
    try:
        event.ParseFromString(fields.get(b"e", b""))
    except Exception:  # (another program's entry in our stream)
        log.warning("an entry of the event stream is not an event; skipped")
        return None
    return event


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A Redis client for ``url`` (the bus's, the live directory's): ``rediss://`` is TLS 1.2 or later, the server's
    certificate and host name verified against the URL's ``ssl_ca_certs`` (else the system's roots), with a client
    certificate from ``ssl_certfile`` and ``ssl_keyfile`` (``events.redis_ca_file``... are written there)."""
    if url.startswith("rediss://"):
        options.setdefault("ssl_min_version", ssl.TLSVersion.TLSv1_2)
    return aioredis.Redis.from_url(url, **options)


def _safe(url: str) -> str:
    """The URL without its password (for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
