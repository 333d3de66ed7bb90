"""The event bus across servers (``events.bus = "redis"``), as a subscriber notices it: two servers (a journal
and a bus each) share one SQLite store and one real Redis of the test's own; every subscriber sees every event of
its team once, in one order, on either server; resuming after any event id works on either server, also after the
server that published it is gone; Redis restarted mid-stream loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from media_server.bus import SubscriberTooSlow, Subscription
from media_server.bus.redis import RedisEventBus
from media_server.events import new_event
from media_server.store.journal import Journal
from media_server.store.store import Store
from media_server.v1 import events_pb2 as pb
from tests.conftest import ThrowawayRedis


@dataclass
class Node:
    """One server: its journal and its bus."""

    journal: Journal
    bus: RedisEventBus
    stack: AsyncExitStack

    async def stop(self) -> None:
        await self.stack.aclose()


Start = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(tmp_path: Path, redis_server: ThrowawayRedis) -> AsyncIterator[Start]:
    """``await start_node()``: a server's journal and Redis bus over the test's shared store and Redis."""
    nodes: list[Node] = []

    async def start(subscriber_queue: int = 1000, window_s: float = 600.0) -> Node:
        stack = AsyncExitStack()
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        await store.open()
        stack.push_async_callback(store.close)
        bus = RedisEventBus(redis_server.url, window_s=window_s, subscriber_queue=subscriber_queue)
        await bus.start()
        stack.push_async_callback(bus.close)
        journal = Journal(store, bus, node=f"node{len(nodes)}")
        await journal.start()
        stack.push_async_callback(journal.close)
        node = Node(journal, bus, stack)
        nodes.append(node)
        return node

    yield start
    for node in reversed(nodes):
        await node.stop()


def _final(call_id: str, team: str, text: str) -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=True))


def _interim(call_id: str, team: str, text: str) -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text))


async def _publish(node: Node, call_id: str, texts: list[str], team: str = "acme") -> list[pb.Event]:
    events = [node.journal.append(_final(call_id, team, text)) for text in texts]
    await asyncio.wait_for(node.journal.committed(events[-1]), 5.0)
    return events


_iterators: dict[int, AsyncIterator[pb.Event]] = {}


def _events(sub: Subscription) -> AsyncIterator[pb.Event]:
    """The subscription's one iterator (a subscriber iterates once; a second ``async for`` would start over)."""
    if id(sub) not in _iterators:
        _iterators[id(sub)] = aiter(sub)
    return _iterators[id(sub)]


async def _take(sub: Subscription, n: int, timeout: float = 10.0) -> list[pb.Event]:
    events = _events(sub)

    async def read() -> list[pb.Event]:
        return [await anext(events) for _ in range(n)]

    return await asyncio.wait_for(read(), timeout)


async def _nothing_more(sub: Subscription, wait_s: float = 0.5) -> list[pb.Event]:
    """What else arrives within ``wait_s`` (nothing, where nothing may)."""
    events, extra = _events(sub), []
    try:
        while True:
            extra.append(await asyncio.wait_for(anext(events), wait_s))
    except TimeoutError:
        pass
    return extra


def _texts(events: list[pb.Event]) -> list[str]:
    return [e.transcript.text for e in events]


async def test_a_subscriber_on_either_server_sees_every_call_of_its_team_once_in_one_order(start_node: Start) -> None:
    a, b = await start_node(), await start_node()
    on_a, on_b = a.journal.subscribe("acme"), b.journal.subscribe("acme")
    other_team = b.journal.subscribe("globex")
    one_call = b.journal.subscribe("acme", "call-a")
    sent: list[pb.Event] = []
    for i in range(5):  # (the two servers' ids interleave: each has its own block)
        sent += await _publish(a, "call-a", [f"a{i}"])
        sent += await _publish(b, "call-b", [f"b{i}"])
    await _publish(a, "call-g", ["globex's"], team="globex")

    seen_a, seen_b = await _take(on_a, 10), await _take(on_b, 10)
    assert _texts(seen_a) == _texts(seen_b) == _texts(sent)
    assert [e.id for e in seen_b] == [e.id for e in sent]
    assert await _nothing_more(on_b) == []  # once: nothing repeated
    assert _texts(await _take(one_call, 5)) == [f"a{i}" for i in range(5)]
    assert _texts(await _take(other_team, 1)) == ["globex's"]  # and no acme event before it


async def test_a_subscriber_resumes_on_the_other_server_after_any_event_without_gap_or_repeat(
    start_node: Start,
) -> None:
    a, b = await start_node(), await start_node()
    sent: list[pb.Event] = []
    for i in range(6):
        sent += await _publish(a, "call-a", [f"a{i}"])
        sent += await _publish(b, "call-b", [f"b{i}"])
    ids = [e.id for e in sent]
    assert ids != sorted(ids)  # the ids alone do not say what came after what
    for cut in (0, 3, 6, 10):  # resume after the event seen last, on the server that did not publish it
        node = b if sent[cut].call_id == "call-a" else a
        resumed = node.journal.subscribe("acme", after=sent[cut].id)
        assert _texts(await _take(resumed, len(sent) - cut - 1)) == _texts(sent[cut + 1 :])
        later = await _publish(a, "call-a", [f"live{cut}"])
        assert _texts(await _take(resumed, 1)) == [f"live{cut}"]
        sent += later
        resumed.close()


