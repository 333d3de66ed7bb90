"""A call as others see it: its events (protobuf, ``proto/media_server/v1/events.proto``), the dashboard's JSON
(``/v1/live``) and the stored record. The only place the call's types meet those formats.

Consent is ``calls.metadata.Consent`` inside the server; events spell it as the protobuf enum
(``CONSENT_GRANTED``), REST and the store as its value (``"granted"``): both as existing clients know them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from media_server.calls.consent import identity_kept, metadata_kept
from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, Role
from media_server.calls.transcript import Heard, Segment, Transcript
from media_server.insights.cues import Cue
from media_server.insights.live import CallInsights
from media_server.insights.trackers import Match
from media_server.store.records import CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord, SpeakerRecord
from media_server.v1 import api_pb2
from media_server.v1 import events_pb2 as pb

CONSENT_PB = {
    Consent.GRANTED: pb.CONSENT_GRANTED,
    Consent.DENIED: pb.CONSENT_DENIED,
    Consent.UNKNOWN: pb.CONSENT_UNKNOWN,
}
CONSENT_OF_PB: dict[int, Consent] = {value: consent for consent, value in CONSENT_PB.items()}


class ChannelView(Protocol):
    """What the views show of a channel (``calls.call.CallChannel``)."""

    @property
    def index(self) -> int: ...
    @property
    def speaker(self) -> str: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def transcribed(self) -> bool: ...
    @property
    def on_hold(self) -> bool: ...


class CallView(Protocol):
    """What the dashboard and the store see of a call (``calls.call.Call``)."""

    @property
    def id(self) -> str: ...
    @property
    def team(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def metadata(self) -> CallMetadata: ...
    @property
    def transcribed_roles(self) -> AbstractSet[Role]: ...
    @property
    def channels(self) -> Mapping[int, ChannelView]: ...
    @property
    def transcript(self) -> Transcript: ...
    @property
    def insights(self) -> CallInsights: ...
    @property
    def latest_cue(self) -> dict[str, Any] | None: ...
    @property
    def latest_keyword(self) -> dict[str, Any] | None: ...
    @property
    def taps(self) -> Sized: ...


# -- events ----------------------------------------------------------------------------------------------


def participant_pb(p: ParticipantInfo, transcribed: bool) -> pb.Participant:
    kept = identity_kept(p, transcribed)
    return pb.Participant(
        role=p.role.value,
        id=kept.id,
        name=kept.name,
        phone=kept.phone,
        email=kept.email,
        consent=CONSENT_PB[p.consent],
        transcribed=transcribed,
    )


def channel_pb(c: ChannelView) -> pb.Channel:
    return pb.Channel(
        index=c.index, speaker=c.speaker, sample_rate=c.sample_rate, transcribed=c.transcribed, on_hold=c.on_hold
    )


def call_started(
    source: str, metadata: CallMetadata, transcribed_roles: AbstractSet[Role], channels: Iterable[ChannelView]
) -> pb.CallStarted:
    return pb.CallStarted(
        source=source,
        participants=[participant_pb(p, p.role in transcribed_roles) for p in metadata.participants],
        channels=[channel_pb(c) for c in channels],
        metadata=metadata_kept(metadata, transcribed_roles),
    )


def call_updated(
    metadata: CallMetadata, transcribed_roles: AbstractSet[Role], channels: Iterable[ChannelView]
) -> pb.CallUpdated:
    return pb.CallUpdated(
        participants=[participant_pb(p, p.role in transcribed_roles) for p in metadata.participants],
        channels=[channel_pb(c) for c in channels],
        metadata=metadata_kept(metadata, transcribed_roles),
    )


def speech_started(channel: int, speaker: str, start: float) -> pb.SpeechStarted:
    return pb.SpeechStarted(channel=channel, speaker=speaker, start=start)


def utterance_end(channel: int, speaker: str, last_word_end: float) -> pb.UtteranceEnd:
    return pb.UtteranceEnd(channel=channel, speaker=speaker, last_word_end=last_word_end)


def transcript(heard: Heard) -> pb.Transcript:
    return pb.Transcript(
        channel=heard.channel,
        speaker=heard.speaker,
        is_final=heard.final,
        text=heard.text,
        words=[
            pb.Word(word=w.word, start=w.start, end=w.end, confidence=w.confidence, speaker=label)
            for w, label in zip(heard.words, heard.labels, strict=True)
        ],
        start=heard.start,
        end=heard.end,
        segment=heard.segment,
        confidence=heard.confidence,
        stable_text=heard.stable_text,
        stability=heard.stability,
        speaker_label=heard.label,
        speech_final=heard.speech_final,
    )


def match(heard: Heard, m: Match) -> dict[str, Message]:
    """A tracker hit (``keyword_hit``) or an entity (``entity``) found in a final, as the event's payload."""
    if m.kind == "tracker":
        hit = pb.KeywordHit(
            channel=heard.channel,
            speaker=heard.speaker,
            keyword=m.name,
            category=m.category,
            start=m.start,
            end=m.end,
            segment=heard.segment,
            text=m.text,
            char_start=m.char_start,
            char_end=m.char_end,
        )
        return {"keyword_hit": hit}
    entity = pb.Entity(
        channel=heard.channel,
        speaker=heard.speaker,
        label=m.name,
        text=m.text,
        start=m.start,
        end=m.end,
        segment=heard.segment,
        char_start=m.char_start,
        char_end=m.char_end,
    )
    return {"entity": entity}


