"""Activity per rep over a time window, from stored calls: the call log a CRM export uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from media_server.store.records import CallRecord


@dataclass
class RepActivity:
    rep: str
    calls: int = 0
    call_time: float = 0.0  # seconds of calls
    talk_time: float = 0.0  # seconds the rep talked
    questions: int = 0
    _ratios: list[float] = field(default_factory=list)
    _monologues: list[float] = field(default_factory=list)
    _patience: list[float] = field(default_factory=list)
    tracker_hits: dict[str, int] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 3) if values else None

        return {
            "rep": self.rep,
            "calls": self.calls,
            "callTime": round(self.call_time, 3),
            "talkTime": round(self.talk_time, 3),
            "averageDuration": round(self.call_time / self.calls, 3) if self.calls else None,
            "averageTalkRatio": mean(self._ratios),
            "averageLongestMonologue": mean(self._monologues),
            "averagePatience": mean(self._patience),
            "questionsAsked": self.questions,
            "questionsPerCall": round(self.questions / self.calls, 2) if self.calls else None,
            "trackerHits": self.tracker_hits,
            "dispositions": self.dispositions,
        }


def rep_of(call: CallRecord) -> str:
    rep = next((p for p in call.participants if p.role == "rep"), None)
    return (rep.id or rep.email or rep.name) if rep is not None else ""


def activity(calls: Sequence[CallRecord]) -> list[RepActivity]:
    """One entry per rep (by id, else email, else name; "" for calls without one), most calls first."""
    reps: dict[str, RepActivity] = {}
    for call in calls:
        a = reps.setdefault(rep_of(call), RepActivity(rep_of(call)))
        m = call.metrics
        a.calls += 1
        a.call_time += call.duration
        a.talk_time += float((m.get("talkTime") or {}).get("rep", 0.0))
        a.questions += int((m.get("questions") or {}).get("rep", 0))
        if m.get("talkRatio") is not None:
            a._ratios.append(float(m["talkRatio"]))
        if m:
            a._monologues.append(float(m.get("longestMonologue") or 0.0))
        if m.get("patience") is not None:
            a._patience.append(float(m["patience"]))
        for name, n in (m.get("trackerHits") or {}).items():
            a.tracker_hits[name] = a.tracker_hits.get(name, 0) + int(n)
        if call.disposition:
            a.dispositions[call.disposition] = a.dispositions.get(call.disposition, 0) + 1
    return sorted(reps.values(), key=lambda a: (-a.calls, a.rep))
