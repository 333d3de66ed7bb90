"""The call history's search and filters (``Store.list_calls`` with a ``CallFilter``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from media_server.store.records import CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord
from media_server.store.store import MIGRATIONS, CallFilter, Store


def call(call_id: str, day: int, rep: str, lines: list[str], keywords: list[str] | None = None) -> CallRecord:
    started = datetime(2026, 11, day, 15, 0, tzinfo=UTC)
    return CallRecord(
        id=call_id,
        team="acme",
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=started,
        ended_at=started + timedelta(minutes=5),
        participants=[
            ParticipantRecord("rep", "granted", True, name=rep, email=f"{rep.lower()}@acme.test"),
            ParticipantRecord("customer", "granted", True, name="Lee"),
        ],
        segments=[SegmentRecord(0, "rep", line, i * 3.0, i * 3.0 + 2.5, 0.9) for i, line in enumerate(lines)],
        keywords=keywords or [],
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = Store(store_url)
    await s.open()
    await s.save_call(
        call("c1", 20, "Dana", ["Hello, thanks for taking the call.", "Our pricing starts at ten."], ["pricing"])
    )
    await s.save_call(call("c2", 21, "Sam", ["We compare well with Acme Corp.", "100% uptime, 50_000 users"], ["Acme"]))
    await s.save_call(call("c3", 22, "Dana", ["What are the next steps?", "Let us talk pricing next week."]))
    other = call("c4", 22, "Dana", ["pricing pricing"])
    other.team = "globex"
    await s.save_call(other)
    yield s
    await s.close()


async def ids(store: Store, **where: object) -> list[str]:
    calls, _ = await store.list_calls("acme", 50, None, CallFilter(**where))  # type: ignore[arg-type]
    return [c.id for c in calls]


async def test_full_text_search_needs_every_word_and_returns_a_snippet(store: Store) -> None:
    assert await ids(store, text="pricing") == ["c3", "c1"]  # newest first, the team's own only
    assert await ids(store, text="PRICING next") == ["c3"]  # every word, any case, anywhere in the call
    assert await ids(store, text="nothing-like-this") == []
    calls, _ = await store.list_calls("acme", 50, None, CallFilter(text="pricing"))
    assert [c.snippet for c in calls] == ["Let us talk pricing next week.", "Our pricing starts at ten."]
    assert calls[0].summary()["snippet"] == "Let us talk pricing next week."


async def test_like_wildcards_in_a_search_are_taken_literally(store: Store) -> None:
    assert await ids(store, text="100%") == ["c2"]
    assert await ids(store, text="%") == ["c2"]
    assert await ids(store, text="50_000") == ["c2"]
    assert await ids(store, text="_") == ["c2"]


async def test_filters_by_rep_keyword_and_dates_combine(store: Store) -> None:
    assert await ids(store, rep="dan") == ["c3", "c1"]
    assert await ids(store, rep="sam@acme") == ["c2"]  # the rep's email or id counts too
    assert await ids(store, keyword="acme") == ["c2"]  # any case
    assert await ids(store, keyword="acm") == []  # a whole keyword, not a part of one
    assert await ids(store, since=date(2026, 11, 21)) == ["c3", "c2"]
    assert await ids(store, until=date(2026, 11, 21)) == ["c2", "c1"]  # the whole last day included
    assert await ids(store, rep="Dana", keyword="pricing", since=date(2026, 11, 20), until=date(2026, 11, 20)) == ["c1"]
    (stored,) = [c for c in (await store.list_calls("acme", 50))[0] if c.id == "c2"]
    assert stored.keywords == ["Acme"]


async def test_filters_page_with_the_cursor(store: Store) -> None:
    first, cursor = await store.list_calls("acme", 1, None, CallFilter(rep="Dana"))
    assert [c.id for c in first] == ["c3"] and cursor
    second, cursor = await store.list_calls("acme", 1, cursor, CallFilter(rep="Dana"))
    assert [c.id for c in second] == ["c1"] and cursor is None


async def test_a_database_of_the_previous_version_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO calls (id, team, source, status, end_reason, started_at, ended_at, metadata, speakers)"
                " VALUES ('old', 'acme', 'twilio', 'completed', 'stop', '2026-11-01 10:00:00', '2026-11-01 10:05:00',"
                " '{}', '[]')"
            )
        )
    engine.dispose()
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.open()
    calls, _ = await store.list_calls("acme")
    assert [(c.id, c.keywords) for c in calls] == [("old", [])]
    assert await store.listens("acme") == []
    await store.close()


async def test_withdrawn_consent_erases_the_participants_transcript_and_identity(store: Store) -> None:
    mixed = call("c5", 23, "Dana", ["Both of us on one line."])
    mixed.channels = [ChannelRecord(0, "rep", 8000, True), ChannelRecord(1, "customer", 8000, True)]
    mixed.segments.append(SegmentRecord(1, "customer", "My card is on file.", 4.0, 6.0, 0.9))
    mixed.participants[1].phone = "+15550100"
    await store.save_call(mixed)

    erased = await store.withdraw_consent("acme", "c5", "customer")
    assert erased is not None
    record, count = erased
    assert count == 1
    customer = next(p for p in record.participants if p.role == "customer")
    assert (customer.consent, customer.transcribed, customer.name, customer.phone) == ("denied", False, "", "")
    assert [c.transcribed for c in record.channels] == [True, False]
    kept = await store.get_call("acme", "c5")
    assert kept is not None and [s.speaker for s in kept.segments] == ["rep"]
    assert await ids(store, text="card") == []
    assert await store.withdraw_consent("globex", "c5", "customer") is None, "another team's call is not found"
