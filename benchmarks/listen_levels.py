"""Listen-in levels, timed from the audio sent: what a manager hears in windows around the rep's tone.

    .venv/bin/python benchmarks/listen_levels.py [--runs 3]

(These were timed asserts in ``tests/test_listen.py``, which now checks the order of what is heard.) The test's
call, per run: 7 s over the L16 websocket ingest in real time, the rep (consent granted) silent, a 2 s tone from
3 s, silent again; the customer (consent denied) a loud tone throughout. One aiortc listener (``channel=mixed``)
on a server in this process. Reported, by the wall clock of the audio sent:

- ``rep_level``: median RMS of the frames heard from 0.8 s after the tone was sent to 0.2 s before it stopped
  (the suite asserted > 0.05);
- ``quiet_before`` / ``quiet_after``: the same from 1.5 s to the tone, and from 0.8 s after it to the end
  (the suite asserted < 0.005: the denied customer is never heard);
- ``onset_delay_ms``: from the tone's first audio sent to the first loud frame heard.

Prints one JSON document: each run's figures and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.inprocess import InProcessServer, inprocess_server, loopback_ice  # noqa: E402
from tests.test_listen import listen, silence, start_call, tone, wait_live  # noqa: E402


async def one_call(srv: InProcessServer) -> dict[str, Any]:
    rep = np.concatenate([silence(3.0), tone(2.0, 0.3), silence(2.0)])
    customer = tone(7.0, 0.5, freq=300)
    call_id, streaming = start_call(srv, rep, customer)
    await wait_live(srv, call_id)
    listener = await listen(srv, call_id, srv.keys["manager"])
    result = await streaming
    await asyncio.sleep(0.5)
    await listener.pc.close()
    t_on, t_off = result.sent_at(3.0), result.sent_at(5.0)
    onset = listener.onset(t_on)
    return {
        "rep_level": round(listener.level(t_on + 0.8, t_off - 0.2), 4),
        "quiet_before": round(listener.level(result.sent_at(1.5), t_on - 0.1), 5),
        "quiet_after": round(listener.level(t_off + 0.8, result.sent_at(7.0) - 0.1), 5),
        "onset_delay_ms": None if onset is None else round(1000 * (onset - t_on)),
    }


async def run_all(srv: InProcessServer, runs: int) -> list[dict[str, Any]]:
    return [await one_call(srv) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, loopback_ice():
        with inprocess_server(Path(tmp), {"ingest": {"idle_timeout_s": 4}}) as srv:
            results = asyncio.run(run_all(srv, args.runs))

    def median(key: str) -> float | None:
        values = [r[key] for r in results if r[key] is not None]
        return round(statistics.median(values), 5) if values else None

    print(
        json.dumps(
            {
                "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
                "runs": results,
                **{f"median_{key}": median(key) for key in ("rep_level", "quiet_before", "quiet_after")},
                "median_onset_delay_ms": median("onset_delay_ms"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
