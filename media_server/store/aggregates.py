"""Anonymised daily aggregates: a call's figures (:class:`DayFigures`) add up, and the store keeps their sums per
team, day (in the team's time zone) and rep (``daily_aggregates``), written as each call ends and updated when
its disposition changes later. They hold no customer data and no transcript, and stay when calls are deleted,
erased or purged. ``media_server/insights/activity.py`` reads them per rep."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from media_server.store.records import CallRecord


@dataclass
class DayFigures:
    """Sums of the figures of some calls (one rep's on one day, or any other group): everything adds up."""

    calls: int = 0
    call_time: float = 0.0  # seconds of calls
    talk_time: float = 0.0  # seconds the rep talked
    questions: int = 0  # questions the rep asked
    ratio_sum: float = 0.0  # talk ratios of the calls that have one
    ratio_n: int = 0
    monologue_sum: float = 0.0  # longest monologue of each call with metrics
    monologue_n: int = 0
    patience_sum: float = 0.0
    patience_n: int = 0
    tracker_hits: dict[str, int] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)
    cues: dict[str, int] = field(default_factory=dict)  # coaching cues given, by kind

    @classmethod
    def of_call(cls, call: CallRecord) -> DayFigures:
        m = call.metrics
        out = cls(calls=1, call_time=call.duration)
        out.talk_time = float((m.get("talkTime") or {}).get("rep", 0.0))
        out.questions = int((m.get("questions") or {}).get("rep", 0))
        if m.get("talkRatio") is not None:
            out.ratio_sum, out.ratio_n = float(m["talkRatio"]), 1
        if m:
            out.monologue_sum, out.monologue_n = float(m.get("longestMonologue") or 0.0), 1
        if m.get("patience") is not None:
            out.patience_sum, out.patience_n = float(m["patience"]), 1
        out.tracker_hits = {name: int(n) for name, n in (m.get("trackerHits") or {}).items()}
        if call.disposition:
            out.dispositions = {call.disposition: 1}
        out.cues = {kind: int(n) for kind, n in (m.get("cues") or {}).items()}
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DayFigures:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def add(self, other: DayFigures, sign: int = 1) -> None:
        self.calls += sign * other.calls
        self.call_time += sign * other.call_time
        self.talk_time += sign * other.talk_time
        self.questions += sign * other.questions
        self.ratio_sum += sign * other.ratio_sum
        self.ratio_n += sign * other.ratio_n
        self.monologue_sum += sign * other.monologue_sum
        self.monologue_n += sign * other.monologue_n
        self.patience_sum += sign * other.patience_sum
        self.patience_n += sign * other.patience_n
        pairs = (
            (self.tracker_hits, other.tracker_hits),
            (self.dispositions, other.dispositions),
            (self.cues, other.cues),
        )
        for target, source in pairs:
            for name, n in source.items():
                target[name] = target.get(name, 0) + sign * n
                if target[name] <= 0:
                    del target[name]


def rep_of(call: CallRecord) -> str:
    rep = next((p for p in call.participants if p.role == "rep"), None)
    return (rep.id or rep.email or rep.name) if rep is not None else ""


def day_of(started_at: datetime, time_zone: str = "UTC") -> str:
    """The day a call belongs to: the day it started, in the team's time zone."""
    return started_at.astimezone(ZoneInfo(time_zone)).date().isoformat()
