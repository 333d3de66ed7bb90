"""The in-process event bus: ids, resume without gaps or duplicates, team isolation, slow subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from media_server.bus import InMemoryEventBus, SubscriberTooSlow
from media_server.events import new_event
from media_server.v1 import events_pb2 as pb


def _transcript(call_id: str, team: str, text: str = "hello") -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=True))


async def _publish(bus: InMemoryEventBus, call_id: str, team: str, n: int) -> list[int]:
    return [(await bus.publish(_transcript(call_id, team, f"t{i}"))).id for i in range(n)]


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


async def test_publish_stamps_increasing_ids_and_time() -> None:
    bus = InMemoryEventBus()
    events = [await bus.publish(_transcript(f"c{i % 3}", "acme")) for i in range(10)]
    ids = [e.id for e in events]
    assert ids == list(range(1, 11))
    assert all(e.time.seconds > 1_600_000_000 for e in events)
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)


async def test_ids_increase_across_teams_and_calls() -> None:
    bus = InMemoryEventBus()
    a = await _publish(bus, "a1", "acme", 3)
    b = await _publish(bus, "b1", "globex", 3)
    assert a + b == sorted(set(a + b))


# -- live and resume ---------------------------------------------------------------------------------


async def test_live_subscriber_gets_events_in_order() -> None:
    bus = InMemoryEventBus()
    sub = bus.subscribe("acme", "c1")
    it = aiter(sub)
    ids = await _publish(bus, "c1", "acme", 5)
    got = await _take(it, 5)
    assert [e.id for e in got] == ids
    assert [e.transcript.text for e in got] == [f"t{i}" for i in range(5)]
    sub.close()


async def test_subscriber_without_after_gets_only_live_events() -> None:
    bus = InMemoryEventBus()
    await _publish(bus, "c1", "acme", 3)
    sub = bus.subscribe("acme", "c1")
    it = aiter(sub)
    live = await _publish(bus, "c1", "acme", 2)
    assert [e.id for e in await _take(it, 2)] == live
    assert await _nothing_more(it)


@pytest.mark.parametrize("call_id", ["c1", None], ids=["one_call", "team"])
async def test_resume_replays_exactly_the_later_events_then_live_ones(call_id: str | None) -> None:
    bus = InMemoryEventBus()
    first = await _publish(bus, "c1", "acme", 10)
    sub = bus.subscribe("acme", call_id, after=first[3])
    live = await _publish(bus, "c1", "acme", 5)
    it = aiter(sub)
    got = [e.id for e in await _take(it, 11)]
    assert got == first[4:] + live  # each once, in order, none missing
    assert await _nothing_more(it)


async def test_resume_after_zero_replays_everything_buffered() -> None:
    bus = InMemoryEventBus()
    ids = await _publish(bus, "c1", "acme", 4)
    it = aiter(bus.subscribe("acme", "c1", after=0))
    assert [e.id for e in await _take(it, 4)] == ids


async def test_resume_after_the_last_event_replays_nothing() -> None:
    bus = InMemoryEventBus()
    ids = await _publish(bus, "c1", "acme", 4)
    sub = bus.subscribe("acme", "c1", after=ids[-1])
    it = aiter(sub)
    live = await _publish(bus, "c1", "acme", 1)
    assert [e.id for e in await _take(it, 1)] == live


async def test_team_resume_merges_calls_in_id_order() -> None:
    bus = InMemoryEventBus()
    ids = []
    for i in range(12):
        ids.append((await bus.publish(_transcript(f"c{i % 3}", "acme"))).id)
    it = aiter(bus.subscribe("acme", after=ids[2]))
    got = await _take(it, 9)
    assert [e.id for e in got] == ids[3:]
    assert {e.call_id for e in got} == {"c0", "c1", "c2"}


async def test_events_published_while_replaying_are_not_lost_or_repeated() -> None:
    bus = InMemoryEventBus()
    old = await _publish(bus, "c1", "acme", 5)
    sub = bus.subscribe("acme", "c1", after=0)
    it = aiter(sub)
    got = [e.id for e in await _take(it, 2)]  # part-way through the replay
    new = await _publish(bus, "c1", "acme", 3)
    got += [e.id for e in await _take(it, 6)]
    assert got == old + new
    assert await _nothing_more(it)


async def test_one_call_subscriber_sees_only_that_call() -> None:
    bus = InMemoryEventBus()
    it = aiter(bus.subscribe("acme", "c1", after=0))
    await _publish(bus, "c2", "acme", 2)
    mine = await _publish(bus, "c1", "acme", 2)
    assert [e.id for e in await _take(it, 2)] == mine


async def test_close_ends_iteration() -> None:
    bus = InMemoryEventBus()
    sub = bus.subscribe("acme")
    it = aiter(sub)
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 1.0)
    await bus.publish(_transcript("c1", "acme"))  # a closed subscriber gets nothing and costs nothing


async def test_bus_close_ends_every_subscription() -> None:
    bus = InMemoryEventBus()
    subs = [bus.subscribe("acme"), bus.subscribe("globex", "c9")]
    pending = [asyncio.ensure_future(anext(aiter(s))) for s in subs]
    await asyncio.sleep(0.01)
    await bus.close()
    for task in pending:
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(task, 1.0)


# -- team isolation ----------------------------------------------------------------------------------


async def test_team_subscriber_never_sees_another_teams_events() -> None:
    bus = InMemoryEventBus()
    await _publish(bus, "a1", "acme", 3)
    it = aiter(bus.subscribe("globex", after=0))
    await _publish(bus, "a1", "acme", 3)
    mine = await _publish(bus, "g1", "globex", 2)
    got = await _take(it, 2)
    assert [e.id for e in got] == mine
    assert all(e.team == "globex" for e in got)
    assert await _nothing_more(it)


async def test_subscribing_to_another_teams_call_id_yields_nothing() -> None:
    bus = InMemoryEventBus()
    await _publish(bus, "a1", "acme", 3)
    live = bus.subscribe("globex", "a1")
    replay = bus.subscribe("globex", "a1", after=0)
    await _publish(bus, "a1", "acme", 3)
    for sub in (live, replay):
        assert await _nothing_more(aiter(sub))


async def test_replay_never_mixes_teams_sharing_a_call_id() -> None:
    bus = InMemoryEventBus()
    acme = await _publish(bus, "same-id", "acme", 2)
    await _publish(bus, "same-id", "globex", 2)
    for call_id in ("same-id", None):
        it = aiter(bus.subscribe("acme", call_id, after=0))
        got = await _take(it, 2)
        assert [e.id for e in got] == acme
        assert await _nothing_more(it)


# -- slow subscribers --------------------------------------------------------------------------------


async def test_slow_subscriber_is_dropped_without_slowing_anyone() -> None:
    bus = InMemoryEventBus(subscriber_queue=4)
    slow = bus.subscribe("acme", "c1")
    fast = bus.subscribe("acme", "c1")
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
        published.append((await asyncio.wait_for(bus.publish(_transcript("c1", "acme", f"t{i}")), 0.5)).id)
        await asyncio.sleep(0)  # let the fast reader run; the slow one never reads
    await asyncio.wait_for(reader, 1.0)
    assert received == published

    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(anext(aiter(slow)), 1.0)


async def test_overflowing_subscriber_raises_even_while_waiting() -> None:
    bus = InMemoryEventBus(subscriber_queue=2)
    sub = bus.subscribe("acme")
    it = aiter(sub)
    await _publish(bus, "c1", "acme", 2)
    assert len(await _take(it, 2)) == 2
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    await _publish(bus, "c1", "acme", 4)  # one arrives, then the queue overflows
    first = await asyncio.wait_for(pending, 1.0)
    assert first.id == 3
    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(anext(it), 1.0)


async def test_dropped_subscriber_can_resume_from_its_last_id() -> None:
    bus = InMemoryEventBus(subscriber_queue=3)
    sub = bus.subscribe("acme", "c1")
    it = aiter(sub)
    ids = await _publish(bus, "c1", "acme", 2)
    last = [e.id for e in await _take(it, 2)][-1]
    more = await _publish(bus, "c1", "acme", 10)
    with pytest.raises(SubscriberTooSlow):
        await _take(it, 1)
    sub.close()
    resumed = aiter(bus.subscribe("acme", "c1", after=last))
    assert [e.id for e in await _take(resumed, 10)] == more
    assert ids[-1] == last


# -- replay buffer -----------------------------------------------------------------------------------


async def test_buffer_per_call_is_bounded() -> None:
    bus = InMemoryEventBus(buffer_per_call=5)
    ids = await _publish(bus, "c1", "acme", 12)
    other = await _publish(bus, "c2", "acme", 3)
    it = aiter(bus.subscribe("acme", "c1", after=ids[-6]))  # within the buffer: no gap
    assert [e.id for e in await _take(it, 5)] == ids[-5:]
    assert await _nothing_more(it)
    it = aiter(bus.subscribe("acme", "c2", after=0))  # each call has its own buffer
    assert [e.id for e in await _take(it, 3)] == other


async def test_resume_older_than_the_buffer_says_events_were_lost() -> None:
    bus = InMemoryEventBus(buffer_per_call=5)
    ids = await _publish(bus, "c1", "acme", 12)
    it = aiter(bus.subscribe("acme", "c1", after=2))
    first = await _take(it, 1)
    assert first[0].type == "error"
    assert first[0].error.code == "events_lost"
    assert first[0].call_id == "c1" and first[0].team == "acme"
    assert "before id 8" in first[0].error.message
    assert [e.id for e in await _take(it, 5)] == ids[-5:]
    assert await _nothing_more(it)


async def test_team_resume_reports_loss_only_for_the_call_that_lost_events() -> None:
    bus = InMemoryEventBus(buffer_per_call=3)
    await _publish(bus, "c1", "acme", 6)
    kept = await _publish(bus, "c2", "acme", 2)
    it = aiter(bus.subscribe("acme", after=0))
    got = await _take(it, 6)
    assert [(e.type, e.call_id) for e in got[:1]] == [("error", "c1")]
    assert [e.id for e in got[1:]] == [4, 5, 6, *kept]


async def test_no_false_loss_when_other_calls_events_sit_between() -> None:
    """Ids are global: a gap in one call's ids is not a loss when the missing ids belong to other calls."""
    bus = InMemoryEventBus(buffer_per_call=3)
    c1: list[int] = []
    for i in range(5):
        c1.append((await bus.publish(_transcript("c1", "acme", f"t{i}"))).id)
        await bus.publish(_transcript("c2", "acme"))
    # c1 has ids 1, 3, 5, 7, 9 and keeps 5, 7, 9. A subscriber that saw up to id 3 (or 4) lost nothing of c1.
    for after in (3, 4):
        it = aiter(bus.subscribe("acme", "c1", after=after))
        got = await _take(it, 3)
        assert [e.id for e in got] == c1[2:]
        assert all(e.type == "transcript" for e in got)
    # One that saw only up to id 2 did lose id 3.
    it = aiter(bus.subscribe("acme", "c1", after=2))
    assert (await _take(it, 1))[0].error.code == "events_lost"
    # Team-wide: after id 4 nothing of either call is lost (c2 keeps 6, 8, 10 and dropped 2 and 4).
    it = aiter(bus.subscribe("acme", after=4))
    got = await _take(it, 6)
    assert [e.id for e in got] == list(range(5, 11))
    assert all(e.type == "transcript" for e in got)


async def test_ended_call_stays_resumable_for_a_while() -> None:
    bus = InMemoryEventBus(keep_ended_s=600)
    ids = await _publish(bus, "c1", "acme", 3)
    bus.call_ended("c1")
    it = aiter(bus.subscribe("acme", "c1", after=0))
    assert [e.id for e in await _take(it, 3)] == ids


async def test_ended_call_is_forgotten_after_keep_ended_s() -> None:
    bus = InMemoryEventBus(keep_ended_s=0)
    await _publish(bus, "c1", "acme", 3)
    bus.call_ended("c1")
    assert await _nothing_more(aiter(bus.subscribe("acme", "c1", after=0)))