def cue(c: Cue, channel: int) -> pb.Cue:
    return pb.Cue(kind=c.kind, message=c.message, speaker=c.speaker, channel=channel, time=c.time, detail=c.detail)


def dtmf(channel: int, digit: str) -> pb.Dtmf:
    return pb.Dtmf(channel=channel, digit=digit)


def error(code: str, message: str) -> pb.Error:
    return pb.Error(code=code, message=message)


# -- the dashboard's JSON ---------------------------------------------------------------------------------


def snapshot(call: CallView) -> dict[str, Any]:
    """What the dashboard's wall shows of a live call, in the REST API's JSON shape."""
    talk = call.transcript.talk_time()
    spoken = talk.get("rep", 0.0) + talk.get("customer", 0.0)
    return {
        "id": call.id,
        "source": call.source,
        "startedAt": _iso(call.started_at),
        "duration": round(_seconds_since(call.started_at), 3),
        "participants": [
            {
                "role": p.role.value,
                "id": kept.id,
                "name": kept.name,
                "phone": kept.phone,
                "email": kept.email,
                "consent": p.consent.value,
                "transcribed": transcribed,
            }
            for p in call.metadata.participants
            for transcribed in (p.role in call.transcribed_roles,)
            for kept in (identity_kept(p, transcribed),)
        ],
        "channels": [
            {
                "index": c.index,
                "speaker": c.speaker,
                "sampleRate": c.sample_rate,
                "transcribed": c.transcribed,
                "onHold": c.on_hold,
            }
            for c in call.channels.values()
        ],
        "talkTime": talk,
        "talkRatio": round(talk.get("rep", 0.0) / spoken, 3)
        if spoken > 0 and call.insights.cues.customer_heard
        else None,
        "keywords": dict(call.insights.hits),
        "latestCue": call.latest_cue,
        "latestKeyword": call.latest_keyword,
        "listeners": len(call.taps),
        "metadata": metadata_kept(call.metadata, call.transcribed_roles),
    }


# -- the stored form ----------------------------------------------------------------------------------------


def participant_records(metadata: CallMetadata, transcribed_roles: AbstractSet[Role]) -> list[ParticipantRecord]:
    """Who is on the call, as the store keeps them (identity only where it may be kept)."""
    out = []
    for p in metadata.participants:
        transcribed = p.role in transcribed_roles
        kept = identity_kept(p, transcribed)
        out.append(
            ParticipantRecord(
                role=p.role.value,
                consent=p.consent.value,
                transcribed=transcribed,
                id=kept.id,
                name=kept.name,
                phone=kept.phone,
                email=kept.email,
            )
        )
    return out


def channel_records(channels: Iterable[ChannelView]) -> list[ChannelRecord]:
    return [ChannelRecord(c.index, c.speaker, c.sample_rate, c.transcribed) for c in channels]


def segment_record(s: Segment) -> SegmentRecord:
    words = [
        {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence, "speaker": label}
        for w, label in zip(s.words, s.labels, strict=True)
    ]
    return SegmentRecord(s.channel, s.speaker, s.text, s.start, s.end, s.confidence, words)


