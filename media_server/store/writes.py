"""What the journal writes beside an event: the call's row and transcript, kept up to date as the call goes.

A call is named by its team and id (the calls table's key). Each is an append or a small update of one call's
rows, never a re-save of the whole call. They are applied in the transaction that stores the event they come with
(``Store.commit``), in the order the events were emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from media_server.store.records import (
    CallRecord,
    ChannelRecord,
    ConsentChangeRecord,
    ParticipantRecord,
    SegmentRecord,
    SpeakerRecord,
)


@dataclass(frozen=True)
class CallOpened:
    """``call_started``: the call's row, ``live``, held by ``node``; each participant's consent as the call's
    platform gave it starts the consent history."""

    record: CallRecord
    node: str


@dataclass(frozen=True)
class SegmentsKept:
    """A final: the segments the call keeps of it (one per speaker on a diarized channel)."""

    team: str
    call_id: str
    segments: list[SegmentRecord]


@dataclass(frozen=True)
class CallChanged:
    """``call_updated``: who is on the call (consent), its channels and metadata; ``erased``: channels whose
    transcript so far is no longer kept (a voice on them withdrew consent)."""

    team: str
    call_id: str
    participants: list[ParticipantRecord]
    channels: list[ChannelRecord]
    metadata: dict[str, str]
    erased: list[int] = field(default_factory=list)
    consent_changes: list[ConsentChangeRecord] = field(default_factory=list)  # (kept in the consent history)


@dataclass(frozen=True)
class CallProgress:
    """A snapshot of the live call's figures: what a call cut short by a crash is closed with."""

    team: str
    call_id: str
    speakers: list[SpeakerRecord]
    metrics: dict[str, Any]
    keywords: list[str]


@dataclass(frozen=True)
class CallClosed:
    """``call_ended``: the call as it ended. ``relabelled``: diarized channels whose segments the end of the call
    relabelled (their stored segments are replaced by these)."""

    record: CallRecord
    relabelled: dict[int, list[SegmentRecord]] = field(default_factory=dict)
    time_zone: str = "UTC"  # the team's: the day its figures count for in the daily aggregates


Write = CallOpened | SegmentsKept | CallChanged | CallProgress | CallClosed
