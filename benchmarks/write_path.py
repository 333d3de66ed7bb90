"""What writing every call as it goes costs: the write path against write-at-end, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/write_path.py --calls 8 --duration 45 --rounds 2

It plays the same load as ``benchmarks/call_load.py`` (N concurrent real-time two-party Twilio calls of the
``tel8k_sim`` speech, events read back over websockets) against two servers started one after the other, round
after round (A, B, A, B...), so both see the same machine:

- **write path**: this tree (every event stored in group commits before it is published, ``store/journal.py``);
- **write at end**: the server of ``--baseline`` (default: the last commit before the journal), checked out in a
  temporary git worktree and run with the same virtual environment: events published at once, the call stored in
  one transaction when it ends.

It prints one JSON document: per server the final latency (p50, p95), CPU-seconds per call-second, RSS, WER; for
the write path also the journal's figures (commits, events, seconds spent committing), the write cost per final
and per stored event, and the database size per call-hour; and the ratios write path / write at end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import call_load  # noqa: E402

BASELINE = "18c1560"  # the last commit that stored a call only when it ended


def _status(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/v1/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _db_bytes(data_dir: Path) -> int:
    """The database's size in use (pages that hold data, WAL included; not the WAL file's preallocated room)."""
    with sqlite3.connect(f"file:{data_dir / 'media_server.db'}?mode=ro", uri=True) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0] - conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages * conn.execute("PRAGMA page_size").fetchone()[0])


def _one(args: argparse.Namespace, env: dict[str, str | None]) -> dict[str, Any]:
    server, url, token = call_load.start_server(call_load.free_port(), args.startup_timeout, env)
    try:
        args.grpc_target = f"127.0.0.1:{server.grpc_port}"
        size_before = _db_bytes(server.data_dir)
        report = asyncio.run(call_load.sweep(args, url, token, server.process.pid))
        status = _status(url, token)
        result = dict(report["results"][-1])
        calls_s = sum(r["calls"] for r in report["results"]) * args.duration
        result["db_bytes_per_call_hour"] = round((_db_bytes(server.data_dir) - size_before) / (calls_s / 3600))
        result["journal"] = status.get("journal")
        return result
    finally:
        server.stop()


def _cpu_per_call_s(r: dict[str, Any]) -> float | None:
    cpu = r.get("cpu_percent")
    return None if cpu is None else round(cpu / 100 / r["calls"], 4)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    out = {
        "final_latency_p50": med("final_latency_p50"),
        "final_latency_p95": med("final_latency_p95"),
        "cpu_s_per_call_s": round(statistics.median(c for r in runs if (c := _cpu_per_call_s(r)) is not None), 4),
        "rss_mb": med("rss_mb"),
        "wer": med("wer"),
        "finals": med("finals"),
        "missing_finals": med("missing_finals"),
        "db_bytes_per_call_hour": med("db_bytes_per_call_hour"),
    }
    journals = [r["journal"] for r in runs if r.get("journal")]
    if journals:
        finals = sum(r["scheduler_delta"].get("finals", 0) for r in runs if r.get("journal"))
        seconds = sum(j["commitSeconds"] for j in journals)
        stored = sum(j["storedEvents"] for j in journals)
        out["journal"] = {
            "commits": sum(j["batches"] for j in journals),
            "events": sum(j["events"] for j in journals),
            "stored_events": stored,
            "commit_seconds": round(seconds, 3),
            "events_per_commit": round(
                sum(j["events"] for j in journals) / max(1, sum(j["batches"] for j in journals)), 2
            ),
            "write_ms_per_final": round(1000 * seconds / finals, 3) if finals else None,
            "write_ms_per_stored_event": round(1000 * seconds / stored, 3) if stored else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = call_load.build_parser(__doc__, running_server=False)
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (each server runs once per round)")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the write-at-end server")
    args = call_load.check_args(parser, parser.parse_args(argv))
    runs: dict[str, list[dict[str, Any]]] = {"write_path": [], "write_at_end": []}
    with call_load.baseline_tree(args.baseline) as baseline_env:
        for round_ in range(args.rounds):
            for name, env in (("write_path", {}), ("write_at_end", baseline_env)):
                call_load.log(f"round {round_ + 1}: {name}")
                runs[name].append(_one(args, env))
    a, b = _summary(runs["write_path"]), _summary(runs["write_at_end"])

    def ratio(key: str) -> float | None:
        return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None

    report = {
        "machine": call_load.machine_info(),
        "config": {"calls": args.calls, "duration_s": args.duration, "rounds": args.rounds, "baseline": args.baseline},
        "write_path": a,
        "write_at_end": b,
        "ratio_write_path_to_write_at_end": {
            k: ratio(k) for k in ("final_latency_p50", "final_latency_p95", "cpu_s_per_call_s", "rss_mb")
        },
        "runs": runs,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
