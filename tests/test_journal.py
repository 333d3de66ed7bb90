"""The journal's durability, on real SQLite files: ids are never reused across restarts, an event a subscriber got
is on disk, resume across a restart, a store that fills (loud, nothing published past it, all of it committed once
space is back), events given up after ``retry_for_s``, one entry the database refuses dropped alone."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing, suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_server.bus import InMemoryEventBus, Subscription
from media_server.events import new_event
from media_server.store.journal import Journal, StorageFailed
from media_server.store.records import CallRecord, SegmentRecord
from media_server.store.store import Store
from media_server.store.writes import CallOpened, SegmentsKept
from media_server.v1 import events_pb2 as pb

BIG = 20_000  # bytes of text: an event that needs about five pages of its own


def _url(db: Path) -> str:
    return f"sqlite+aiosqlite:///{db}"


@asynccontextmanager
async def _running(db: Path, max_size_mb: float = 0.0, **options: object) -> AsyncIterator[Journal]:
    """A started journal over the SQLite file ``db``; closed (journal, bus, store) on the way out."""
    store = Store(_url(db), max_size_mb=max_size_mb)
    await store.open()
    bus = InMemoryEventBus()
    journal = Journal(store, bus, **options)  # type: ignore[arg-type]
    await journal.start()
    try:
        yield journal
    finally:
        await journal.close(within_s=2.0)
        await bus.close()
        await store.close()


@asynccontextmanager
async def _reader(db: Path) -> AsyncIterator[Store]:
    """A second store on the same file, as another process would read it."""
    store = Store(_url(db))
    try:
        yield store
    finally:
        await store.close()


def _final(call_id: str, text: str = "hello", team: str = "acme") -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=True))


def _interim(call_id: str, text: str = "hel", team: str = "acme") -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=False))


def _opened(call_id: str, team: str = "acme") -> tuple[pb.Event, CallOpened]:
    record = CallRecord(
        id=call_id,
        team=team,
        source="twilio",
        status="live",
        end_reason="",
        started_at=datetime.now(UTC),
        ended_at=None,
    )
    return new_event(call_id, team, call_started=pb.CallStarted(source="twilio")), CallOpened(record, node="")


async def _take(it: AsyncIterator[pb.Event], n: int, timeout: float = 2.0) -> list[pb.Event]:
    return [await asyncio.wait_for(anext(it), timeout) for _ in range(n)]


async def _nothing_more(it: AsyncIterator[pb.Event]) -> bool:
    """True when no further event arrives shortly (this ends the iterator)."""
    try:
        await asyncio.wait_for(anext(it), 0.05)
    except (TimeoutError, StopAsyncIteration):
        return True
    return False


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _collect(sub: Subscription, into: list[pb.Event]) -> asyncio.Task[None]:
    async def run() -> None:
        async for event in sub:
            into.append(event)

    return asyncio.create_task(run())


def _ids(events: list[pb.Event]) -> list[int]:
    return [e.id for e in events]


def _stored_ids(db: Path) -> list[int]:
    with closing(sqlite3.connect(db)) as conn:
        return [int(row[0]) for row in conn.execute("SELECT id FROM events ORDER BY id")]


def _page_count(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


def _free_space(db: Path) -> None:
    """Another process deletes a call's events (call ``old``): their pages can be used again."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM events WHERE call_id = 'old'")
        conn.commit()


async def _nearly_full(db: Path, room_pages: int = 3) -> float:
    """Store ten big events of call ``old``; the ``max_size_mb`` that leaves ``room_pages`` pages beyond them."""
    async with _running(db) as journal:
        old = [journal.append(_final("old", "x" * BIG)) for _ in range(10)]
        await journal.committed(old[-1])
    pages = _page_count(db) + room_pages
    return (pages + 0.5) * 4096 / 1024 / 1024  # (+ half a page: the store rounds down)


# -- ids ---------------------------------------------------------------------------------------------


async def test_ids_are_never_reused_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    handed_out: list[int] = []
    async with _running(db) as journal:
        finals = [journal.append(_final("c1", f"t{i}")) for i in range(5)]
        await journal.committed(finals[-1])
        handed_out += _ids(finals)
        for _ in range(5):  # interims only, in several batches, past the first block of reserved ids
            interims = [journal.append(_interim("c1")) for _ in range(300)]
            await journal.committed(interims[-1])
            handed_out += _ids(interims)
    assert max(_stored_ids(db)) == finals[-1].id < max(handed_out)  # the interims were not stored

    for _ in range(2):  # also a restart that handed out nothing
        async with _running(db) as journal:
            assert journal.last_id >= max(handed_out)
            event = journal.append(_interim("c1"))
            assert event.id > max(handed_out)
            await journal.committed(event)
            handed_out.append(event.id)
    async with _running(db) as journal:
        event = journal.append(_final("c1", "after the restarts"))
        assert event.id > max(handed_out)
        await journal.committed(event)
    assert len(handed_out) == len(set(handed_out))


