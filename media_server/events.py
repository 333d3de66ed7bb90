"""Building events (defined in ``proto/media_server/v1/events.proto``) and their JSON form."""

from __future__ import annotations

import time
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from media_server.v1 import events_pb2 as pb

Event = pb.Event


def new_event(call_id: str, team: str, **payload: object) -> pb.Event:
    """An event with exactly one payload, e.g. ``new_event(cid, team, transcript=pb.Transcript(...))``.

    ``id`` and ``time`` are stamped by the bus when it is published.
    """
    if len(payload) != 1:
        raise ValueError("an event has exactly one payload")
    ((kind, message),) = payload.items()
    event = pb.Event(type=kind, call_id=call_id, team=team)
    getattr(event, kind).CopyFrom(message)
    return event


def stamp(event: pb.Event, event_id: int, now: float | None = None) -> None:
    event.id = event_id
    micros = time.time_ns() // 1000 if now is None else round(now * 1e6)
    event.time.FromMicroseconds(micros)


def events_lost(call_id: str | None, team: str, left_out: int, limit: int) -> pb.Event:
    """The notice (id 0) a resuming subscriber gets first when older events matched than a resume sends."""
    gap = new_event(
        call_id or "",
        team,
        error=pb.Error(
            code="events_lost",
            message=f"{left_out} older events are not replayed (at most {limit}); read the calls' history for them",
        ),
    )
    stamp(gap, 0)
    return gap


def to_json(event: pb.Event) -> str:
    """The protobuf JSON mapping, with fields at their default value spelled out (``isFinal: false``)."""
    return json_format.MessageToJson(event, indent=None, always_print_fields_with_no_presence=True, ensure_ascii=False)


def to_dict(message: Message) -> dict[str, Any]:
    """A payload in the same JSON mapping as ``to_json``, as a dict (for REST answers)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def from_json(text: str) -> pb.Event:
    return json_format.Parse(text, pb.Event(), ignore_unknown_fields=True)