def opened(call: CallView) -> CallRecord:
    """The call's row as it is stored when it starts (``live``, nothing said yet)."""
    return CallRecord(
        id=call.id,
        team=call.team,
        source=call.source,
        status="live",
        end_reason="",
        started_at=call.started_at,
        ended_at=None,
        participants=participant_records(call.metadata, call.transcribed_roles),
        channels=channel_records(call.channels.values()),
        metadata=metadata_kept(call.metadata, call.transcribed_roles),
    )


def speaker_records(segments: Iterable[SegmentRecord]) -> list[SpeakerRecord]:
    """Talk time and word count per speaker."""
    speakers: dict[str, SpeakerRecord] = {}
    for s in segments:
        stats = speakers.setdefault(s.speaker, SpeakerRecord(s.speaker, 0.0, 0))
        stats.talk_time += max(0.0, s.end - s.start)
        stats.word_count += len(s.words) or len(s.text.split())
    for stats in speakers.values():
        stats.talk_time = round(stats.talk_time, 3)
    return list(speakers.values())


def record(call: CallView, status: str, reason: str) -> CallRecord:
    segments = [segment_record(s) for s in call.transcript.segments()]
    metrics = call.insights.metrics(_seconds_since(call.started_at))
    return CallRecord(
        id=call.id,
        team=call.team,
        source=call.source,
        status=status,
        end_reason=reason,
        started_at=call.started_at,
        ended_at=datetime.now(UTC),
        participants=participant_records(call.metadata, call.transcribed_roles),
        channels=channel_records(call.channels.values()),
        segments=segments,
        speakers=speaker_records(segments),
        metadata=metadata_kept(call.metadata, call.transcribed_roles),
        keywords=sorted(call.insights.hits),
        metrics=metrics.to_json(),
        disposition=metrics.disposition,
    )


# -- stored calls over gRPC --------------------------------------------------------------------------------


def stored_participant_pb(p: ParticipantRecord) -> pb.Participant:
    return pb.Participant(
        role=p.role,
        id=p.id,
        name=p.name,
        phone=p.phone,
        email=p.email,
        consent=CONSENT_PB.get(Consent(p.consent), pb.CONSENT_UNKNOWN),
        transcribed=p.transcribed,
    )


def stored_channel_pb(c: ChannelRecord) -> pb.Channel:
    return pb.Channel(index=c.index, speaker=c.speaker, sample_rate=c.sample_rate, transcribed=c.transcribed)


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def stored_call_pb(record: CallRecord, transcript: bool = False) -> api_pb2.StoredCall:
    """A stored call as the gRPC API answers ``GetCall`` / ``ListCalls`` (with its transcript for ``GetCall``)."""
    out = api_pb2.StoredCall(
        id=record.id,
        team=record.team,
        source=record.source,
        status=record.status,
        end_reason=record.end_reason,
        started_at=_timestamp(record.started_at),
        ended_at=None if record.ended_at is None else _timestamp(record.ended_at),
        duration=round(record.duration, 3),
        participants=[stored_participant_pb(p) for p in record.participants],
        channels=[stored_channel_pb(c) for c in record.channels],
        speakers=[
            pb.SpeakerStats(speaker=s.speaker, talk_time=s.talk_time, word_count=s.word_count) for s in record.speakers
        ],
        metadata=record.metadata,
        keywords=record.keywords,
        metrics=json_format.ParseDict(record.metrics, pb.CallMetrics(), ignore_unknown_fields=True),
        disposition=record.disposition,
        snippet=record.snippet,
    )
    if transcript:
        for s in record.segments:
            out.transcript.append(
                api_pb2.Segment(
                    channel=s.channel,
                    speaker=s.speaker,
                    text=s.text,
                    start=s.start,
                    end=s.end,
                    confidence=s.confidence,
                    words=[
                        pb.Word(
                            word=w.get("word", ""),
                            start=w.get("start", 0.0),
                            end=w.get("end", 0.0),
                            confidence=w.get("confidence", 0.0),
                            speaker=w.get("speaker", ""),
                        )
                        for w in s.words
                    ],
                )
            )
    return out


def _seconds_since(start: datetime) -> float:
    return (datetime.now(UTC) - start).total_seconds()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
