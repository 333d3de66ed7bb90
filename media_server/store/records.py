"""What a finalized call is, as the store keeps it and the REST API returns it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class ParticipantRecord:
    role: str
    consent: str
    transcribed: bool
    id: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""


@dataclass
class ChannelRecord:
    index: int
    speaker: str
    sample_rate: int
    transcribed: bool


@dataclass
class SegmentRecord:
    channel: int
    speaker: str
    text: str
    start: float
    end: float
    confidence: float
    words: list[dict[str, Any]] = field(default_factory=list)  # {"word", "start", "end", "confidence", "speaker"}


@dataclass
class SpeakerRecord:
    speaker: str
    talk_time: float
    word_count: int


@dataclass
class ConsentChangeRecord:
    """One change of a participant's consent: ``previous`` is "" at the call's start; ``by_key`` "" is the call's
    platform (``by_label`` names it)."""

    participant: str
    previous: str
    consent: str
    source: str  # call_start | metadata | api | grpc
    at: datetime
    by_key: str = ""
    by_label: str = ""
    by_role: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "from": self.previous or None,
            "to": self.consent,
            "source": self.source,
            "by": {"keyId": self.by_key or None, "label": self.by_label, "role": self.by_role},
            "at": _iso(self.at),
        }


@dataclass
class CallRecord:
    id: str
    team: str
    source: str
    status: str  # "live" | "completed" | "interrupted"
    end_reason: str
    started_at: datetime
    ended_at: datetime | None  # None while live
    participants: list[ParticipantRecord] = field(default_factory=list)
    channels: list[ChannelRecord] = field(default_factory=list)
    segments: list[SegmentRecord] = field(default_factory=list)
    speakers: list[SpeakerRecord] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    keywords: list[str] = field(default_factory=list)  # the tracked phrases said in the call
    metrics: dict[str, Any] = field(default_factory=dict)  # CallMetrics.to_json()
    disposition: str = ""
    snippet: str = ""  # a search result's text around the match (not stored)
    consent_history: list[ConsentChangeRecord] = field(default_factory=list)  # (read with the detail)
    legal_hold: bool = False  # kept from retention's purge and erasure

    @property
    def duration(self) -> float:
        """Seconds from start to end; of a live call, so far."""
        end = self.ended_at if self.ended_at is not None else datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds())

    def summary(self) -> dict[str, Any]:
        """The list view: everything but the transcript."""
        return {
            "id": self.id,
            "team": self.team,
            "source": self.source,
            "status": self.status,
            "endReason": self.end_reason,
            "startedAt": _iso(self.started_at),
            "endedAt": None if self.ended_at is None else _iso(self.ended_at),
            "duration": round(self.duration, 3),
            "participants": [asdict(p) for p in self.participants],
            "channels": [
                {
                    "index": c.index,
                    "speaker": c.speaker,
                    "sampleRate": c.sample_rate,
                    "transcribed": c.transcribed,
                }
                for c in self.channels
            ],
            "speakers": [
                {"speaker": s.speaker, "talkTime": round(s.talk_time, 3), "wordCount": s.word_count}
                for s in self.speakers
            ],
            "metadata": self.metadata,
            "keywords": self.keywords,
            "metrics": self.metrics,
            "disposition": self.disposition,
            "legalHold": self.legal_hold,
            **({"snippet": self.snippet} if self.snippet else {}),
        }

    def detail(self) -> dict[str, Any]:
        out = self.summary()
        out["transcript"] = [
            {
                "channel": s.channel,
                "speaker": s.speaker,
                "text": s.text,
                "start": s.start,
                "end": s.end,
                "confidence": s.confidence,
                "words": s.words,
            }
            for s in self.segments
        ]
        out["consentHistory"] = [c.to_json() for c in self.consent_history]
        return out


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class ListenRecord:
    """One listen-in, as the audit log keeps it."""

    id: int
    team: str
    call_id: str
    key_id: str
    key_label: str
    key_role: str
    channel: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str

    def to_json(self) -> dict[str, Any]:
        duration = None if self.ended_at is None else round((self.ended_at - self.started_at).total_seconds(), 3)
        return {
            "id": self.id,
            "callId": self.call_id,
            "keyId": self.key_id,
            "keyLabel": self.key_label,
            "role": self.key_role,
            "channel": self.channel,
            "startedAt": _iso(self.started_at),
            "endedAt": None if self.ended_at is None else _iso(self.ended_at),
            "duration": duration,
            "endReason": self.end_reason,
        }


@dataclass
class AccessRecord:
    """One entry of the access audit: who (key), what (action, call, target), how (via, from where), when."""

    team: str
    action: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key_id: str = ""
    key_label: str = ""
    key_role: str = ""
    call_id: str = ""
    target: str = ""
    via: str = ""
    remote: str = ""
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": _iso(self.at),
            "action": self.action,
            "by": {"keyId": self.key_id or None, "label": self.key_label, "role": self.key_role},
            "callId": self.call_id or None,
            "target": self.target or None,
            "via": self.via,
            "remote": self.remote or None,
        }
