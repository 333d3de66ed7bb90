"""Activity per rep over a time window: the figures a manager compares reps by, summed from the anonymised daily
aggregates (``media_server/store/aggregates.py``: kept when calls are deleted, erased or purged, so last month's
figures do not change), or straight from stored calls."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from media_server.store.aggregates import DayFigures, rep_of
from media_server.store.records import CallRecord


@dataclass
class RepActivity:
    rep: str
    figures: DayFigures = field(default_factory=DayFigures)

    def to_json(self) -> dict[str, Any]:
        f = self.figures

        def mean(total: float, n: int) -> float | None:
            return round(total / n, 3) if n else None

        return {
            "rep": self.rep,
            "calls": f.calls,
            "callTime": round(f.call_time, 3),
            "talkTime": round(f.talk_time, 3),
            "averageDuration": round(f.call_time / f.calls, 3) if f.calls else None,
            "averageTalkRatio": mean(f.ratio_sum, f.ratio_n),
            "averageLongestMonologue": mean(f.monologue_sum, f.monologue_n),
            "averagePatience": mean(f.patience_sum, f.patience_n),
            "questionsAsked": f.questions,
            "questionsPerCall": round(f.questions / f.calls, 2) if f.calls else None,
            "trackerHits": dict(sorted(f.tracker_hits.items())),
            "dispositions": dict(sorted(f.dispositions.items())),
            "cues": dict(sorted(f.cues.items())),
        }


def activity(per_rep: Iterable[tuple[str, DayFigures]]) -> list[RepActivity]:
    """One entry per rep (by id, else email, else name; "" for calls without one), most calls first."""
    reps: dict[str, RepActivity] = {}
    for rep, figures in per_rep:
        reps.setdefault(rep, RepActivity(rep)).figures.add(figures)
    return sorted(reps.values(), key=lambda a: (-a.figures.calls, a.rep))


def activity_of_calls(calls: Iterable[CallRecord]) -> list[RepActivity]:
    """The same, straight from stored calls."""
    return activity((rep_of(call), DayFigures.of_call(call)) for call in calls)
