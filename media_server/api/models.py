"""The REST API's contract: what each route answers (``response_model``), the bodies the routes read by hand, and
the errors they answer with, as ``/openapi.json`` (and ``/docs``) describe them.

The models mirror the JSON the routes build (``CallRecord.summary()``, ``ApiKey.to_json()``, ...): the routes
return those dicts and FastAPI checks them against these models, so a change to one without the other fails
(``tests/test_openapi.py`` checks real answers against the published schema). Field names are camelCase on the
wire (``alias_generator``). Every model keeps keys it does not declare (``extra="allow"``) rather than dropping
them, and routes whose answers leave keys out declare ``response_model_exclude_unset``, so the JSON clients get is
exactly what the route built.

Websockets and gRPC cannot be described here: ``docs/api.md``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from media_server.teams.config import TeamConfig

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""ISO 8601 in UTC, ``Z``-suffixed: ``2026-11-20T15:00:00.123456Z``."""
Seconds = Annotated[float, Field(description="seconds")]


class Out(BaseModel):
    """A JSON object the server answers with: camelCase keys; keys it does not declare are kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class Open(Out):
    """An object whose keys are open-ended (figures that grow with the server)."""


# -- errors -------------------------------------------------------------------------------------------------------


class Problem(BaseModel):
    """An error: ``{"detail": "no such call"}`` (FastAPI's ``HTTPException``)."""

    detail: str = Field(description="what is wrong, in a sentence")


class ConfigProblem(Out):
    message: str = Field(description="invalid team configuration")
    errors: list[str] = Field(description="one line per problem: `trackers[0].category: category must be ...`")


class InvalidConfig(BaseModel):
    """``PUT /v1/team/config`` with a configuration that does not validate (nothing of it is applied)."""

    detail: ConfigProblem | str


ERRORS: dict[int, str] = {
    400: "the request is invalid (the body or a parameter; `detail` says which)",
    401: "missing or invalid API key (`WWW-Authenticate: Bearer`)",
    403: "the key's role may not do this, or the call or person is not the key's team's to change",
    404: "no such call (or key, webhook, session) in the key's team",
    409: "the request conflicts with the resource's state (`detail` says why)",
    503: "the server cannot serve this now (starting, shutting down, at capacity): try again after `Retry-After`",
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that answers these error statuses, each ``{"detail": "..."}``;
    ``described``: a route's own wording (``_404="no such webhook"``)."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}  # (JSON, whatever the
    # route's own answer is: api/openapi.py adds Problem to the components)
    return {code: {"description": described.get(f"_{code}", ERRORS[code]), "content": content} for code in codes}


AUTH = errors(401, 403)
"""Every route behind a key: a missing, invalid, revoked or expired key, or a role that may not."""


# -- calls --------------------------------------------------------------------------------------------------------


class Participant(Out):
    """A person on the call; their identity only where it may be kept (they consented, or were not transcribed)."""

    role: str = Field(description="rep | customer")
    consent: str = Field(description="granted | denied | unknown")
    transcribed: bool = Field(description="what they say is transcribed (their consent allows it)")
    id: str = Field(description="the platform's id of the person ('' when not given or not kept)")
    name: str
    phone: str = Field(description="E.164 where the number parsed")
    email: str


class Channel(Out):
    index: int = Field(description="the audio channel (0: the first)")
    speaker: str = Field(description="who speaks on it: rep, customer, or mixed (both, diarized)")
    sample_rate: int = Field(description="Hz")
    transcribed: bool


class LiveChannel(Channel):
    on_hold: bool = Field(description="the channel is on hold (its silence is not the speaker's)")


class Speaker(Out):
    speaker: str
    talk_time: Seconds
    word_count: int


class CallMetrics(Open):
    """The call's conversation figures (all absent while a live call has said nothing yet)."""

    talk_time: dict[str, float] | None = Field(None, description="seconds spoken per speaker")
    talk_ratio: float | None = Field(None, description="the rep's share of the talk time (0-1)")
    longest_monologue: float | None = Field(None, description="the rep's longest stretch, seconds")
    longest_customer_story: float | None = Field(None, description="the customer's longest stretch, seconds")
    interactivity: float | None = Field(None, description="speaker switches per minute")
    patience: float | None = Field(None, description="seconds the rep waits before answering, on average")
    questions: dict[str, int] | None = Field(None, description="questions asked per speaker")
    words_per_minute: dict[str, float] | None = None
    interruptions: dict[str, int] | None = None
    filler_rate: dict[str, float] | None = None
    tracker_hits: dict[str, int] | None = Field(None, description="tracker name: times said")
    disposition: str | None = None
    cues: dict[str, int] | None = Field(None, description="cue kind: times given")


class CallSummary(Out):
    """A stored call without its transcript (``GET /v1/calls``)."""

    id: str
    team: str
    source: str = Field(description="the ingest protocol: twilio, telnyx, l16, audiosocket, siprec, whip, ...")
    status: str = Field(description="live | completed | interrupted")
    end_reason: str = Field(description="why it ended ('' while live): stop, hangup, idle, shutdown, ...")
    started_at: Timestamp
    ended_at: Timestamp | None = Field(description="null while live")
    duration: Seconds = Field(description="seconds from start to end; of a live call, so far")
    participants: list[Participant]
    channels: list[Channel]
    speakers: list[Speaker]
    metadata: dict[str, Any] = Field(description="the call's free-form metadata as the platform sent it")
    keywords: list[str] = Field(description="the tracked phrases said in the call")
    metrics: CallMetrics
    disposition: str = Field(description="the outcome set by a key or a team rule ('' when none)")
    legal_hold: bool = Field(description="kept from the team's retention and from erasure")
    snippet: str | None = Field(None, description="search results only: the text around the match")


class Word(Open):
    word: str
    start: Seconds
    end: Seconds
    confidence: float
    speaker: str | None = None


class Segment(Out):
    """One final utterance."""

    channel: int
    speaker: str
    text: str
    start: Seconds = Field(description="seconds from the call's start")
    end: Seconds
    confidence: float
    words: list[Word]


class KeyRef(Out):
    """Who did something: the key (null: the call's platform), its label and role."""

    key_id: str | None
    label: str
    role: str


class ConsentChange(Out):
    participant: str = Field(description="rep | customer")
    from_: str | None = Field(alias="from", description="null at the call's start")
    to: str
    source: str = Field(description="call_start | metadata | api | grpc")
    by: KeyRef
    at: Timestamp


class CallDetail(CallSummary):
    """A stored call with its transcript (``GET /v1/calls/{id}``); a live call as stored so far."""

    transcript: list[Segment]
    consent_history: list[ConsentChange]


class CallList(Out):
    calls: list[CallSummary] = Field(description="newest first")
    next: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class DispositionBody(BaseModel):
    disposition: str = Field(min_length=1, max_length=64, examples=["meeting_booked"])


class DispositionSet(Out):
    id: str
    disposition: str
    live: bool = Field(description="the call is live: the disposition is stored when it ends")


class ConsentBody(BaseModel):
    role: str = Field(description="rep | customer")
    consent: Literal["granted", "denied", "unknown"]


class ConsentSet(Out):
    id: str
    live: bool
    participants: list[Participant]
    channels: list[Channel]
    segments_erased: int = Field(description="stored calls: the withdrawn participant's segments erased")


class LegalHoldBody(BaseModel):
    hold: bool


class LegalHoldSet(Out):
    id: str
    legal_hold: bool


# -- live ---------------------------------------------------------------------------------------------------------


class Me(Out):
    key_id: str
    team: str
    role: str = Field(description="admin | manager | rep | ingest")
    label: str
    can: dict[str, bool] = Field(
        description="what the key may do: ingest, read, delete, listen, audit, audit_access, erase, configure"
    )


class LiveCall(Out):
    """What the dashboard's wall shows of a live call."""

    id: str
    source: str
    started_at: Timestamp
    duration: Seconds
    participants: list[Participant]
    channels: list[LiveChannel]
    talk_time: dict[str, float] = Field(description="seconds spoken so far per speaker")
    talk_ratio: float | None = Field(description="the rep's share (null until the customer is heard)")
    keywords: dict[str, int] = Field(description="tracker hits so far")
    latest_cue: dict[str, Any] | None = Field(description="the last cue event's payload")
    latest_keyword: dict[str, Any] | None = Field(description="the last keyword_hit event's payload")
    listeners: int = Field(description="listen-in sessions on the call")
    metadata: dict[str, Any]
    node: str | None = Field(None, description="the server that holds the call, when it is another one (cluster)")


class LiveCalls(Out):
    last_event_id: int = Field(description="subscribe to `/v1/events?after=lastEventId` to keep the list current")
    calls: list[LiveCall] = Field(description="newest first")


# -- status -------------------------------------------------------------------------------------------------------


class SchedulerStatus(Open):
    queue_depth: int | None = None
    batches: int | None = None
    requests: int | None = None
    finals: int | None = None
    interims: int | None = None
    interims_dropped: int | None = None
    mean_batch_size: float | None = None
    mean_batch_seconds: float | None = None
    real_time_factor: float | None = Field(None, description="compute seconds per second of audio decoded")
    busy_fraction: float | None = Field(None, description="share of the last minute the device spent decoding")
    streams: int | None = Field(None, description="call channels being decoded now")
    streams_total: int | None = None


class Status(Out):
    """What the server is running and how it is doing (for the team's key: live calls are the team's)."""

    version: str
    model: str = Field(description="the streaming recogniser")
    final_model: str | None = Field(description="the recogniser of finals, when it is another one")
    device: str
    live_calls: int = Field(description="the key's team's live calls on this server")
    scheduler: SchedulerStatus
    diarization: dict[str, Any] | None = Field(description="mixed channels' speaker batcher; null: diarization off")
    listeners: list[dict[str, Any]] = Field(description="protocol listeners (gRPC, SIP, AudioSocket): port, ...")
    journal: dict[str, Any] = Field(description="the event write path: healthy, pending, lastId, batches, ...")
    event_loop: dict[str, Any] = Field(description="event-loop lag over the last minute (lagMsP50, lagMsP95, ...)")
    bus: dict[str, Any] = Field(description="the event bus: backend (memory | redis), healthy, subscribers, ...")
    workers: list[dict[str, Any]] | None = Field(description="remote recognition workers; null: in-process")
    cluster: dict[str, Any] | None = Field(description="this server's lease in a cluster; null: alone")


class Ready(Out):
    ready: Literal[True]
    live_calls: int = Field(description="live calls on this server")


class NotReady(Out):
    ready: Literal[False]
    reason: str = Field(description="starting, shutting down, storage failing, database unreachable, ...")
    pending_events: int | None = Field(None, description="events waiting to be stored (storage failing)")


class Alive(Out):
    status: Literal["ok"]


# -- keys ---------------------------------------------------------------------------------------------------------


class KeyInfo(Out):
    """A key of the team (never its secret)."""

    id: str = Field(description="the key's public id (`msk_<id>_...` is the secret)")
    team: str
    role: str = Field(description="admin | manager | rep | ingest")
    label: str
    created_at: Timestamp
    expires_at: Timestamp | None = Field(description="null: never")
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None = Field(description="to about a minute")
    rotated_from: str | None = Field(description="the key a rotation replaced")


class KeyList(Out):
    keys: list[KeyInfo] = Field(description="oldest first, revoked and expired ones too")


class KeyCreated(KeyInfo):
    key: str = Field(description="the secret, shown only in this answer")


class KeyRotated(KeyCreated):
    previous: KeyInfo = Field(description="the old key: revoked now, or expiring after `grace`")


# -- audit --------------------------------------------------------------------------------------------------------


class AccessEntry(Out):
    id: int
    at: Timestamp
    action: str = Field(description="read_call, search_calls, listen, consent_change, delete_call, key_create, ...")
    by: KeyRef
    call_id: str | None
    target: str | None = Field(description="what else the action was about (a search's query, ...)")
    via: str = Field(description="rest | websocket | grpc")
    remote: str | None = Field(description="the client's address")


class AccessLog(Out):
    entries: list[AccessEntry] = Field(description="newest first")
    next: int | None = Field(description="pass as `before` for the next page")


class ListenEntry(Out):
    id: int
    call_id: str
    key_id: str
    key_label: str
    role: str
    channel: str
    started_at: Timestamp
    ended_at: Timestamp | None
    duration: Seconds | None = Field(description="null while it goes on")
    end_reason: str


class ListenLog(Out):
    listens: list[ListenEntry]


# -- team ---------------------------------------------------------------------------------------------------------


class TeamConfigAnswer(Out):
    team: str
    config: TeamConfig


# -- people -------------------------------------------------------------------------------------------------------


class PersonBody(BaseModel):
    """Exactly one of these."""

    phone: str | None = Field(None, examples=["+1 555 123 0000"])
    email: str | None = None
    customer_id: str | None = Field(None, alias="customerId")
    rep: str | None = Field(None, description="the rep's id, e-mail or name")


class ErasureReceipt(Out):
    kind: str | None = Field(None, description="phone | email | customer_id | rep (the value is not kept)")
    calls: list[str] | None = Field(None, description="the calls the person was erased from")
    segments_removed: int | None = None
    held_calls: list[str] | None = Field(None, description="calls on legal hold, left alone")
    at: Timestamp | None = None
    live_calls: list[str] = Field(description="live calls whose channel of the person stopped being transcribed")
    bus_events_removed: int | None = None
    servers_not_reached: list[str] | None = Field(None, description="cluster servers whose live calls were not")


class PersonExport(Out):
    kind: str
    value: str
    calls: list[dict[str, Any]] = Field(description="per call: callId, startedAt, role, participant, said, ...")


# -- webhooks -----------------------------------------------------------------------------------------------------


class WebhookBody(BaseModel):
    url: str = Field(description="the receiver's https:// URL", examples=["https://crm.example.com/hooks/calls"])
    events: list[Literal["call_ended", "call_disposition"]] = ["call_ended"]
    include_transcript: bool = Field(False, alias="includeTranscript")
    description: str = Field("", max_length=256)


class WebhookInfo(Out):
    id: str
    url: str
    events: list[str]
    include_transcript: bool
    description: str
    created_at: Timestamp
    created_by: str | None


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="the signing secret (`whsec_...`), shown only in this answer")


class WebhookList(Out):
    webhooks: list[WebhookInfo]


class Delivery(Out):
    id: int
    event: str
    call_id: str
    status: str = Field(description="pending | delivered | failed | gone")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    created_at: Timestamp
    delivered_at: Timestamp | None


class Deliveries(Out):
    deliveries: list[Delivery] = Field(description="newest first")
    next: int | None


# -- bodies the routes read themselves ----------------------------------------------------------------------------


BODIES: list[type[BaseModel]] = [
    Problem,
    DispositionBody,
    ConsentBody,
    LegalHoldBody,
    PersonBody,
    WebhookBody,
    TeamConfig,
]
"""Models whose schemas ``api/openapi.py`` adds to the components: the error, and the bodies of routes that parse
their body themselves (to answer 400 with their own message), whose ``openapi_extra`` names them (:func:`body`)."""


def body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` of a route that reads a JSON body of ``model`` by hand."""
    assert model in BODIES, model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


class SdpAnswer(Response):
    """The ``response_class`` of a route that answers an SDP offer (WHEP/WHIP): its answer, ``application/sdp``."""

    media_type = "application/sdp"


SDP_OFFER: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "an SDP offer (`Content-Type: application/sdp`)",
        "content": {"application/sdp": {"schema": {"type": "string"}}},
    }
}


# -- rep activity (``/v1/reps/activity``) -------------------------------------------------------------------------


class ActivityFigures(Out):
    """A rep's (or the team's) figures over a window, from the anonymised daily aggregates."""

    calls: int
    call_time: Seconds
    talk_time: Seconds
    average_duration: float | None = Field(description="seconds; null without calls")
    average_talk_ratio: float | None
    average_longest_monologue: float | None = Field(description="seconds")
    average_patience: float | None = Field(description="seconds")
    questions_asked: int
    questions_per_call: float | None
    tracker_hits: dict[str, int]
    dispositions: dict[str, int]
    cues: dict[str, int]


class RepFigures(ActivityFigures):
    rep: str = Field(description="the rep's id, else e-mail, else name ('' for calls without one)")


class DayActivity(ActivityFigures):
    day: str = Field(description="YYYY-MM-DD in the team's time zone")


class WeekActivity(Out):
    week: str = Field(description="the Monday, YYYY-MM-DD")
    reps: list[RepFigures]


class RepActivityReport(Out):
    from_: str = Field(alias="from", description="the first day, YYYY-MM-DD")
    to: str = Field(description="the last day, included")
    time_zone: str
    scope: Literal["team", "rep"] = Field(description="rep: a rep key, which sees only its own figures")
    rep: str | None = Field(None, description="scope rep: the rep (the key's label)")
    reps: list[RepFigures] = Field(description="most calls first")
    team: ActivityFigures
    days: list[DayActivity] = Field(description="every day of the window, empty ones too")
    weeks: list[WeekActivity]
