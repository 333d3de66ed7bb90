"""The store: API keys, calls (written as they go, by ``store/journal.py``), the event log, over SQLAlchemy's
asyncio engine: SQLite (embedded, the default) or PostgreSQL (``postgresql+asyncpg://``, shared by several servers).

A call is keyed by its team and id: every query of a call names both. What only SQLite needs (its pragmas, the
writer thread of the journal's commits) is set up for SQLite only."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    make_url,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from media_server.auth.keys import ApiKey, Role, generate_key, hash_key, validate_team
from media_server.store.aggregates import DayFigures, day_of, rep_of
from media_server.store.lock import private_file
from media_server.store.outbox import enqueue as enqueue_webhooks
from media_server.store.people import Person
from media_server.store.records import (
    AccessRecord,
    CallRecord,
    ChannelRecord,
    ConsentChangeRecord,
    ListenRecord,
    ParticipantRecord,
    SegmentRecord,
    SpeakerRecord,
)
from media_server.store.tables import (
    AccessAuditRow,
    ApiKeyRow,
    CallRow,
    ChannelRow,
    ConsentChangeRow,
    CounterRow,
    DailyAggregateRow,
    ErasureRow,
    EventRow,
    ListenAuditRow,
    NodeRow,
    ParticipantRow,
    SegmentRow,
    TeamConfigRow,
)
from media_server.store.writes import CallChanged, CallClosed, CallOpened, CallProgress, SegmentsKept, Write
from media_server.tls import postgres_connect_args
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6D656469  # PostgreSQL: servers starting at once migrate one after the other

CallKey = tuple[str, str]
"""A call as the store knows it: (team, call id)."""


class CallExists(Exception):
    pass


# Events whose payload names a channel: a consent withdrawal erases a channel's transcript from the log too.
CHANNEL_EVENTS = ("transcript", "keyword_hit", "entity", "speech_started", "utterance_end")
_CALLS = cast(Table, CallRow.__table__)
_PARTICIPANTS = cast(Table, ParticipantRow.__table__)
_CHANNELS = cast(Table, ChannelRow.__table__)
_SEGMENTS = cast(Table, SegmentRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)
_COUNTERS = cast(Table, CounterRow.__table__)
_NODES = cast(Table, NodeRow.__table__)
_CONSENT_CHANGES = cast(Table, ConsentChangeRow.__table__)
_AGGREGATES = cast(Table, DailyAggregateRow.__table__)
_TEAM_CONFIGS = cast(Table, TeamConfigRow.__table__)


@dataclass(frozen=True)
class Logged:
    """One event as the journal commits it: the event (``durable``: kept in the log for replay) and the call's
    rows written with it."""

    event: pb.Event
    durable: bool
    writes: tuple[Write, ...] = ()


@dataclass(frozen=True)
class CallFilter:
    """What the history page filters on. Text matches are case-insensitive substrings."""

    text: str = ""  # every word of it is said somewhere in the transcript
    rep: str = ""  # in the rep's name, id or email
    keyword: str = ""  # a tracked phrase said in the call
    since: date | None = None  # started on or after this day (UTC)
    until: date | None = None  # started on or before this day (UTC)
    participant: Person | None = None  # a call they are on

    def words(self) -> list[str]:
        return [w for w in self.text.split() if w][:8]


@dataclass(frozen=True)
class Actor:
    """Who changes keys, for the access audit: a key over the API, or (the default) the command line."""

    key_id: str = ""
    key_label: str = ""
    key_role: str = ""
    via: str = "cli"
    remote: str = ""


KEY_USE_RESOLUTION = timedelta(minutes=1)


class Store:
    def __init__(self, url: str, synchronous: str = "normal", max_size_mb: float = 0.0) -> None:
        """``synchronous`` (SQLite): ``normal`` survives a crash of the process, ``full`` also a power cut;
        ``max_size_mb`` (SQLite): the database never grows past this (0: no limit); writes past it fail."""
        self.url = url
        self.dialect = make_url(url).get_backend_name()  # "sqlite", "postgresql"
        # PostgreSQL: connections are checked before use (a database restart leaves the pool's stale).
        options: dict[str, Any] = {} if self.dialect == "sqlite" else {"pool_pre_ping": True}
        # libpq's sslmode, sslrootcert, sslcert and sslkey in the URL: asyncpg's ssl context (tls.py)
        engine_url, connect_args = postgres_connect_args(url)
        if connect_args:
            options["connect_args"] = connect_args
        self.engine: AsyncEngine = create_async_engine(engine_url, **options)
        self._writer_engine: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            pragmas = [
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",  # what is deleted (an erasure, a purge) is overwritten, not left behind
                "PRAGMA journal_mode=WAL",
                "PRAGMA busy_timeout=5000",
                f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}",
            ]
            if max_size_mb > 0:
                pragmas.append(f"PRAGMA max_page_count={max(1, int(max_size_mb * 1024 * 1024 / 4096))}")
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas(pragmas))
            # The journal's commits: a sync engine on the same file, used from one thread.
            sync_url = make_url(url).set(drivername="sqlite")
            self._writer_engine = create_engine(sync_url, connect_args={"check_same_thread": False})
            event.listen(self._writer_engine, "connect", _sqlite_pragmas(pragmas))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reachable, self._reachable_at = True, -1e9
        self._using: dict[str, asyncio.Task[None]] = {}  # keys whose last use is being written

    async def open(self) -> None:
        """Bring the schema to the newest migration (a SQLite file is created 0600 first: SQLite gives its WAL and
        journal files the database file's mode)."""
        database = self.engine.url.database
        if self.engine.url.get_backend_name() == "sqlite" and database and database != ":memory:":
            private_file(Path(database))
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        if self._using:  # (writes of keys' last use: a moment each; cancelled mid-way they would hold a connection)
            await asyncio.wait(list(self._using.values()), timeout=5.0)
        await self.engine.dispose()
        if self._writer_engine is not None and self._writer is not None:  # (once: close may be called again)
            writer, engine = self._writer, self._writer_engine
            self._writer_engine = self._writer = None
            await asyncio.get_running_loop().run_in_executor(writer, engine.dispose)
            writer.shutdown(wait=False)

    # -- keys ----------------------------------------------------------------------------------------

    async def create_key(
        self,
        team: str,
        role: Role,
        label: str = "",
        expires_at: datetime | None = None,
        *,
        by: Actor | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once: only its hash is kept); audited as ``key_create`` by ``by`` (the
        command line when None)."""
        validate_team(team)
        row, secret = _new_key_row(team, role, label, expires_at)
        async with self.sessions.begin() as session:
            session.add(row)
            session.add(_key_audit(by, team, "key_create", f"{row.id} ({role.value}{', ' + label if label else ''})"))
        return _key(row), secret

    async def has_keys(self) -> bool:
        async with self.sessions() as session:
            return await session.scalar(select(ApiKeyRow.id).limit(1)) is not None

    async def find_key(self, secret: str) -> ApiKey | None:
        """The key of this secret, unless it is revoked or expired (or unknown)."""
        async with self.sessions() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(secret)))
            if row is None:
                return None
            key = _key(row)
        now = datetime.now(UTC)
        if not key.valid_at(now):
            return None
        if (key.last_used_at is None or now - key.last_used_at > KEY_USE_RESOLUTION) and key.id not in self._using:
            # (in the background: a request never waits for this write, nor for a database busy with another)
            task = asyncio.create_task(self._key_used(key.id, now), name=f"key-used-{key.id}")
            self._using[key.id] = task
            task.add_done_callback(lambda _: self._using.pop(key.id, None))
        return key

    async def _key_used(self, key_id: str, now: datetime) -> None:
        """When the key was last used, to a minute (one write a minute per key, at most)."""
        try:
            async with self.sessions.begin() as session:
                await session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now))
        except Exception as exc:  # a busy or full database does not refuse the request
            log.debug("key %s: last use not recorded (%s)", key_id, exc)

    async def list_keys(self, team: str | None, *, by: Actor | None = None) -> list[ApiKey]:
        """The keys of ``team`` (every team's: None), oldest first; audited as ``key_list`` (one row per team)."""
        async with self.sessions.begin() as session:
            query = select(ApiKeyRow).order_by(ApiKeyRow.team, ApiKeyRow.created_at, ApiKeyRow.id)
            if team is not None:
                query = query.where(ApiKeyRow.team == team)
            keys = [_key(row) for row in await session.scalars(query)]
            for shown in sorted({team} if team is not None else {k.team for k in keys}):
                session.add(_key_audit(by, shown, "key_list", f"{sum(k.team == shown for k in keys)} keys"))
        return keys

    async def revoke_key(self, key_id: str, team: str | None = None, *, by: Actor | None = None) -> ApiKey | None:
        """Revoke a key (of ``team``, when given) now; None when there is no such key. Revoking a revoked key
        changes nothing (its first revocation stays). Audited as ``key_revoke``."""
        async with self.sessions.begin() as session:
            row = await _key_row(session, key_id, team)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            session.add(_key_audit(by, row.team, "key_revoke", row.id))
            return _key(row)

    async def rotate_key(
        self,
        key_id: str,
        team: str | None = None,
        *,
        grace: timedelta = timedelta(0),
        expires_at: datetime | None = None,
        by: Actor | None = None,
    ) -> tuple[ApiKey, ApiKey, str] | None:
        """A new secret for a key: a new key of the same team, role and label (expiring at ``expires_at``, else
        after the old key's lifetime, if it had one); the old key is revoked now, or expires after ``grace``.
        (old key, new key, new secret); None when there is no such valid key. Audited as ``key_rotate``."""
        now = datetime.now(UTC)
        async with self.sessions.begin() as session:
            row = await _key_row(session, key_id, team)
            if row is None or not _key(row).valid_at(now):
                return None
            if expires_at is None and row.expires_at is not None:
                expires_at = now + (_utc(row.expires_at) - _utc(row.created_at))
            new, secret = _new_key_row(row.team, Role(row.role), row.label, expires_at, rotated_from=row.id)
            if grace > timedelta(0):
                ends = now + grace
                row.expires_at = ends if row.expires_at is None else min(_utc(row.expires_at), ends)
            else:
                row.revoked_at = now
            session.add(new)
            session.add(_key_audit(by, row.team, "key_rotate", f"{row.id} -> {new.id}"))
            return _key(row), _key(new), secret

    async def invalid_keys(self, key_ids: set[str]) -> set[str]:
        """Those of ``key_ids`` that no longer authenticate: revoked, expired or gone."""
        if not key_ids:
            return set()
        now = datetime.now(UTC)
        async with self.sessions() as session:
            rows = await session.execute(
                select(ApiKeyRow.id, ApiKeyRow.revoked_at, ApiKeyRow.expires_at).where(ApiKeyRow.id.in_(key_ids))
            )
            valid = {
                key_id
                for key_id, revoked_at, expires_at in rows
                if revoked_at is None and (expires_at is None or _utc(expires_at) > now)
            }
        return key_ids - valid

    # -- the journal's writes ------------------------------------------------------------------------

    async def commit(self, entries: list[Logged]) -> None:
        """Store a batch of events and their calls' rows in one transaction, in order (a group commit). On SQLite
        the whole transaction runs in one hop to the store's writer thread (a plain sqlite3 connection), not one
        per statement."""
        await self._write(_commit_rows, entries)

    async def claim_ids(self, count: int) -> int:
        """Claim ``count`` event ids for this server alone; returns the first (the block is ``first`` to
        ``first + count - 1``). One statement raises the ``event_id`` counter and returns it (PostgreSQL locks its
        row until the commit): servers sharing the database never get the same ids, and ids are never reused
        after a restart."""
        first: int = await self._write(_claim_ids, count)
        return first

    async def _write(self, work: Any, *args: Any) -> Any:
        """Run ``work(connection, *args)`` in one transaction: on SQLite in the writer thread."""
        if self._writer_engine is not None:
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._write_sync, work, args)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work, *args)

    def _write_sync(self, work: Any, args: tuple[Any, ...]) -> Any:
        assert self._writer_engine is not None
        with self._writer_engine.begin() as conn:
            return work(conn, *args)

    async def last_event_id(self) -> int:
        """The newest event id that may have been handed out (stored or not, claimed)."""
        async with self.sessions() as session:
            counted = await session.scalar(select(CounterRow.value).where(CounterRow.name == "event_id"))
            logged = await session.scalar(select(func.max(EventRow.id)))
        return max(counted or 0, logged or 0)

    async def events_after(
        self, team: str, call_id: str | None, after: int, upto: int, limit: int
    ) -> tuple[list[pb.Event], int]:
        """The logged events of a team (or one call) with ``after < id <= upto``, oldest first: the newest
        ``limit`` of them, and how many older ones matched but were left out."""
        where = [EventRow.team == team, EventRow.id > after, EventRow.id <= upto]
        if call_id is not None:
            where.append(EventRow.call_id == call_id)
        query = select(EventRow.payload).where(*where).order_by(EventRow.id.desc()).limit(limit + 1)
        async with self.sessions() as session:
            payloads = list((await session.scalars(query)).all())
            left_out = 0
            if len(payloads) > limit:
                payloads = payloads[:limit]
                left_out = int(await session.scalar(select(func.count()).select_from(EventRow).where(*where)) or 0)
                left_out -= limit
        events = []
        for payload in reversed(payloads):
            event_ = pb.Event()
            event_.ParseFromString(payload)
            events.append(event_)
        return events, left_out

    async def renew_lease(self, node: str, url: str, until: datetime) -> bool:
        """Hold ``node``'s lease until ``until``; False when it had no row (new, or taken over: its calls, if it
        held any, were closed by another server)."""
        renewed: bool = await self._write(_renew_lease, node, url, until)
        return renewed

    async def release_lease(self, node: str) -> None:
        """A server that stops cleanly gives its lease up (its calls are closed already)."""
        await self._write(lambda conn: conn.execute(delete(_NODES).where(_NODES.c.id == node)))

    async def take_over(self, node: str, now: datetime) -> list[str]:
        """The servers whose lease ran out before ``now``: each one's row is removed and the calls it held live
        become ``node``'s, in one transaction (servers taking over at once: one of them gets each). Returns them."""
        taken: list[str] = await self._write(_take_over, node, now)
        return taken

    async def node_urls(self) -> dict[str, str]:
        """Where each server holding a lease answers."""
        async with self.sessions() as session:
            rows = (await session.execute(select(NodeRow.id, NodeRow.url))).all()
        return {r[0]: r[1] for r in rows}

    async def still_live(self, team: str, call_ids: list[str]) -> set[str]:
        """Which of these calls of ``team`` are live now (on any server)."""
        if not call_ids:
            return set()
        query = select(CallRow.id).where(CallRow.team == team, CallRow.id.in_(call_ids), CallRow.status == "live")
        async with self.sessions() as session:
            return set((await session.scalars(query)).all())

    async def live_owner(self, team: str, call_id: str) -> tuple[str, str] | None:
        """The server holding a live call and where it answers (``""`` where it holds no lease: it died and
        is taken over soon), or None when the call is not live."""
        query = (
            select(CallRow.node, NodeRow.url)
            .outerjoin(NodeRow, NodeRow.id == CallRow.node)
            .where(CallRow.team == team, CallRow.id == call_id, CallRow.status == "live")
        )
        async with self.sessions() as session:
            row = (await session.execute(query)).first()
        return (row[0], row[1] or "") if row is not None else None

    async def live_calls(self, node: str) -> list[CallRecord]:
        """Calls ``node`` holds live according to the store (after a crash: the ones it must close)."""
        async with self.sessions() as session:
            rows = (
                await session.scalars(
                    select(CallRow)
                    .where(CallRow.status == "live", CallRow.node == node)
                    .options(selectinload(CallRow.segments))
                )
            ).all()
            return [_record(r, with_segments=True) for r in rows]

    async def close_lost(self, calls: set[CallKey]) -> None:
        """Calls whose events were given up while the store failed: closed as ``storage_failed`` with what was
        stored of them."""
        if not calls:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_CALLS)
                .where(_call_in(_CALLS.c.team, _CALLS.c.id, calls), _CALLS.c.status == "live")
                .values(status="interrupted", end_reason="storage_failed", ended_at=datetime.now(UTC))
            )

    async def reachable(self, timeout_s: float = 2.0, cache_s: float = 1.0) -> bool:
        """Does the database answer (``SELECT 1`` within ``timeout_s``)? For readiness probes: the answer is
        kept ``cache_s``, so a load balancer polling many times a second costs one query a second. SQLite is a
        file of this server's own: its failures show up as failed writes (the journal), not here."""
        if self.dialect == "sqlite":
            return True
        now = monotonic()
        if now - self._reachable_at < cache_s:
            return self._reachable
        try:
            async with asyncio.timeout(timeout_s):
                async with self.engine.connect() as conn:
                    await conn.execute(select(literal(1)))
            ok = True
        except Exception as exc:  # refused, timed out, authentication: all mean "not now"
            log.warning("database unreachable: %s", exc.__class__.__name__)
            ok = False
        self._reachable, self._reachable_at = ok, monotonic()
        return ok

    async def probe(self, size: int = 16 * 1024) -> None:
        """Raise unless the store can take new data again: writes ``size`` bytes and removes them in one
        transaction (which leaves nothing behind), so that a full disk or database fails it, as the next call's
        events would."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_EVENTS).where(_EVENTS.c.id == -1))
            await conn.execute(
                insert(_EVENTS).values(id=-1, team="", call_id="", type="probe", channel=None, payload=bytes(size))
            )
            await conn.execute(delete(_EVENTS).where(_EVENTS.c.id == -1))

    async def last_event_time(self, team: str, call_id: str) -> datetime | None:
        """When the call's newest logged event was emitted."""
        async with self.sessions() as session:
            payload = await session.scalar(
                select(EventRow.payload)
                .where(EventRow.team == team, EventRow.call_id == call_id)
                .order_by(EventRow.id.desc())
                .limit(1)
            )
        if payload is None:
            return None
        event_ = pb.Event()
        event_.ParseFromString(payload)
        return event_.time.ToDatetime(tzinfo=UTC)

    # -- calls ---------------------------------------------------------------------------------------

    async def call_exists(self, team: str, call_id: str) -> bool:
        async with self.sessions() as session:
            return await session.get(CallRow, (team, call_id)) is not None

    async def save_call(self, call: CallRecord) -> None:
        """A whole ended call at once (imports, tests): the journal's writes of a call, in one transaction.
        ``CallExists`` when the team has a call of this id already."""
        writes = (CallOpened(call, ""), SegmentsKept(call.team, call.id, call.segments), CallClosed(call))
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_apply_all, writes)
        except IntegrityError as exc:
            if await self.call_exists(call.team, call.id):
                raise CallExists(call.id) from exc
            raise

    async def get_call(self, team: str, call_id: str) -> CallRecord | None:
        async with self.sessions() as session:
            row = await session.scalar(
                select(CallRow)
                .where(CallRow.id == call_id, CallRow.team == team)
                .options(selectinload(CallRow.segments))
            )
            if row is None:
                return None
            record = _record(row, with_segments=True)
            changes = await session.scalars(
                select(ConsentChangeRow)
                .where(ConsentChangeRow.team == team, ConsentChangeRow.call_id == call_id)
                .order_by(ConsentChangeRow.id)
            )
            record.consent_history = [
                ConsentChangeRecord(
                    c.participant, c.previous, c.consent, c.source, _utc(c.at), c.by_key, c.by_label, c.by_role
                )
                for c in changes
            ]
            return record

    async def list_calls(
        self, team: str, limit: int = 50, cursor: str | None = None, where: CallFilter | None = None
    ) -> tuple[list[CallRecord], str | None]:
        """Newest first. ``cursor`` is the opaque ``next`` value of the previous page."""
        where = where or CallFilter()
        query = select(CallRow).where(CallRow.team == team, *_conditions(where))
        if where.participant is not None:
            ids = sorted({call_id for call_id, _ in await self.calls_of(team, where.participant)})
            query = query.where(CallRow.id.in_(ids))
        if cursor:
            started, call_id = _decode_cursor(cursor)
            query = query.where(tuple_(CallRow.started_at, CallRow.id) < tuple_(started, call_id))
        query = query.order_by(CallRow.started_at.desc(), CallRow.id.desc()).limit(limit + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        records = [_record(r, with_segments=False) for r in rows]
        if where.words() and records:
            await self._add_snippets(team, records, where.words())
        next_cursor = _encode_cursor(rows[-1].started_at, rows[-1].id) if more and rows else None
        return records, next_cursor

    async def _add_snippets(self, team: str, records: list[CallRecord], words: list[str]) -> None:
        """The text around the first match of the first search word, per call."""
        ids = [r.id for r in records]
        query = (
            select(SegmentRow.call_id, SegmentRow.text)
            .where(SegmentRow.team == team, SegmentRow.call_id.in_(ids), _contains(SegmentRow.text, words[0]))
            .order_by(SegmentRow.call_id, SegmentRow.start)
        )
        async with self.sessions() as session:
            found: dict[str, str] = {}
            for call_id, text in (await session.execute(query)).all():
                found.setdefault(call_id, text)
        for record in records:
            if record.id in found:
                record.snippet = _snippet(found[record.id], words[0])

    async def daily_figures(self, team: str, first: str, last: str) -> list[tuple[str, str, DayFigures]]:
        """The team's daily aggregates from day ``first`` to ``last`` (YYYY-MM-DD, included): (day, rep, sums)."""
        query = (
            select(DailyAggregateRow)
            .where(DailyAggregateRow.team == team, DailyAggregateRow.day >= first, DailyAggregateRow.day <= last)
            .order_by(DailyAggregateRow.day, DailyAggregateRow.rep)
        )
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [(r.day, r.rep, DayFigures.from_json(r.figures)) for r in rows]

    async def calls_between(self, team: str, since: datetime, until: datetime) -> list[CallRecord]:
        """Every ended call of the team that started in [since, until), oldest first, without transcripts."""
        query = (
            select(CallRow)
            .where(
                CallRow.team == team,
                CallRow.started_at >= since,
                CallRow.started_at < until,
                CallRow.status != "live",
            )
            .order_by(CallRow.started_at, CallRow.id)
        )
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_record(r, with_segments=False) for r in rows]

    async def set_disposition(self, team: str, call_id: str, disposition: str) -> bool:
        async with self.sessions.begin() as session:
            row = await session.scalar(select(CallRow).where(CallRow.id == call_id, CallRow.team == team))
            if row is None:
                return False
            before = row.disposition
            row.disposition = disposition
            row.metrics = {**(row.metrics or {}), "disposition": disposition}
            if row.counted and before != disposition:  # (its day's figures follow)
                day, _, rep = row.counted.partition("|")
                change = DayFigures(dispositions={disposition: 1})
                undo = DayFigures(dispositions={before: 1} if before else {})
                await session.run_sync(lambda sync: _add_figures(sync.connection(), team, day, rep, change))
                await session.run_sync(lambda sync: _add_figures(sync.connection(), team, day, rep, undo, -1))
            if row.status != "live" and before != disposition:  # (teams' webhooks subscribed to it hear of it)
                now = datetime.now(UTC)
                await session.run_sync(
                    lambda sync: enqueue_webhooks(sync.connection(), "call_disposition", team, call_id, now)
                )
            return True

    async def withdraw_consent(
        self, team: str, call_id: str, role: str, change: ConsentChangeRecord | None = None
    ) -> tuple[CallRecord, int] | None:
        """A participant withdrew consent after the call: erase their transcript (their channel's and any mixed
        channel's segments), for a customer their identity, and the call's free-form metadata; ``change`` goes
        into the consent history. Returns the call as it is now and the number of segments erased; None when
        there is no such call."""
        speakers = {role, "mixed"}
        async with self.sessions.begin() as session:
            row = await session.scalar(select(CallRow).where(CallRow.id == call_id, CallRow.team == team))
            if row is None:
                return None
            row.metadata_json = {}
            if change is not None:
                before = next((p.consent for p in row.participants if p.role == role), "")
                change = replace(change, previous=before)
                await session.run_sync(lambda sync: _add_consent_changes(sync.connection(), team, call_id, [change]))
            indexes = [c.index for c in row.channels if c.speaker in speakers]
            for channel in row.channels:
                if channel.index in indexes:
                    channel.transcribed = False
            for participant in row.participants:
                if participant.role == role:
                    participant.consent = "denied"
                    participant.transcribed = False
                    if role == "customer":
                        participant.external_id = participant.name = participant.phone = participant.email = ""
            erased = 0
            if indexes:
                result = await session.execute(
                    delete(SegmentRow).where(
                        SegmentRow.team == team, SegmentRow.call_id == call_id, SegmentRow.channel.in_(indexes)
                    )
                )
                erased = int(getattr(result, "rowcount", 0) or 0)
                await session.execute(
                    delete(EventRow).where(
                        EventRow.team == team,
                        EventRow.call_id == call_id,
                        EventRow.type.in_(CHANNEL_EVENTS),
                        EventRow.channel.in_(indexes),
                    )
                )
            await session.flush()
            record = _record(row, with_segments=False)
            await session.run_sync(
                lambda sync: _forget_identities(sync.connection(), team, call_id, record.participants)
            )
            return record, erased

    async def delete_call(self, team: str, call_id: str) -> bool:
        async with self.sessions.begin() as session:
            row = await session.scalar(select(CallRow).where(CallRow.id == call_id, CallRow.team == team))
            if row is None:
                return False
            for table in (SegmentRow, ParticipantRow, ChannelRow, EventRow, ConsentChangeRow):
                await session.execute(delete(table).where(table.team == team, table.call_id == call_id))
            await session.execute(delete(CallRow).where(CallRow.team == team, CallRow.id == call_id))
            return True

    # -- team configuration ----------------------------------------------------------------------------

    async def team_config(self, team: str) -> dict[str, Any] | None:
        """The team's stored configuration as JSON, or None when it never set one."""
        async with self.sessions() as session:
            row = await session.get(TeamConfigRow, team)
            return None if row is None else dict(row.config)

    async def set_team_config(self, team: str, config: dict[str, Any], key_id: str) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(TeamConfigRow, team)
            now = datetime.now(UTC)
            if row is None:
                session.add(TeamConfigRow(team=team, config=config, updated_at=now, updated_by=key_id))
            else:
                row.config, row.updated_at, row.updated_by = config, now, key_id

    # -- the listen-in audit log -----------------------------------------------------------------------

    async def listen_started(self, team: str, call_id: str, key: ApiKey, channel: str) -> int:
        row = ListenAuditRow(
            team=team,
            call_id=call_id,
            key_id=key.id,
            key_label=key.label,
            key_role=key.role.value,
            channel=channel,
            started_at=datetime.now(UTC),
        )
        async with self.sessions.begin() as session:
            session.add(row)
            await session.flush()
            return row.id

    async def listen_ended(self, entry_id: int, reason: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(ListenAuditRow)
                .where(ListenAuditRow.id == entry_id, ListenAuditRow.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC), end_reason=reason)
            )

    # -- people: lookup, access requests, erasure -------------------------------------------------------

    async def calls_of(self, team: str, person: Person) -> list[tuple[str, str]]:
        """(call id, role) of every call of ``team`` where ``person`` is a participant."""
        async with self.sessions() as session:
            return await session.run_sync(lambda sync: _calls_of(sync.connection(), team, person))

    async def person_export(self, team: str, person: Person) -> list[dict[str, Any]]:
        """Everything held about a person (an access request): each call they are on, with their participant
        record, what they said (their channel's and mixed channels' segments) and the call's consent history."""
        out: list[dict[str, Any]] = []
        for call_id, role in await self.calls_of(team, person):
            record = await self.get_call(team, call_id)
            if record is None:
                continue
            mine = {c.index for c in record.channels if c.speaker in (role, "mixed")}
            out.append(
                {
                    "callId": call_id,
                    "startedAt": record.summary()["startedAt"],
                    "status": record.status,
                    "role": role,
                    "participant": next((asdict(p) for p in record.participants if p.role == role), None),
                    "said": [
                        {"channel": g.channel, "speaker": g.speaker, "text": g.text, "start": g.start, "end": g.end}
                        for g in record.segments
                        if g.channel in mine
                    ],
                    "consentHistory": [c.to_json() for c in record.consent_history if c.participant == role],
                    "legalHold": record.legal_hold,
                }
            )
        return out

    async def erase_person(self, team: str, person: Person, key_id: str = "", key_label: str = "") -> dict[str, Any]:
        """Erase a person from every ended call of ``team`` they are on (live calls are erased by the server
        holding them, through the call; calls on legal hold are left alone): their transcript (their channel's and
        any mixed channel's segments and events), their identity (also in the logged call_started/call_updated
        events), the call's free-form metadata. Keeps a receipt (without the erased value) and returns it."""
        receipt: dict[str, Any] = await self._write(_erase_person, team, person, key_id, key_label)
        if self.dialect == "sqlite":  # (what the WAL still held goes into the overwritten file)
            await self._write(lambda conn: conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)"))
        return receipt

    # -- retention -------------------------------------------------------------------------------------

    async def set_legal_hold(self, team: str, call_id: str, hold: bool) -> bool:
        """Put a call on legal hold (kept from retention's purge and erasure) or take it off; False: no such call."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(CallRow).where(CallRow.team == team, CallRow.id == call_id).values(legal_hold=hold)
            )
            return bool(getattr(result, "rowcount", 0))

    async def configured_teams(self) -> dict[str, dict[str, Any]]:
        """Every team that set a configuration, with it."""
        async with self.sessions() as session:
            rows = (await session.execute(select(TeamConfigRow.team, TeamConfigRow.config))).all()
        return {r[0]: dict(r[1]) for r in rows}

    async def purge(
        self, team: str, now: datetime, transcripts_days: int, calls_days: int, audit_days: int
    ) -> dict[str, int]:
        """Remove what the team's retention no longer keeps (days after a call ended; 0: kept): transcripts
        (segments and the call's event log), whole calls, audit records. Calls on legal hold and live calls stay.
        Returns how many of each went. On PostgreSQL, a purge that another server runs at the moment is left to
        it (an advisory lock): once per deployment."""
        counts: dict[str, int] = await self._write(_purge, team, now, transcripts_days, calls_days, audit_days)
        return counts

    async def record_access(self, entry: AccessRecord) -> None:
        """One entry of the access audit (written before what it records is answered)."""
        async with self.sessions.begin() as session:
            session.add(
                AccessAuditRow(
                    team=entry.team,
                    at=entry.at,
                    key_id=entry.key_id,
                    key_label=entry.key_label[:128],
                    key_role=entry.key_role,
                    action=entry.action,
                    call_id=entry.call_id[:128],
                    target=entry.target[:512],
                    via=entry.via,
                    remote=entry.remote[:64],
                )
            )

    async def access_log(
        self,
        team: str,
        since: datetime | None = None,
        until: datetime | None = None,
        action: str | None = None,
        key_id: str | None = None,
        call_id: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AccessRecord]:
        """The team's access audit, newest first (``before_id``: the next page)."""
        query = select(AccessAuditRow).where(AccessAuditRow.team == team)
        for column, value in (
            (AccessAuditRow.action, action),
            (AccessAuditRow.key_id, key_id),
            (AccessAuditRow.call_id, call_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(AccessAuditRow.at >= since)
        if until is not None:
            query = query.where(AccessAuditRow.at < until)
        if before_id is not None:
            query = query.where(AccessAuditRow.id < before_id)
        query = query.order_by(AccessAuditRow.id.desc()).limit(limit)
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [
            AccessRecord(
                r.team,
                r.action,
                _utc(r.at),
                r.key_id,
                r.key_label,
                r.key_role,
                r.call_id,
                r.target,
                r.via,
                r.remote,
                r.id,
            )
            for r in rows
        ]

    async def listens(self, team: str, call_id: str | None = None, limit: int = 100) -> list[ListenRecord]:
        """Newest first."""
        query = select(ListenAuditRow).where(ListenAuditRow.team == team)
        if call_id is not None:
            query = query.where(ListenAuditRow.call_id == call_id)
        query = query.order_by(ListenAuditRow.started_at.desc(), ListenAuditRow.id.desc()).limit(limit)
        async with self.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [
            ListenRecord(
                id=r.id,
                team=r.team,
                call_id=r.call_id,
                key_id=r.key_id,
                key_label=r.key_label,
                key_role=r.key_role,
                channel=r.channel,
                started_at=_utc(r.started_at),
                ended_at=None if r.ended_at is None else _utc(r.ended_at),
                end_reason=r.end_reason,
            )
            for r in rows
        ]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(column: ColumnElement[str] | InstrumentedAttribute[str], text: str) -> ColumnElement[bool]:
    return column.ilike(f"%{_like_escape(text)}%", escape="\\")


def _conditions(where: CallFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    for word in where.words():
        out.append(
            exists().where(
                SegmentRow.team == CallRow.team, SegmentRow.call_id == CallRow.id, _contains(SegmentRow.text, word)
            )
        )
    if where.rep.strip():
        rep = where.rep.strip()
        out.append(
            exists().where(
                ParticipantRow.team == CallRow.team,
                ParticipantRow.call_id == CallRow.id,
                ParticipantRow.role == "rep",
                _contains(ParticipantRow.name, rep)
                | _contains(ParticipantRow.external_id, rep)
                | _contains(ParticipantRow.email, rep),
            )
        )
    if where.keyword.strip():
        out.append(_contains(CallRow.keywords, f"|{where.keyword.strip()}|"))
    if where.since is not None:
        out.append(CallRow.started_at >= datetime.combine(where.since, time(), UTC))
    if where.until is not None:
        out.append(CallRow.started_at < datetime.combine(where.until + timedelta(days=1), time(), UTC))
    return out


def _snippet(text: str, word: str, width: int = 60) -> str:
    at = text.lower().find(word.lower())
    if at < 0:
        return text[: 2 * width]
    start, end = max(0, at - width), min(len(text), at + len(word) + width)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":  # held until the migration's transaction ends
        connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
    _count_uncounted(connection)  # (under the same lock: once)


def _sqlite_pragmas(pragmas: list[str]) -> Any:
    def on_connect(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    return on_connect


def _event_row(e: pb.Event) -> dict[str, Any]:
    channel = getattr(e, e.type).channel if e.type in CHANNEL_EVENTS else None
    return {
        "id": e.id,
        "team": e.team,
        "call_id": e.call_id,
        "type": e.type,
        "channel": channel,
        "payload": e.SerializeToString(),
    }


def _keywords(keywords: list[str]) -> str:
    return "".join(f"|{k.replace('|', ' ')}" for k in keywords) + "|" if keywords else ""


def _call_in(team: ColumnElement[str], call_id: ColumnElement[str], calls: set[CallKey]) -> ColumnElement[bool]:
    return or_(*(and_(team == t, call_id == c) for t, c in sorted(calls)))


def _participant_rows(team: str, call_id: str, participants: list[ParticipantRecord]) -> list[dict[str, Any]]:
    return [
        {
            "team": team,
            "call_id": call_id,
            "role": p.role,
            "consent": p.consent,
            "transcribed": p.transcribed,
            "external_id": p.id,
            "name": p.name,
            "phone": p.phone,
            "email": p.email,
        }
        for p in participants
    ]


def _channel_rows(team: str, call_id: str, channels: list[ChannelRecord]) -> list[dict[str, Any]]:
    return [
        {
            "team": team,
            "call_id": call_id,
            "index": c.index,
            "speaker": c.speaker,
            "sample_rate": c.sample_rate,
            "transcribed": c.transcribed,
        }
        for c in channels
    ]


def _segment_rows(team: str, call_id: str, segments: list[SegmentRecord]) -> list[dict[str, Any]]:
    return [
        {
            "team": team,
            "call_id": call_id,
            "channel": s.channel,
            "speaker": s.speaker,
            "text": s.text,
            "start": s.start,
            "end": s.end,
            "confidence": s.confidence,
            "words": s.words,
        }
        for s in segments
    ]


def _speakers(speakers: list[SpeakerRecord]) -> list[dict[str, Any]]:
    return [{"speaker": s.speaker, "talk_time": s.talk_time, "word_count": s.word_count} for s in speakers]


def _commit_rows(conn: Connection, entries: list[Logged]) -> None:
    events = [_event_row(e.event) for e in entries if e.durable]
    if events:
        conn.execute(insert(_EVENTS), events)
    # The segments of consecutive finals (of any calls) go in one statement: a round trip each would cost
    # PostgreSQL more than the commit. Any other write comes after the segments before it.
    segments: list[dict[str, Any]] = []
    for entry in entries:
        for write in entry.writes:
            if isinstance(write, SegmentsKept):
                segments += _segment_rows(write.team, write.call_id, write.segments)
                continue
            if segments:
                conn.execute(insert(_SEGMENTS), segments)
                segments = []
            _apply(conn, write)
    if segments:
        conn.execute(insert(_SEGMENTS), segments)


def _claim_ids(conn: Connection, count: int) -> int:
    claim = (
        update(_COUNTERS)
        .where(_COUNTERS.c.name == "event_id")
        .values(value=_COUNTERS.c.value + count)
        .returning(_COUNTERS.c.value)
    )
    claimed = conn.execute(claim).scalar()
    if claimed is None:  # the first claim of this database: the counter starts after any id stored already
        start = max(0, conn.execute(select(func.max(_EVENTS.c.id))).scalar() or 0)
        new = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(_COUNTERS)
        conn.execute(new.values(name="event_id", value=start).on_conflict_do_nothing(index_elements=["name"]))
        claimed = conn.execute(claim).scalar_one()
    return int(claimed) - count + 1


def _renew_lease(conn: Connection, node: str, url: str, until: datetime) -> bool:
    renewed = conn.execute(update(_NODES).where(_NODES.c.id == node).values(url=url, lease_until=until)).rowcount
    if renewed:
        return True
    conn.execute(insert(_NODES).values(id=node, url=url, lease_until=until))
    return False


def _take_over(conn: Connection, node: str, now: datetime) -> list[str]:
    expired = conn.execute(select(_NODES.c.id).where(_NODES.c.lease_until < now, _NODES.c.id != node)).scalars().all()
    taken = []
    for other in expired:  # (the condition again: another server may have taken it, or it renewed meanwhile)
        gone = conn.execute(delete(_NODES).where(_NODES.c.id == other, _NODES.c.lease_until < now)).rowcount
        if gone:
            conn.execute(update(_CALLS).where(_CALLS.c.status == "live", _CALLS.c.node == other).values(node=node))
            taken.append(str(other))
    return taken


def _calls_of(conn: Connection, team: str, person: Person) -> list[tuple[str, str]]:
    p = _PARTICIPANTS.c
    query = select(p.call_id, p.role, p.external_id, p.name, p.phone, p.email).where(p.team == team)
    if person.kind == "phone":
        last4 = person.value[-4:]  # (a quick narrowing, spaces and dashes aside; the match compares E.164 forms)
        query = query.where(p.phone != "", func.replace(func.replace(p.phone, "-", ""), " ", "").like(f"%{last4}%"))
    elif person.kind == "email":
        query = query.where(func.lower(p.email) == person.value)
    elif person.kind == "customer_id":
        query = query.where(p.role == "customer", p.external_id == person.value)
    else:
        query = query.where(p.role == "rep")
    return [
        (r.call_id, r.role)
        for r in conn.execute(query).all()
        if person.matches(r.role, r.external_id, r.name, r.phone, r.email)
    ]


def _erase_person(conn: Connection, team: str, person: Person, key_id: str, key_label: str) -> dict[str, Any]:
    touched: list[str] = []
    held: list[str] = []
    rep_keys: set[str] = set()  # an erased rep's names in the daily aggregates
    segments = 0
    for call_id, role in _calls_of(conn, team, person):
        call = conn.execute(
            select(_CALLS.c.legal_hold, _CALLS.c.status, _CALLS.c.counted).where(*_the_call(team, call_id))
        ).first()
        if call is None or call.status == "live":
            continue  # (a live call is erased by the server holding it, through the call)
        if call.legal_hold:
            held.append(call_id)
            continue
        if role == "rep" and call.counted:
            rep_keys.add(call.counted.partition("|")[2])
        channels = [
            r.index
            for r in conn.execute(
                select(_CHANNELS.c.index).where(
                    _CHANNELS.c.team == team, _CHANNELS.c.call_id == call_id, _CHANNELS.c.speaker.in_((role, "mixed"))
                )
            ).all()
        ]
        if channels:
            gone = conn.execute(
                delete(_SEGMENTS).where(
                    _SEGMENTS.c.team == team, _SEGMENTS.c.call_id == call_id, _SEGMENTS.c.channel.in_(channels)
                )
            )
            segments += int(gone.rowcount or 0)
            conn.execute(
                delete(_EVENTS).where(
                    _EVENTS.c.team == team,
                    _EVENTS.c.call_id == call_id,
                    _EVENTS.c.type.in_(CHANNEL_EVENTS),
                    _EVENTS.c.channel.in_(channels),
                )
            )
            conn.execute(
                update(_CHANNELS)
                .where(_CHANNELS.c.team == team, _CHANNELS.c.call_id == call_id, _CHANNELS.c.index.in_(channels))
                .values(transcribed=False)
            )
        conn.execute(
            update(_PARTICIPANTS)
            .where(_PARTICIPANTS.c.team == team, _PARTICIPANTS.c.call_id == call_id, _PARTICIPANTS.c.role == role)
            .values(consent="denied", transcribed=False, external_id="", name="", phone="", email="")
        )
        conn.execute(update(_CALLS).where(*_the_call(team, call_id)).values(metadata={}))
        _forget_identities(conn, team, call_id, [ParticipantRecord(role, "denied", False)])
        touched.append(call_id)
    for rep in sorted(rep_keys):
        _pseudonymise_rep(conn, team, rep)
    at = datetime.now(UTC)
    conn.execute(
        insert(cast(Table, ErasureRow.__table__)).values(
            team=team,
            at=at,
            key_id=key_id,
            key_label=key_label[:128],
            kind=person.kind,
            calls=touched,
            segments=segments,
            held=held,
        )
    )
    return {
        "kind": person.kind,
        "calls": touched,
        "segmentsRemoved": segments,
        "heldCalls": held,
        "at": at.isoformat().replace("+00:00", "Z"),
    }


def _pseudonymise_rep(conn: Connection, team: str, rep: str) -> None:
    """An erased rep's daily figures stay (they are the team's) under a name that says nothing of who it was."""
    alias = "erased rep " + hashlib.sha256(f"{team}\x00{rep}".encode()).hexdigest()[:8]
    rows = conn.execute(
        select(_AGGREGATES.c.day, _AGGREGATES.c.figures).where(_AGGREGATES.c.team == team, _AGGREGATES.c.rep == rep)
    ).all()
    for day, figures in rows:
        conn.execute(
            delete(_AGGREGATES).where(_AGGREGATES.c.team == team, _AGGREGATES.c.day == day, _AGGREGATES.c.rep == rep)
        )
        _add_figures(conn, team, day, alias, DayFigures.from_json(figures))
        conn.execute(
            update(_CALLS)
            .where(_CALLS.c.team == team, _CALLS.c.counted == f"{day}|{rep}")
            .values(counted=f"{day}|{alias}")
        )


_PURGE_LOCK = 0x70757267  # PostgreSQL: one server purges at a time


def _purge(
    conn: Connection, team: str, now: datetime, transcripts_days: int, calls_days: int, audit_days: int
) -> dict[str, int]:
    counts = {"calls": 0, "segments": 0, "events": 0, "auditRecords": 0}
    if conn.dialect.name == "postgresql":
        if not conn.execute(select(func.pg_try_advisory_xact_lock(_PURGE_LOCK))).scalar():
            return counts  # (another server purges now)

    def expired(days: int) -> list[str]:
        query = select(_CALLS.c.id).where(
            _CALLS.c.team == team,
            _CALLS.c.status != "live",
            _CALLS.c.ended_at < now - timedelta(days=days),
            _CALLS.c.legal_hold.is_(False),
        )
        return [str(r) for r in conn.execute(query).scalars()]

    if calls_days:
        gone = expired(calls_days)
        for start in range(0, len(gone), 500):
            ids = gone[start : start + 500]
            for table in (_SEGMENTS, _PARTICIPANTS, _CHANNELS, _EVENTS, _CONSENT_CHANGES):
                conn.execute(delete(table).where(table.c.team == team, table.c.call_id.in_(ids)))
            conn.execute(delete(_CALLS).where(_CALLS.c.team == team, _CALLS.c.id.in_(ids)))
        counts["calls"] = len(gone)
    if transcripts_days:
        stale = expired(transcripts_days)
        for start in range(0, len(stale), 500):
            ids = stale[start : start + 500]
            segments = conn.execute(delete(_SEGMENTS).where(_SEGMENTS.c.team == team, _SEGMENTS.c.call_id.in_(ids)))
            events = conn.execute(delete(_EVENTS).where(_EVENTS.c.team == team, _EVENTS.c.call_id.in_(ids)))
            counts["segments"] += int(segments.rowcount or 0)
            counts["events"] += int(events.rowcount or 0)
    if audit_days:
        cut = now - timedelta(days=audit_days)
        audit = cast(Table, AccessAuditRow.__table__)
        listens = cast(Table, ListenAuditRow.__table__)
        a = conn.execute(delete(audit).where(audit.c.team == team, audit.c.at < cut)).rowcount
        b = conn.execute(
            delete(listens).where(listens.c.team == team, listens.c.started_at < cut, listens.c.ended_at.is_not(None))
        ).rowcount
        counts["auditRecords"] = int(a or 0) + int(b or 0)
    return counts


def _count_call(conn: Connection, record: CallRecord, time_zone: str) -> None:
    """Add an ended call's figures to its team's daily aggregate, once."""
    counted = conn.execute(select(_CALLS.c.counted).where(*_the_call(record.team, record.id))).scalar()
    if counted:
        return
    day, rep = day_of(record.started_at, time_zone), rep_of(record)[:256]
    _add_figures(conn, record.team, day, rep, DayFigures.of_call(record))
    conn.execute(update(_CALLS).where(*_the_call(record.team, record.id)).values(counted=f"{day}|{rep}"))


def _add_figures(conn: Connection, team: str, day: str, rep: str, figures: DayFigures, sign: int = 1) -> None:
    key = (_AGGREGATES.c.team == team, _AGGREGATES.c.day == day, _AGGREGATES.c.rep == rep)
    new = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(_AGGREGATES)
    conn.execute(
        new.values(team=team, day=day, rep=rep, figures=DayFigures().to_json()).on_conflict_do_nothing(
            index_elements=["team", "day", "rep"]
        )
    )
    query = select(_AGGREGATES.c.figures).where(*key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()  # (two servers adding to one day)
    total = DayFigures.from_json(conn.execute(query).scalar_one())
    total.add(figures, sign)
    conn.execute(update(_AGGREGATES).where(*key).values(figures=total.to_json()))


def _count_uncounted(conn: Connection) -> int:
    """Calls that ended without being counted (stored before the aggregates existed, closed by a failing store):
    counted now, each team's by its time zone."""
    zones: dict[str, str] = {}
    for team, config in conn.execute(select(_TEAM_CONFIGS.c.team, _TEAM_CONFIGS.c.config)).all():
        zones[team] = str((config or {}).get("time_zone") or "UTC")
    rows = conn.execute(select(_CALLS).where(_CALLS.c.counted == "", _CALLS.c.status != "live")).mappings().all()
    for row in rows:
        rep_row = (
            conn.execute(
                select(_PARTICIPANTS).where(
                    _PARTICIPANTS.c.team == row["team"],
                    _PARTICIPANTS.c.call_id == row["id"],
                    _PARTICIPANTS.c.role == "rep",
                )
            )
            .mappings()
            .first()
        )
        participants = []
        if rep_row is not None:
            participants = [
                ParticipantRecord(
                    "rep",
                    rep_row["consent"],
                    rep_row["transcribed"],
                    rep_row["external_id"],
                    rep_row["name"],
                    rep_row["phone"],
                    rep_row["email"],
                )
            ]
        record = CallRecord(
            id=row["id"],
            team=row["team"],
            source=row["source"],
            status=row["status"],
            end_reason=row["end_reason"],
            started_at=_utc(row["started_at"]),
            ended_at=_utc(row["ended_at"] or row["started_at"]),
            participants=participants,
            metrics=dict(row["metrics"] or {}),
            disposition=row["disposition"] or "",
        )
        _count_call(conn, record, zones.get(record.team, "UTC"))
    return len(rows)


def _add_consent_changes(conn: Connection, team: str, call_id: str, changes: list[ConsentChangeRecord]) -> None:
    if changes:
        conn.execute(
            insert(_CONSENT_CHANGES),
            [
                {
                    "team": team,
                    "call_id": call_id,
                    "participant": c.participant,
                    "previous": c.previous,
                    "consent": c.consent,
                    "by_key": c.by_key,
                    "by_label": c.by_label[:128],
                    "by_role": c.by_role,
                    "source": c.source,
                    "at": c.at,
                }
                for c in changes
            ],
        )


def _replace_people(
    conn: Connection, team: str, call_id: str, participants: list[ParticipantRecord], channels: list[ChannelRecord]
) -> None:
    of_call = (_PARTICIPANTS.c.team == team, _PARTICIPANTS.c.call_id == call_id)
    conn.execute(delete(_PARTICIPANTS).where(*of_call))
    conn.execute(delete(_CHANNELS).where(_CHANNELS.c.team == team, _CHANNELS.c.call_id == call_id))
    if participants:
        conn.execute(insert(_PARTICIPANTS), _participant_rows(team, call_id, participants))
    if channels:
        conn.execute(insert(_CHANNELS), _channel_rows(team, call_id, channels))


def _forget_identities(conn: Connection, team: str, call_id: str, participants: list[ParticipantRecord]) -> None:
    """Participants whose identity is no longer kept (they denied consent) lose it in the call's logged
    ``call_started`` and ``call_updated`` events too, so that no replay hands it out again."""
    forgotten = {p.role: p for p in participants if not (p.id or p.name or p.phone or p.email)}
    if not forgotten:
        return
    rows = conn.execute(
        select(_EVENTS.c.id, _EVENTS.c.payload).where(
            _EVENTS.c.team == team, _EVENTS.c.call_id == call_id, _EVENTS.c.type.in_(("call_started", "call_updated"))
        )
    )
    for event_id, payload in rows.all():
        logged = pb.Event()
        logged.ParseFromString(payload)
        body = logged.call_started if logged.type == "call_started" else logged.call_updated
        changed = False
        for p in body.participants:
            if p.role in forgotten and (p.id or p.name or p.phone or p.email):
                p.id = p.name = p.phone = p.email = ""
                changed = True
        if changed:
            conn.execute(update(_EVENTS).where(_EVENTS.c.id == event_id).values(payload=logged.SerializeToString()))


def _apply_all(conn: Connection, writes: tuple[Write, ...]) -> None:
    for write in writes:
        _apply(conn, write)


def _the_call(team: str, call_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return _CALLS.c.team == team, _CALLS.c.id == call_id


def _apply(conn: Connection, write: Write) -> None:
    """One write of the journal, inside its batch's transaction."""
    if isinstance(write, CallOpened):
        r = write.record
        conn.execute(
            insert(_CALLS).values(
                id=r.id,
                team=r.team,
                source=r.source,
                status="live",
                end_reason="",
                started_at=r.started_at,
                ended_at=None,
                node=write.node,
                metadata=dict(r.metadata),
                speakers=[],
                metrics=None,
                disposition="",
                keywords="",
            )
        )
        _replace_people(conn, r.team, r.id, r.participants, r.channels)
        started = [
            ConsentChangeRecord(p.role, "", p.consent, "call_start", r.started_at, by_label=r.source, by_role="ingest")
            for p in r.participants
        ]
        _add_consent_changes(conn, r.team, r.id, started)
    elif isinstance(write, SegmentsKept):
        if write.segments:
            conn.execute(insert(_SEGMENTS), _segment_rows(write.team, write.call_id, write.segments))
    elif isinstance(write, CallChanged):
        team, call_id = write.team, write.call_id
        conn.execute(update(_CALLS).where(*_the_call(team, call_id)).values(metadata=dict(write.metadata)))
        _replace_people(conn, team, call_id, write.participants, write.channels)
        _forget_identities(conn, team, call_id, write.participants)
        _add_consent_changes(conn, team, call_id, write.consent_changes)
        if write.erased:
            conn.execute(
                delete(_SEGMENTS).where(
                    _SEGMENTS.c.team == team, _SEGMENTS.c.call_id == call_id, _SEGMENTS.c.channel.in_(write.erased)
                )
            )
            conn.execute(
                delete(_EVENTS).where(
                    _EVENTS.c.team == team,
                    _EVENTS.c.call_id == call_id,
                    _EVENTS.c.type.in_(CHANNEL_EVENTS),
                    _EVENTS.c.channel.in_(write.erased),
                )
            )
    elif isinstance(write, CallProgress):
        conn.execute(
            update(_CALLS)
            .where(*_the_call(write.team, write.call_id))
            .values(speakers=_speakers(write.speakers), metrics=write.metrics, keywords=_keywords(write.keywords))
        )
    elif isinstance(write, CallClosed):
        r = write.record
        conn.execute(
            update(_CALLS)
            .where(*_the_call(r.team, r.id))
            .values(
                status=r.status,
                end_reason=r.end_reason,
                ended_at=r.ended_at,
                metadata=dict(r.metadata),
                speakers=_speakers(r.speakers),
                metrics=dict(r.metrics) or None,
                disposition=r.disposition,
                keywords=_keywords(r.keywords),
            )
        )
        _replace_people(conn, r.team, r.id, r.participants, r.channels)
        _count_call(conn, r, write.time_zone)
        enqueue_webhooks(conn, "call_ended", r.team, r.id, datetime.now(UTC))  # (the outbox: with the end)
        for channel, segments in write.relabelled.items():
            conn.execute(
                delete(_SEGMENTS).where(
                    _SEGMENTS.c.team == r.team, _SEGMENTS.c.call_id == r.id, _SEGMENTS.c.channel == channel
                )
            )
            if segments:
                conn.execute(insert(_SEGMENTS), _segment_rows(r.team, r.id, segments))


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        team=row.team,
        role=Role(row.role),
        created_at=_utc(row.created_at),
        label=row.label,
        expires_at=_utc(row.expires_at) if row.expires_at is not None else None,
        revoked_at=_utc(row.revoked_at) if row.revoked_at is not None else None,
        last_used_at=_utc(row.last_used_at) if row.last_used_at is not None else None,
        rotated_from=row.rotated_from or "",
    )


def _new_key_row(
    team: str, role: Role, label: str, expires_at: datetime | None, rotated_from: str = ""
) -> tuple[ApiKeyRow, str]:
    """A new key's row and its secret (the row holds only the secret's hash)."""
    secret = generate_key()
    row = ApiKeyRow(
        id=secrets.token_hex(8),
        key_hash=hash_key(secret),
        team=team,
        role=role.value,
        label=label[:128],
        created_at=datetime.now(UTC),
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    return row, secret


async def _key_row(session: AsyncSession, key_id: str, team: str | None) -> ApiKeyRow | None:
    row = await session.get(ApiKeyRow, key_id)
    return row if row is not None and (team is None or row.team == team) else None


def _key_audit(by: Actor | None, team: str, action: str, target: str) -> AccessAuditRow:
    """A key operation in the access audit, by a key over the API or (None) on the command line."""
    actor = by or Actor()
    return AccessAuditRow(
        team=team,
        at=datetime.now(UTC),
        key_id=actor.key_id,
        key_label=actor.key_label[:128],
        key_role=actor.key_role,
        action=action,
        target=target[:512],
        via=actor.via,
        remote=actor.remote[:64],
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: CallRow, with_segments: bool) -> CallRecord:
    return CallRecord(
        id=row.id,
        team=row.team,
        source=row.source,
        status=row.status,
        end_reason=row.end_reason,
        started_at=_utc(row.started_at),
        ended_at=None if row.ended_at is None else _utc(row.ended_at),
        metadata=dict(row.metadata_json or {}),
        participants=[
            ParticipantRecord(
                role=p.role,
                consent=p.consent,
                transcribed=p.transcribed,
                id=p.external_id,
                name=p.name,
                phone=p.phone,
                email=p.email,
            )
            for p in sorted(row.participants, key=lambda p: p.role != "rep")
        ],
        channels=[ChannelRecord(c.index, c.speaker, c.sample_rate, c.transcribed) for c in row.channels],
        segments=[
            SegmentRecord(s.channel, s.speaker, s.text, s.start, s.end, s.confidence, list(s.words or []))
            for s in row.segments
        ]
        if with_segments
        else [],
        speakers=[SpeakerRecord(s["speaker"], s["talk_time"], s["word_count"]) for s in row.speakers or []],
        keywords=[k for k in (row.keywords or "").split("|") if k],
        legal_hold=bool(row.legal_hold),
        metrics=dict(row.metrics or {}),
        disposition=row.disposition or "",
    )


def _encode_cursor(started: datetime, call_id: str) -> str:
    raw = f"{_utc(started).isoformat()}|{call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, call_id = raw.split("|", 1)
        return datetime.fromisoformat(started), call_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc


__all__ = ["Actor", "CallExists", "CallFilter", "CallKey", "Engine", "Logged", "Store"]