async def test_resume_works_after_the_server_that_published_the_events_is_gone(start_node: Start) -> None:
    a, b = await start_node(), await start_node()
    sent = await _publish(a, "call-a", ["one", "two", "three", "four"])
    await a.stop()  # (its process gone: only Redis and the store know its events)
    resumed = b.journal.subscribe("acme", after=sent[1].id)
    assert _texts(await _take(resumed, 2)) == ["three", "four"]
    one_call = b.journal.subscribe("acme", "call-a", after=sent[0].id)
    assert _texts(await _take(one_call, 3)) == ["two", "three", "four"]


async def test_interim_transcripts_reach_live_subscribers_and_are_not_replayed(start_node: Start) -> None:
    a, b = await start_node(), await start_node()
    live = b.journal.subscribe("acme")
    first = await _publish(a, "call-a", ["before"])
    interim = a.journal.append(_interim("call-a", "acme", "almo"))
    final = a.journal.append(_final("call-a", "acme", "almost done"))
    await a.journal.committed(final)
    assert [e.id for e in await _take(live, 3)] == [first[0].id, interim.id, final.id]
    resumed = b.journal.subscribe("acme", after=first[0].id)
    assert _texts(await _take(resumed, 1)) == ["almost done"]


async def test_an_id_redis_no_longer_holds_is_resumed_from_the_store(
    start_node: Start, redis_server: ThrowawayRedis
) -> None:
    a, b = await start_node(), await start_node()
    sent = await _publish(a, "call-a", ["one", "two", "three"])
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()  # (as a Redis that kept nothing across a restart, or a window long past)
    await client.aclose()
    resumed = b.journal.subscribe("acme", "call-a", after=sent[0].id)
    assert _texts(await _take(resumed, 2)) == ["two", "three"]
    sent += await _publish(a, "call-a", ["four"])
    assert _texts(await _take(resumed, 1)) == ["four"]  # then live, nothing twice
    assert await _nothing_more(resumed) == []


async def test_redis_restarted_mid_stream_subscribers_get_everything_once_in_order(
    start_node: Start, redis_server: ThrowawayRedis
) -> None:
    a, b = await start_node(), await start_node()
    live = b.journal.subscribe("acme")
    before = await _publish(a, "call-a", ["one", "two"])
    assert _texts(await _take(live, 2)) == ["one", "two"]

    redis_server.kill()
    during = [a.journal.append(_final("call-a", "acme", text)) for text in ("three", "four")]
    await a.journal.committed(during[-1])  # stored; Redis away: waiting to be fanned out
    await asyncio.sleep(0.5)
    assert not a.bus.healthy and not await a.bus.reachable()
    redis_server.resume()  # (it kept nothing)
    after = await _publish(b, "call-b", ["five"])

    got = await _take(live, 3, timeout=20)
    assert sorted(_texts(got)) == ["five", "four", "three"]
    assert _texts(got).index("three") < _texts(got).index("four")
    assert await _nothing_more(live) == []
    assert a.bus.healthy and await a.bus.reachable()
    resumed = a.journal.subscribe("acme", "call-a", after=before[1].id)
    assert _texts(await _take(resumed, 2)) == ["three", "four"]
    assert after[0].id not in {e.id for e in during}


async def test_a_publish_retried_after_a_lost_reply_is_not_repeated(start_node: Start) -> None:
    a, b = await start_node(), await start_node()
    live = b.journal.subscribe("acme")
    event = (await _publish(a, "call-a", ["once"]))[0]
    await a.bus.publish(event)  # (what a retry after a lost reply sends)
    assert _texts(await _take(live, 1)) == ["once"]
    assert await _nothing_more(live) == []


async def test_a_slow_subscriber_is_dropped_and_the_others_go_on(start_node: Start) -> None:
    a = await start_node(subscriber_queue=10)
    slow, fast = a.journal.subscribe("acme"), a.journal.subscribe("acme")
    got: list[pb.Event] = []

    async def read_fast() -> None:
        async for event in fast:
            got.append(event)
            if len(got) == 40:
                return

    reader = asyncio.create_task(read_fast())
    for i in range(40):
        await _publish(a, "call-a", [f"t{i}"])
    await asyncio.wait_for(reader, 10)
    with pytest.raises(SubscriberTooSlow):
        await _take(slow, 40)


async def test_the_stream_keeps_about_its_window(start_node: Start, redis_server: ThrowawayRedis) -> None:
    a = await start_node(window_s=1.0)
    await _publish(a, "call-a", [f"t{i}" for i in range(400)])
    await asyncio.sleep(1.5)
    await _publish(a, "call-a", ["new"])
    await asyncio.sleep(0.2)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        length = await client.xlen(a.bus.stream)
    finally:
        await client.aclose()
    assert length < 200  # (trimmed a whole node of entries at a time: roughly, never below the window)


async def test_a_server_does_not_start_without_its_redis() -> None:
    bus = RedisEventBus("redis://127.0.0.1:1/0")
    with pytest.raises(ConnectionError, match="does not answer"):
        await bus.start(wait_s=0.5)
    await bus.close()


async def test_a_deleted_or_erased_call_s_events_are_not_resumed_from_redis(start_node: Start) -> None:
    a, b = await start_node(), await start_node()
    first = await _publish(a, "call-a", ["before"])
    await _publish(a, "gone", ["my number is 555 123 0000"])
    kept = await _publish(a, "call-a", ["after"])
    assert await a.bus.forget("acme", {"gone"}) == 1  # (on the server that published them: flushed first)
    resumed = b.journal.subscribe("acme", after=first[0].id)
    assert _texts(await _take(resumed, 1)) == ["after"] and kept
    assert await _nothing_more(resumed) == []
