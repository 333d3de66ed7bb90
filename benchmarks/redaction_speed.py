"""Redaction speed per segment: it runs on every interim and final before anything leaves the server.

    .venv/bin/python benchmarks/redaction_speed.py [--repeats 15]

Segments of 5-25 words from the redaction tests (tests/test_redaction.py): those holding PII (cards, CVVs, expiry
dates, SSNs, phone numbers, emails) and ordinary ones, redacted as finals and as interims, as text and as timed
words. (This was a printed timing inside the test suite.) Prints one JSON document: microseconds per segment,
median and best of ``--repeats`` passes, per kind.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_redaction import (  # noqa: E402
    CARDS,
    CVVS,
    EMAILS,
    EXPIRIES,
    ORDINARY,
    PHONES,
    REDACTOR,
    SSNS,
    timed,
)


def workloads() -> list[tuple[str, Callable[[], Any], int]]:
    with_numbers = [s for s, _ in CARDS + CVVS + EXPIRIES + SSNS + PHONES + EMAILS]
    rows: list[tuple[str, Callable[[], Any], int]] = []
    for interim in (False, True):
        tag = "interim" if interim else "final"
        rows += [
            (
                f"{tag}, PII",
                lambda i=interim: [REDACTOR.redact_text(s, interim=i) for s in with_numbers],
                len(with_numbers),
            ),
            (
                f"{tag}, ordinary",
                lambda i=interim: [REDACTOR.redact_text(s, interim=i) for s in ORDINARY],
                len(ORDINARY),
            ),
        ]
    words = [timed(s) for s in with_numbers]
    rows.append(("words, PII", lambda: [REDACTOR.redact_words(w) for w in words], len(words)))
    return rows


def run(repeats: int) -> dict[str, Any]:
    results = {}
    for name, work, n in workloads():
        work()  # warm up
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            work()
            samples.append((time.perf_counter() - t0) / n * 1e6)
        results[name] = {
            "segments": n,
            "median_us_per_segment": round(statistics.median(samples), 1),
            "best_us_per_segment": round(min(samples), 1),
        }
    return {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "repeats": repeats,
        "kinds": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(json.dumps(run(args.repeats), indent=2))


if __name__ == "__main__":
    main()