async def test_an_event_a_subscriber_received_is_already_in_the_database(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    async with _running(db) as journal:
        it = aiter(journal.subscribe("acme", "c1"))
        sent = [journal.append(_final("c1", f"t{i}") if i % 2 else _interim("c1", f"t{i}")) for i in range(10)]
        received = []
        for _ in sent:
            event = (await _take(it, 1))[0]
            stored = _stored_ids(db)  # read from another connection the moment it arrives, nothing in between
            if event.transcript.is_final:
                assert event.id in stored
            else:
                assert event.id not in stored  # interims are never stored
            received.append(event)
        assert _ids(received) == _ids(sent)
        finals = [e for e in received if e.transcript.is_final]
        async with _reader(db) as reader:
            logged, left_out = await reader.events_after("acme", "c1", 0, journal.last_id, 100)
        assert (logged, left_out) == (finals, 0)  # what was sent, exactly as it was sent


@pytest.mark.parametrize("call_id", ["c1", None], ids=["one_call", "team"])
async def test_resume_across_a_restart(tmp_path: Path, call_id: str | None) -> None:
    db = tmp_path / "db.sqlite"
    async with _running(db) as journal:
        it = aiter(journal.subscribe("acme", call_id))
        events = [journal.append(_final("c1", f"t{i}") if i % 3 else _interim("c1")) for i in range(9)]
        events.append(journal.append(_final("c1", "other team", team="globex")))
        seen = await _take(it, 4)  # the subscriber saw four, then the server went away
    finals = [e for e in events[4:] if e.transcript.is_final and e.team == "acme"]

    async with _running(db) as journal:
        it = aiter(journal.subscribe("acme", call_id, after=seen[-1].id))
        live = [journal.append(_final("c1", "live")), journal.append(_interim("c1", "li"))]
        await journal.committed(live[-1])
        got = await _take(it, len(finals) + 2)
        assert got[: len(finals)] == finals  # the rest of the stored ones, once, as they were sent
        assert _ids(got[len(finals) :]) == _ids(live)  # then live ones (interims too)
        assert await _nothing_more(it)


# -- a failing store ---------------------------------------------------------------------------------


async def test_a_store_that_fills_is_loud_publishes_nothing_past_it_and_catches_up_once_space_is_back(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    max_size_mb = await _nearly_full(db)
    failures: list[tuple[set[tuple[str, str]], str]] = []
    async with _running(
        db, max_size_mb=max_size_mb, on_failure=lambda calls, why: failures.append((calls, why))
    ) as journal:
        seen: list[pb.Event] = []
        collector = _collect(journal.subscribe("acme"), seen)
        before = [journal.append(_final("c1", f"small {i}")) for i in range(3)]
        await journal.committed(before[-1])
        assert journal.healthy and not failures

        big = [journal.append(_final("c2", f"{i}" + "x" * BIG)) for i in range(3)]
        await _wait_for(lambda: not journal.healthy, 2.0, "the store to fail")
        assert "full" in journal.failure
        assert len(failures) == 1
        assert failures[0][0] == {("acme", "c2")} and "full" in failures[0][1]
        during = journal.append(_final("c3", "while it fails"))  # a call that appends while the store fails
        assert failures[1:] == [({("acme", "c3")}, journal.failure)]

        await asyncio.sleep(0.3)  # a retry or so: still full
        assert not journal.healthy
        assert journal.last_id == before[-1].id
        assert _ids(seen) == _ids(before)  # nothing after the failure was published
        assert max(_stored_ids(db)) == before[-1].id

        await asyncio.to_thread(_free_space, db)  # (off the loop: the journal holds its transaction there)
        await asyncio.wait_for(journal.committed(during), 3.0)
        assert journal.healthy and journal.failure == ""
        await _wait_for(lambda: len(seen) == 7, 1.0, "the waiting events")
        assert seen == [*before, *big, during]  # in order, each once, as they were appended
        assert len(failures) == 2  # told once per call

        async with _reader(db) as reader:
            stored, _ = await reader.events_after("acme", None, 0, journal.last_id, 100)
        assert stored == [*before, *big, during]  # those stored before the failure are intact; the rest followed
        collector.cancel()


async def test_events_waiting_longer_than_retry_for_s_are_given_up(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    max_size_mb = await _nearly_full(db)
    failures: list[tuple[set[tuple[str, str]], str]] = []
    async with _running(
        db, max_size_mb=max_size_mb, retry_for_s=0.2, on_failure=lambda calls, why: failures.append((calls, why))
    ) as journal:
        seen: list[pb.Event] = []
        collector = _collect(journal.subscribe("acme"), seen)
        opened = journal.append(*_opened("c2"))
        await journal.committed(opened)

        big = [journal.append(_final("c2", f"{i}" + "x" * BIG)) for i in range(3)]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(journal.committed(e) for e in big), return_exceptions=True), 3.0
        )
        assert all(isinstance(o, StorageFailed) for o in outcomes), outcomes
        assert failures and failures[0][0] == {("acme", "c2")}
        assert journal.last_id == opened.id
        assert seen == [opened]  # never published
        assert max(_stored_ids(db)) == opened.id  # nor stored

        await asyncio.to_thread(_free_space, db)  # (off the loop: the journal holds its transaction there)
        await _wait_for(lambda: journal.healthy, 3.0, "the store to work again")
        async with _reader(db) as reader:
            call = await reader.get_call("acme", "c2")
        assert call is not None
        assert (call.status, call.end_reason) == ("interrupted", "storage_failed")

        after = journal.append(_final("c3", "later"))
        await journal.committed(after)
        assert after.id > big[-1].id
        await _wait_for(lambda: len(seen) == 2, 1.0, "the later event")
        assert seen == [opened, after]  # the given-up events never come
        assert _stored_ids(db)[-2:] == [opened.id, after.id]
        collector.cancel()


async def test_committed_of_an_event_given_up_earlier_raises(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    max_size_mb = await _nearly_full(db)
    async with _running(db, max_size_mb=max_size_mb, retry_for_s=0.2) as journal:
        big = [journal.append(_final("c2", f"{i}" + "x" * BIG)) for i in range(2)]
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.committed(big[0]), 3.0)
        # Asked only now, after it was given up:
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.committed(big[1]), 0.5)


