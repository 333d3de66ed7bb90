"""What the event bus adds between a call's event and a subscriber: in-process, and through Redis to another server.

    .venv/bin/python benchmarks/event_bus.py [--calls 100] [--seconds 10] [--redis-url redis://127.0.0.1:6379/0]

``--calls`` live calls each emit what a talking call emits (an interim transcript every 0.3 s, a final every 3 s),
for ``--seconds``, through a journal on SQLite. Two shapes: ``memory`` (the subscriber in the same server) and
``redis`` (published by server A, subscribed on server B: two journals and buses in this process, one Redis).
Then, for each shape, a burst: as many events as the path carries for 5 s. Prints one JSON object per shape:
events per second delivered, latency from append to the subscriber (p50, p95, max; it includes the group
commit of finals), and the Redis bytes per event. Without ``--redis-url`` a ``redis-server`` of its own is started
on a free port (the system's package).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from benchmarks.call_load import start_redis  # noqa: E402
from media_server.bus import EventBus, InMemoryEventBus, Subscription  # noqa: E402
from media_server.bus.redis import RedisEventBus  # noqa: E402
from media_server.events import new_event  # noqa: E402
from media_server.store.journal import Journal  # noqa: E402
from media_server.store.store import Store  # noqa: E402
from media_server.v1 import events_pb2 as pb  # noqa: E402

TEXT = "a final of some twelve words said by the customer on this call"


def _event(call: int, seq: int, final: bool) -> pb.Event:
    # (the send time travels in the text, read back by the subscriber)
    transcript = pb.Transcript(channel=1, speaker="customer", text=f"{TEXT} @{time.perf_counter()!r}", is_final=final)
    return new_event(f"bench-{call}", "acme", transcript=transcript)


async def _receive(sub: Subscription, latencies: list[float], counter: list[int]) -> None:
    async for event in sub:
        _, _, sent = event.transcript.text.rpartition("@")
        if sent:
            latencies.append(time.perf_counter() - float(sent))
            counter[0] += 1


async def _nodes(kind: str, db: Path, redis_url: str) -> tuple[Journal, Journal, list[Any]]:
    """The publishing server's journal and the subscribing server's (the same one in memory)."""
    closing: list[Any] = []
    journals = []
    for name in ("a", "b") if kind == "redis" else ("a",):
        store = Store(f"sqlite+aiosqlite:///{db}")
        await store.open()
        bus: EventBus = (
            RedisEventBus(redis_url, subscriber_queue=1_000_000) if kind == "redis" else InMemoryEventBus(1_000_000)
        )
        await bus.start()
        journal = Journal(store, bus, name)
        await journal.start()
        journals.append(journal)
        closing += [journal, bus, store]
    return journals[0], journals[-1], closing


async def measure(kind: str, calls: int, seconds: float, redis_url: str, db: Path) -> dict[str, object]:
    publisher, subscriber, closing = await _nodes(kind, db, redis_url)
    latencies: list[float] = []
    counter = [0]
    sub = subscriber.subscribe("acme")
    receiver = asyncio.create_task(_receive(sub, latencies, counter))
    await asyncio.sleep(0.2)

    # A steady load: each call an interim every 0.3 s, a final every 3 s.
    sent = 0
    started = time.perf_counter()
    tick = 0
    while time.perf_counter() - started < seconds:
        for call in range(calls):
            if (tick + call) % 3 == 0:  # (spread over the ticks)
                publisher.append(_event(call, tick, final=(tick // 3 + call) % 10 == 0))
                sent += 1
        tick += 1
        await asyncio.sleep(max(0.0, started + tick * 0.1 - time.perf_counter()))
    await asyncio.sleep(2.0)
    steady = sorted(latencies)
    steady_delivered = counter[0]

    # A burst: as fast as the path goes, for 5 s.
    latencies.clear()
    counter[0] = 0
    burst_started = time.perf_counter()
    burst_sent = 0
    while time.perf_counter() - burst_started < 5.0:
        for _ in range(200):
            publisher.append(_event(burst_sent % calls, burst_sent, final=False))
            burst_sent += 1
        await asyncio.sleep(0)
    deadline = time.perf_counter() + 60
    while counter[0] < burst_sent and time.perf_counter() < deadline:  # noqa: ASYNC110 (polling a counter)
        await asyncio.sleep(0.05)
    burst_s = time.perf_counter() - burst_started

    result: dict[str, object] = {
        "bus": kind,
        "calls": calls,
        "steady": {
            "eventsPerSecond": round(sent / seconds, 1),
            "delivered": steady_delivered,
            "sent": sent,
            "latencyMs": {
                "p50": round(1000 * statistics.median(steady), 2),
                "p95": round(1000 * steady[int(0.95 * (len(steady) - 1))], 2),
                "max": round(1000 * steady[-1], 2),
            },
        },
        "burst": {"sent": burst_sent, "delivered": counter[0], "eventsPerSecond": round(counter[0] / burst_s, 1)},
    }
    if kind == "redis":
        client = aioredis.Redis.from_url(redis_url)
        info: Any = await client.memory_usage("media-server:events")
        length: Any = await client.xlen("media-server:events")
        await client.aclose()
        result["redisBytesPerEvent"] = round(info / max(length, 1), 1) if info else None
    sub.close()
    receiver.cancel()
    for thing in closing:
        await thing.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis-url", help="a Redis to use (its stream media-server:events is written)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process = None
        url = args.redis_url
        if url is None:
            process, url = start_redis()
        try:
            for kind in ("memory", "redis"):
                db = Path(tmp) / f"{kind}.sqlite"
                print(json.dumps(await measure(kind, args.calls, args.seconds, url, db)), flush=True)
        finally:
            if process is not None:
                process.kill()


if __name__ == "__main__":
    asyncio.run(main())
