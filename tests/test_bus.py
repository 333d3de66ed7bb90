"""What a subscriber notices of the event path: ids from the journal, resume from the store without gaps or
duplicates, team isolation, slow subscribers. ``Journal`` + ``InMemoryEventBus`` over a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_server.bus import InMemoryEventBus, SubscriberTooSlow
from media_server.events import new_event
from media_server.store.journal import Journal
from media_server.store.records import CallRecord
from media_server.store.store import Store
from media_server.store.writes import CallOpened
from media_server.v1 import events_pb2 as pb

Open = Callable[..., Awaitable[Journal]]


@pytest.fixture
async def open_journal(tmp_path: Path) -> AsyncIterator[Open]:
    """``await open_journal(subscriber_queue=..., replay_max=...)``: a started journal over a fresh SQLite store."""
    async with AsyncExitStack() as stack:

        async def open_(subscriber_queue: int = 1000, replay_max: int = 10_000) -> Journal:
            store = Store(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
            await store.open()
            stack.push_async_callback(store.close)
            bus = InMemoryEventBus(subscriber_queue=subscriber_queue)
            stack.push_async_callback(bus.close)
            journal = Journal(store, bus, replay_max=replay_max)
            await journal.start()
            stack.push_async_callback(journal.close)
            return journal

        yield open_


@pytest.fixture
async def journal(open_journal: Open) -> Journal:
    return await open_journal()


def _transcript(call_id: str, team: str, text: str = "hello", final: bool = True) -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=final))


async def _publish(journal: Journal, call_id: str, team: str, n: int) -> list[int]:
    """Append ``n`` finals and wait until they are stored and published; their ids."""
    events = [journal.append(_transcript(call_id, team, f"t{i}")) for i in range(n)]
    if events:
        await asyncio.wait_for(journal.committed(events[-1]), 1.0)  # published in id order: the others before it
    return [e.id for e in events]


async def _take(it: AsyncIterator[pb.Event], n: int, timeout: float = 1.0) -> list[pb.Event]:
    return [await asyncio.wait_for(anext(it), timeout) for _ in range(n)]


async def _nothing_more(it: AsyncIterator[pb.Event]) -> bool:
    """True when no further event arrives shortly (this ends the iterator)."""
    try:
        await asyncio.wait_for(anext(it), 0.05)
    except (TimeoutError, StopAsyncIteration):
        return True
    return False


# -- ids ---------------------------------------------------------------------------------------------


async def test_append_stamps_increasing_ids_and_time(journal: Journal) -> None:
    events = [journal.append(_transcript(f"c{i % 3}", "acme")) for i in range(10)]
    ids = [e.id for e in events]
    assert ids == list(range(1, 11))  # a fresh store: the first id is 1
    assert all(e.time.seconds > 1_600_000_000 for e in events)
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)
    await journal.committed(events[-1])
    assert journal.last_id == ids[-1]


async def test_ids_increase_across_teams_and_calls(journal: Journal) -> None:
    a = await _publish(journal, "a1", "acme", 3)
    b = await _publish(journal, "b1", "globex", 3)
    c = await _publish(journal, "a2", "acme", 3)
    assert a + b + c == sorted(set(a + b + c))


# -- live and resume ---------------------------------------------------------------------------------


async def test_live_subscriber_gets_events_in_order(journal: Journal) -> None:
    sub = journal.subscribe("acme", "c1")
    it = aiter(sub)
    ids = await _publish(journal, "c1", "acme", 5)
    got = await _take(it, 5)
    assert [e.id for e in got] == ids
    assert [e.transcript.text for e in got] == [f"t{i}" for i in range(5)]
    sub.close()


async def test_subscriber_without_after_gets_only_live_events(journal: Journal) -> None:
    await _publish(journal, "c1", "acme", 3)
    sub = journal.subscribe("acme", "c1")
    it = aiter(sub)
    live = await _publish(journal, "c1", "acme", 2)
    assert [e.id for e in await _take(it, 2)] == live
    assert await _nothing_more(it)


@pytest.mark.parametrize("call_id", ["c1", None], ids=["one_call", "team"])
async def test_resume_replays_exactly_the_later_events_then_live_ones(journal: Journal, call_id: str | None) -> None:
    first = await _publish(journal, "c1", "acme", 10)
    sub = journal.subscribe("acme", call_id, after=first[3])
    live = await _publish(journal, "c1", "acme", 5)
    it = aiter(sub)
    got = [e.id for e in await _take(it, 11)]
    assert got == first[4:] + live  # each once, in order, none missing
    assert await _nothing_more(it)


async def test_resume_after_zero_replays_everything_stored(journal: Journal) -> None:
    ids = await _publish(journal, "c1", "acme", 4)
    it = aiter(journal.subscribe("acme", "c1", after=0))
    assert [e.id for e in await _take(it, 4)] == ids
    assert await _nothing_more(it)


async def test_resume_after_the_last_event_replays_nothing(journal: Journal) -> None:
    ids = await _publish(journal, "c1", "acme", 4)
    sub = journal.subscribe("acme", "c1", after=ids[-1])
    it = aiter(sub)
    live = await _publish(journal, "c1", "acme", 1)
    assert [e.id for e in await _take(it, 1)] == live
    assert await _nothing_more(it)


async def test_team_resume_merges_calls_in_id_order(journal: Journal) -> None:
    events = [journal.append(_transcript(f"c{i % 3}", "acme")) for i in range(12)]
    await journal.committed(events[-1])
    ids = [e.id for e in events]
    it = aiter(journal.subscribe("acme", after=ids[2]))
    got = await _take(it, 9)
    assert [e.id for e in got] == ids[3:]
    assert {e.call_id for e in got} == {"c0", "c1", "c2"}
    assert await _nothing_more(it)


async def test_events_appended_while_replaying_are_not_lost_or_repeated(journal: Journal) -> None:
    old = await _publish(journal, "c1", "acme", 5)
    sub = journal.subscribe("acme", "c1", after=0)
    it = aiter(sub)
    got = [e.id for e in await _take(it, 2)]  # part-way through the replay
    new = await _publish(journal, "c1", "acme", 3)
    got += [e.id for e in await _take(it, 6)]
    assert got == old + new
    assert await _nothing_more(it)


async def test_events_appended_before_the_replay_starts_are_not_lost_or_repeated(journal: Journal) -> None:
    """Subscribed (the replay reads the store only when iterated), then events committed, then iterated."""
    old = await _publish(journal, "c1", "acme", 3)
    it = aiter(journal.subscribe("acme", "c1", after=old[0]))
    new = await _publish(journal, "c1", "acme", 3)  # stored: the replay must not send them a second time
    assert [e.id for e in await _take(it, 5)] == old[1:] + new
    assert await _nothing_more(it)


async def test_one_call_subscriber_sees_only_that_call(journal: Journal) -> None:
    await _publish(journal, "c2", "acme", 2)
    stored = await _publish(journal, "c1", "acme", 2)
    it = aiter(journal.subscribe("acme", "c1", after=0))
    await _publish(journal, "c2", "acme", 2)
    live = await _publish(journal, "c1", "acme", 2)
    got = await _take(it, 4)
    assert [e.id for e in got] == stored + live
    assert {e.call_id for e in got} == {"c1"}
    assert await _nothing_more(it)


async def test_close_ends_iteration(journal: Journal) -> None:
    sub = journal.subscribe("acme")
    it = aiter(sub)
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1.0)
    await _publish(journal, "c1", "acme", 1)  # a closed subscriber gets nothing and costs nothing


async def test_close_ends_a_resuming_subscription_too(journal: Journal) -> None:
    ids = await _publish(journal, "c1", "acme", 2)
    sub = journal.subscribe("acme", "c1", after=0)
    it = aiter(sub)
    assert [e.id for e in await _take(it, 2)] == ids
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1.0)


async def test_bus_close_ends_every_subscription(journal: Journal) -> None:
    await _publish(journal, "c1", "acme", 1)
    replaying = aiter(journal.subscribe("acme", after=0))
    await _take(replaying, 1)
    iterators = [aiter(journal.subscribe("acme")), aiter(journal.subscribe("globex", "c9")), replaying]
    pending = [asyncio.ensure_future(anext(it)) for it in iterators]
    await asyncio.sleep(0.01)
    await journal.bus.close()
    for task in pending:
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(task, 1.0)


# -- team isolation ----------------------------------------------------------------------------------


async def test_team_subscriber_never_sees_another_teams_events(journal: Journal) -> None:
    await _publish(journal, "a1", "acme", 3)
    it = aiter(journal.subscribe("globex", after=0))
    await _publish(journal, "a1", "acme", 3)
    mine = await _publish(journal, "g1", "globex", 2)
    got = await _take(it, 2)
    assert [e.id for e in got] == mine
    assert all(e.team == "globex" for e in got)
    assert await _nothing_more(it)


async def test_subscribing_to_another_teams_call_id_yields_nothing(journal: Journal) -> None:
    await _publish(journal, "a1", "acme", 3)
    live = journal.subscribe("globex", "a1")
    replay = journal.subscribe("globex", "a1", after=0)
    await _publish(journal, "a1", "acme", 3)
    for sub in (live, replay):
        assert await _nothing_more(aiter(sub))


async def test_replay_never_mixes_teams_sharing_a_call_id(journal: Journal) -> None:
    acme = await _publish(journal, "same-id", "acme", 2)
    await _publish(journal, "same-id", "globex", 2)
    for call_id in ("same-id", None):
        it = aiter(journal.subscribe("acme", call_id, after=0))
        got = await _take(it, 2)
        assert [e.id for e in got] == acme
        assert await _nothing_more(it)


# -- slow subscribers --------------------------------------------------------------------------------


async def test_slow_subscriber_is_dropped_without_slowing_anyone(open_journal: Open) -> None:
    journal = await open_journal(subscriber_queue=4)
    slow = journal.subscribe("acme", "c1")
    fast = journal.subscribe("acme", "c1")
    fast_it = aiter(fast)
    received: list[int] = []

    async def read_fast() -> None:
        async for event in fast_it:
            received.append(event.id)
            if len(received) == 20:
                return

    reader = asyncio.create_task(read_fast())
    published: list[int] = []
    for i in range(20):
        # Publishing never waits on a subscriber, not even a full one.
        event = journal.append(_transcript("c1", "acme", f"t{i}"))
        await asyncio.wait_for(journal.committed(event), 0.5)
        published.append(event.id)
        await asyncio.sleep(0)  # let the fast reader run; the slow one never reads
    await asyncio.wait_for(reader, 1.0)
    assert received == published

    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(anext(aiter(slow)), 1.0)


async def test_overflowing_subscriber_raises_even_while_waiting(open_journal: Open) -> None:
    journal = await open_journal(subscriber_queue=2)
    sub = journal.subscribe("acme")
    it = aiter(sub)
    await _publish(journal, "c1", "acme", 2)
    assert len(await _take(it, 2)) == 2
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    more = await _publish(journal, "c1", "acme", 4)  # one arrives, then the queue overflows
    first = await asyncio.wait_for(pending, 1.0)
    assert first.id == more[0]
    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(anext(it), 1.0)


async def test_dropped_subscriber_can_resume_from_its_last_id(open_journal: Open) -> None:
    journal = await open_journal(subscriber_queue=3)
    sub = journal.subscribe("acme", "c1")
    it = aiter(sub)
    ids = await _publish(journal, "c1", "acme", 2)
    last = [e.id for e in await _take(it, 2)][-1]
    more = await _publish(journal, "c1", "acme", 10)
    with pytest.raises(SubscriberTooSlow):
        await _take(it, 1)
    sub.close()
    resumed = aiter(journal.subscribe("acme", "c1", after=last))
    assert [e.id for e in await _take(resumed, 10)] == more
    assert ids[-1] == last
    assert await _nothing_more(resumed)


# -- what the store keeps ----------------------------------------------------------------------------


@pytest.mark.parametrize("call_id", ["c1", None], ids=["one_call", "team"])
async def test_resume_beyond_replay_max_says_events_were_lost_then_sends_the_newest(
    open_journal: Open, call_id: str | None
) -> None:
    journal = await open_journal(replay_max=5)
    ids = await _publish(journal, "c1", "acme", 12)
    it = aiter(journal.subscribe("acme", call_id, after=ids[1]))  # 10 later events, 5 of them replayed
    first = await _take(it, 1)
    assert first[0].type == "error"
    assert first[0].id == 0  # a notice, not an event of the log
    assert first[0].error.code == "events_lost"
    assert first[0].team == "acme" and first[0].call_id == (call_id or "")
    assert first[0].error.message.startswith("5 older events")
    assert [e.id for e in await _take(it, 5)] == ids[-5:]
    live = await _publish(journal, "c1", "acme", 1)
    assert [e.id for e in await _take(it, 1)] == live
    assert await _nothing_more(it)


async def test_resume_within_replay_max_says_nothing_was_lost(open_journal: Open) -> None:
    journal = await open_journal(replay_max=5)
    ids = await _publish(journal, "c1", "acme", 12)
    it = aiter(journal.subscribe("acme", "c1", after=ids[-6]))  # exactly replay_max later events
    got = await _take(it, 5)
    assert [e.id for e in got] == ids[-5:]
    assert all(e.type == "transcript" for e in got)
    assert await _nothing_more(it)


async def test_interim_transcripts_are_delivered_live_but_not_replayed(journal: Journal) -> None:
    live = journal.subscribe("acme", "c1")
    events = [
        journal.append(_transcript("c1", "acme", text, final=final))
        for text, final in [("he", False), ("hello", True), ("wor", False), ("world", True), ("bye", False)]
    ]
    await journal.committed(events[-1])
    assert [e.id for e in await _take(aiter(live), 5)] == [e.id for e in events]
    it = aiter(journal.subscribe("acme", "c1", after=0))
    got = await _take(it, 2)
    assert [(e.id, e.transcript.text) for e in got] == [(events[1].id, "hello"), (events[3].id, "world")]
    assert await _nothing_more(it)


async def test_a_deleted_calls_events_are_not_replayed(journal: Journal) -> None:
    record = CallRecord(
        id="c1", team="acme", source="twilio", status="live", end_reason="", started_at=datetime.now(UTC), ended_at=None
    )
    journal.append(new_event("c1", "acme", call_started=pb.CallStarted(source="twilio")), CallOpened(record, node=""))
    await _publish(journal, "c1", "acme", 3)
    kept = await _publish(journal, "c2", "acme", 2)
    assert await journal.store.delete_call("acme", "c1")
    it = aiter(journal.subscribe("acme", after=0))
    assert [e.id for e in await _take(it, 2)] == kept
    assert await _nothing_more(it)
    assert await _nothing_more(aiter(journal.subscribe("acme", "c1", after=0)))
