"""A team's configuration, validated: what its calls track, which cues its reps get, what is redacted.

Set through ``PUT /v1/team/config`` (admin keys), read by every call of the team when it starts. The
defaults are the thresholds the sales-analytics vendors publish (README, "Conversation intelligence"):
a rep talking over 65 % of the time, a monologue over 90 s, faster than 190 words per minute.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

GrantRole = Literal["admin", "manager", "rep", "ingest"]
CATEGORIES = ("competitors", "pricing", "objections", "next_steps", "custom")
REDACTION_TYPES = ("card", "cvv", "expiry", "ssn", "phone", "email")
ENTITY_LABELS = ("PERSON", "ORG", "MONEY", "DATE")

Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tracker(_Strict):
    """Phrases whose mention is worth knowing, matched on final transcripts whatever their inflection."""

    name: str = Field(description="shown with every hit, e.g. 'Zorvexa' or 'discount'")
    category: str = Field("custom", description=f"one of {', '.join(CATEGORIES)}")
    phrases: list[Phrase] = Field(min_length=1, max_length=200)
    boost: bool = Field(True, description="also favour the phrases in the recogniser (keyterms)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a tracker name is 1-64 letters, digits, spaces, '.', '_' or '-'")
        return value

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, not {value!r}")
        return value


class Battlecard(_Strict):
    """What a rep sees when a competitor tracker fires."""

    tracker: str = Field(description="the name of a tracker of category 'competitors'")
    text: str = Field(min_length=1, max_length=2000)


class Thresholds(_Strict):
    talk_ratio: float = Field(0.65, gt=0, lt=1, description="rep share of talk time over the window")
    talk_ratio_window_s: float = Field(120.0, ge=10, le=3600)
    talk_ratio_min_talk_s: float = Field(20.0, ge=0, description="no ratio cue before this much talk in the window")
    monologue_s: float = Field(90.0, ge=5, le=3600, description="rep speaking without the customer saying a word")
    words_per_minute: float = Field(190.0, ge=60, le=400, description="rep pace over the last utterances")
    silence_s: float = Field(10.0, ge=2, le=600, description="nobody speaking")
    no_question_s: float = Field(180.0, ge=10, le=3600, description="the rep has not asked a question for this long")
    filler_rate: float = Field(0.06, gt=0, le=1, description="share of the rep's words that are fillers")
    filler_min_words: int = Field(50, ge=10, description="rep words before the filler rate is judged")
    interruption_overlap_s: float = Field(0.3, ge=0.05, le=5, description="overlap that counts as an interruption")
    cooldown_s: float = Field(60.0, ge=0, le=3600, description="the same cue is not repeated sooner")


class DispositionRule(_Strict):
    """At the end of a call: if this tracker was hit, the call gets this disposition (first rule that applies)."""

    tracker: str
    disposition: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Retention(_Strict):
    """How long the team's data is kept, in days after a call ended (0: kept). A call on legal hold is kept."""

    transcripts_days: int = Field(
        0, ge=0, le=36500, description="a call's transcript (segments, words, its events) is removed this long after"
    )
    calls_days: int = Field(
        0, ge=0, le=36500, description="the whole call (its log: participants, metadata, metrics) is removed"
    )
    audit_days: int = Field(0, ge=0, le=36500, description="access and listen-in audit records are removed")


class TeamConfig(_Strict):
    trackers: list[Tracker] = Field(default_factory=list, max_length=500)
    battlecards: list[Battlecard] = Field(default_factory=list, max_length=500)
    thresholds: Thresholds = Thresholds()
    redaction: list[str] = Field(default_factory=lambda: list(REDACTION_TYPES), description="types redacted")
    entities: list[str] = Field(default_factory=lambda: list(ENTITY_LABELS), description="named entities reported")
    fillers: list[Phrase] = Field(default_factory=lambda: ["um", "uh", "erm", "you know", "like", "i mean", "sort of"])
    dispositions: list[DispositionRule] = Field(default_factory=list, max_length=100)
    retention: Retention = Retention()
    time_zone: str = Field("UTC", description="IANA name, e.g. Europe/Berlin: the days daily figures count by")
    phone_region: str = Field(
        "US", description="where a phone number without a country code was dialled (erasure, lookup): ISO 3166 code"
    )
    consent_grant: list[GrantRole] = Field(
        default_factory=lambda: list[GrantRole](["admin", "ingest"]),
        description="roles whose keys may grant a participant's consent (or set it back to unknown) on a live "
        "call; every role may withdraw it (deny). The platform that sends the call (its metadata) always may",
    )

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("phone_region")
    @classmethod
    def _phone_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}: a two-letter country code such as US or DE")
        return value.upper()

    @field_validator("redaction")
    @classmethod
    def _redaction(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(REDACTION_TYPES))
        if unknown:
            raise ValueError(f"unknown redaction types {unknown}; valid: {', '.join(REDACTION_TYPES)}")
        return list(dict.fromkeys(value))

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ENTITY_LABELS))
        if unknown:
            raise ValueError(f"unknown entity labels {unknown}; valid: {', '.join(ENTITY_LABELS)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _references(self) -> TeamConfig:
        names = [t.name for t in self.trackers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tracker names must be unique: {duplicates} appear more than once")
        for rule in self.dispositions:
            if rule.tracker not in names:
                raise ValueError(f"disposition rule for {rule.tracker!r}: no tracker has that name")
        competitors = {t.name for t in self.trackers if t.category == "competitors"}
        for card in self.battlecards:
            if card.tracker not in competitors:
                raise ValueError(f"battlecard for {card.tracker!r}: no tracker of category 'competitors' has that name")
        return self

    def keyterms(self) -> list[str]:
        """The phrases the recogniser favours on this team's calls."""
        return list(dict.fromkeys(p for t in self.trackers if t.boost for p in t.phrases))

    def disposition(self, hits: dict[str, int]) -> str:
        """The disposition the team's rules give a call with these tracker hits ("" when none applies)."""
        return next((r.disposition for r in self.dispositions if hits.get(r.tracker)), "")

    def battlecard(self, tracker: str) -> str:
        return next((c.text for c in self.battlecards if c.tracker == tracker), "")
