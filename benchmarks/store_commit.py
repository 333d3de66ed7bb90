"""What one group commit of the event journal costs, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/store_commit.py --url sqlite+aiosqlite:////tmp/bench.db \
        --url postgresql+asyncpg://postgres@127.0.0.1:5432/test [--calls 40] [--seconds 5]

``--calls`` live calls each append a final with its segment every 50 ms (one group commit holds one final of
every call), for ``--seconds``. Prints one JSON object per database: events stored, commits, mean commit time,
and the wait from append to stored (p50, p95). Each run uses new call ids, so a database may be reused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media_server.bus import InMemoryEventBus  # noqa: E402
from media_server.events import new_event  # noqa: E402
from media_server.store.journal import Journal  # noqa: E402
from media_server.store.records import CallRecord, SegmentRecord  # noqa: E402
from media_server.store.store import Store  # noqa: E402
from media_server.store.writes import CallOpened, SegmentsKept  # noqa: E402
from media_server.v1 import events_pb2 as pb  # noqa: E402

TEXT = "a final of some twelve words said by the customer on this call"


async def measure(url: str, calls: int, seconds: float) -> dict[str, object]:
    store = Store(url)
    await store.open()
    journal = Journal(store, InMemoryEventBus(100_000), "bench")
    await journal.start()
    try:
        ids = [f"bench-{i}-{time.time_ns()}" for i in range(calls)]
        for call in ids:
            record = CallRecord(
                id=call,
                team="bench",
                source="bench",
                status="live",
                end_reason="",
                started_at=datetime.now(UTC),
                ended_at=None,
            )
            started = new_event(call, "bench", call_started=pb.CallStarted())
            await journal.committed(journal.append(started, CallOpened(record, "bench")))
        before = journal.stats()
        waits = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            appended = [
                journal.append(
                    new_event(
                        call, "bench", transcript=pb.Transcript(channel=1, speaker="customer", text=TEXT, is_final=True)
                    ),
                    SegmentsKept("bench", call, [SegmentRecord(1, "customer", TEXT, 0.0, 1.0, 0.9)]),
                )
                for call in ids
            ]
            await journal.committed(appended[-1])
            waits.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        after = journal.stats()
        batches = int(after["batches"]) - int(before["batches"])
        seconds_committing = float(after["commitSeconds"]) - float(before["commitSeconds"])
        waits.sort()
        return {
            "database": url.split(":")[0],
            "calls": calls,
            "events_stored": int(after["storedEvents"]) - int(before["storedEvents"]),
            "commits": batches,
            "mean_commit_ms": round(1000 * seconds_committing / max(1, batches), 2),
            "append_to_stored_ms": {
                "p50": round(1000 * statistics.median(waits), 1),
                "p95": round(1000 * waits[int(len(waits) * 0.95)], 1),
            },
        }
    finally:
        await journal.close()
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", required=True, help="a database URL (repeat for several)")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for url in args.url:
        print(json.dumps(asyncio.run(measure(url, args.calls, args.seconds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