async def test_committed_of_a_given_up_event_raises_also_after_later_events(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    max_size_mb = await _nearly_full(db)
    async with _running(db, max_size_mb=max_size_mb, retry_for_s=0.2) as journal:
        lost = journal.append(_final("c2", "x" * BIG))
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.committed(lost), 3.0)
        await asyncio.to_thread(_free_space, db)  # (off the loop: the journal holds its transaction there)
        await _wait_for(lambda: journal.healthy, 3.0, "the store to work again")
        later = journal.append(_final("c3", "later"))
        await journal.committed(later)
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.committed(lost), 1.0)


async def test_an_idle_journal_recovers_even_with_a_probe_row_left_over(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    max_size_mb = await _nearly_full(db)
    with closing(sqlite3.connect(db)) as conn:  # what a process killed between the probe's two transactions leaves
        conn.execute("INSERT INTO events (id, team, call_id, type, payload) VALUES (-1, '', '', 'probe', x'00')")
        conn.commit()
    async with _running(db, max_size_mb=max_size_mb, retry_for_s=0.2) as journal:
        lost = journal.append(_final("c2", "x" * BIG))
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.committed(lost), 3.0)
        await asyncio.to_thread(_free_space, db)  # (off the loop: the journal holds its transaction there)
        with suppress(AssertionError):
            await _wait_for(lambda: journal.healthy, 1.0, "the store to work again")
        assert journal.healthy, journal.failure


async def test_an_entry_the_database_refuses_is_dropped_alone(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    failures: list[tuple[set[tuple[str, str]], str]] = []
    async with _running(db, on_failure=lambda calls, why: failures.append((calls, why))) as journal:
        it = aiter(journal.subscribe("acme"))
        opened = journal.append(*_opened("c1"))
        first = journal.append(_final("c1", "first"))
        # A transcript whose call has no row (a segment must belong to a stored call): refused.
        orphan = journal.append(
            _final("c9", "no call"), SegmentsKept("acme", "c9", [SegmentRecord(1, "customer", "x", 0.0, 1.0, 0.9)])
        )
        again = journal.append(*_opened("c1"))  # the team has a call of this id already: refused, as taken
        other = journal.append(_final("c2", "other call"))
        interim = journal.append(_interim("c1", "la"))
        last = journal.append(_final("c1", "last"))
        batch = [opened, first, orphan, again, other, interim, last]  # appended at once: one batch
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(journal.committed(e) for e in batch), return_exceptions=True), 3.0
        )
        assert [type(o).__name__ for o in outcomes] == ["NoneType", "NoneType", "StorageFailed", "CallIdTaken"] + [
            "NoneType"
        ] * 3
        kept = [opened, first, other, interim, last]
        assert await _take(it, 5) == kept
        assert _stored_ids(db) == _ids([opened, first, other, last])
        assert failures == [({("acme", "c9")}, "the database refused its rows")]  # (a taken id is open()'s to tell)
        assert journal.healthy

        later = journal.append(_final("c2", "later"))  # the next batch goes on as usual
        await journal.committed(later)
        assert await _take(it, 1) == [later]
        assert await _nothing_more(it)
