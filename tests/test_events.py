"""Events and their JSON form (the protobuf JSON mapping) as websocket subscribers receive it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from media_server.events import from_json, new_event, stamp, to_json
from media_server.v1 import events_pb2 as pb

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def _transcript_event() -> pb.Event:
    event = new_event(
        "CA123",
        "acme",
        transcript=pb.Transcript(
            channel=0,
            speaker="rep",
            text="hello there",
            words=[pb.Word(word="hello", start=1.0, end=1.25, confidence=0.5)],
            start=1.0,
            end=1.5,
            segment=3,
        ),
    )
    stamp(event, 42, now=1_700_000_000.25)
    return event


def test_new_event_sets_type_from_the_payload() -> None:
    event = new_event("c1", "acme", dtmf=pb.Dtmf(channel=1, digit="5"))
    assert event.type == "dtmf"
    assert event.WhichOneof("payload") == "dtmf"
    assert (event.call_id, event.team, event.dtmf.digit) == ("c1", "acme", "5")
    assert event.id == 0 and not event.HasField("time")  # stamped by the bus


@pytest.mark.parametrize("payload", [{}, {"dtmf": pb.Dtmf(), "error": pb.Error()}])
def test_new_event_needs_exactly_one_payload(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one payload"):
        new_event("c1", "acme", **payload)


def test_stamp_sets_id_and_time() -> None:
    event = new_event("c1", "acme", error=pb.Error(code="x"))
    stamp(event, 7, now=1_700_000_000.5)
    assert event.id == 7
    assert event.time.ToDatetime(tzinfo=UTC) == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


def test_stamp_defaults_to_now() -> None:
    event = new_event("c1", "acme", error=pb.Error(code="x"))
    before = datetime.now(UTC)
    stamp(event, 1)
    after = datetime.now(UTC)
    assert before.timestamp() - 1 <= event.time.ToDatetime(tzinfo=UTC).timestamp() <= after.timestamp() + 1


def test_to_json_uses_camel_case_names() -> None:
    data = json.loads(to_json(_transcript_event()))
    assert data["callId"] == "CA123"
    assert data["type"] == "transcript"
    assert data["team"] == "acme"
    assert "isFinal" in data["transcript"]
    assert "call_id" not in data and "is_final" not in data["transcript"]


def test_to_json_spells_out_default_values() -> None:
    data = json.loads(to_json(_transcript_event()))
    transcript = data["transcript"]
    assert transcript["isFinal"] is False
    assert transcript["channel"] == 0
    assert transcript["confidence"] == 0
    assert transcript["segment"] == 3
    assert transcript["words"] == [{"word": "hello", "start": 1.0, "end": 1.25, "confidence": 0.5, "speaker": ""}]
    # Only the payload that is set appears.
    assert not {"callStarted", "callEnded", "error", "dtmf", "speechStarted"} & data.keys()


def test_to_json_id_is_a_string_and_time_rfc3339() -> None:
    data = json.loads(to_json(_transcript_event()))
    assert data["id"] == "42"
    assert RFC3339_UTC.match(data["time"]), data["time"]
    when = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", data["time"]).replace("Z", "+00:00"))
    assert abs(when.timestamp() - 1_700_000_000.25) < 1e-5


def test_large_ids_survive_json() -> None:
    event = new_event("c1", "acme", dtmf=pb.Dtmf(digit="1"))
    stamp(event, 2**63 + 5)
    data = json.loads(to_json(event))
    assert data["id"] == str(2**63 + 5)  # a string, so JavaScript clients do not lose precision
    assert from_json(to_json(event)).id == 2**63 + 5


def test_to_json_is_one_line_and_keeps_unicode() -> None:
    event = new_event("c1", "acme", transcript=pb.Transcript(text="¿qué tal? – 你好"))
    stamp(event, 1)
    text = to_json(event)
    assert "\n" not in text
    assert "¿qué tal? – 你好" in text


def test_call_started_json() -> None:
    event = new_event(
        "c1",
        "acme",
        call_started=pb.CallStarted(
            source="twilio",
            participants=[pb.Participant(role="rep", consent=pb.CONSENT_GRANTED, transcribed=True)],
            channels=[pb.Channel(index=0, speaker="rep", sample_rate=8000, transcribed=True)],
            metadata={"campaign": "spring"},
        ),
    )
    stamp(event, 1)
    data = json.loads(to_json(event))
    started = data["callStarted"]
    assert data["type"] == "call_started"
    assert started["participants"][0]["consent"] == "CONSENT_GRANTED"
    assert started["participants"][0]["transcribed"] is True
    assert started["channels"] == [
        {"index": 0, "speaker": "rep", "sampleRate": 8000, "transcribed": True, "onHold": False}
    ]
    assert started["metadata"] == {"campaign": "spring"}


@pytest.mark.parametrize(
    "payload",
    [
        {"call_started": pb.CallStarted(source="l16", metadata={"a": "b"})},
        {"call_ended": pb.CallEnded(status="completed", reason="stop", duration=12.5)},
        {"error": pb.Error(code="events_lost", message="3 events before id 9 are no longer buffered")},
        {"dtmf": pb.Dtmf(channel=1, digit="#")},
        {"speech_started": pb.SpeechStarted(channel=1, speaker="customer", start=2.5)},
    ],
)
def test_from_json_round_trip(payload: dict[str, object]) -> None:
    event = new_event("c1", "acme", **payload)
    stamp(event, 99, now=1_700_000_000.125)
    back = from_json(to_json(event))
    assert back == event
    assert back.WhichOneof("payload") == event.type


def test_from_json_round_trip_transcript() -> None:
    event = _transcript_event()
    assert from_json(to_json(event)) == event


def test_from_json_ignores_unknown_fields() -> None:
    back = from_json('{"id": "3", "type": "dtmf", "callId": "c", "dtmf": {"digit": "5"}, "addedLater": true}')
    assert (back.id, back.type, back.call_id, back.dtmf.digit) == (3, "dtmf", "c", "5")


def test_from_json_accepts_snake_case_names_too() -> None:
    back = from_json('{"id": "3", "call_id": "c", "transcript": {"is_final": true}}')
    assert back.call_id == "c" and back.transcript.is_final is True
