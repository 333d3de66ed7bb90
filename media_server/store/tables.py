"""Tables. Changes go through a migration in ``store/migrations/versions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


# Event ids and segment ids: 64 bits on PostgreSQL; SQLite's INTEGER is 64 bits already (and only INTEGER makes a
# key that the database numbers itself).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _of_call(table: str) -> ForeignKeyConstraint:
    """A row of a call: the call is (team, id), and the row goes with it."""
    return ForeignKeyConstraint(
        ["team", "call_id"], ["calls.team", "calls.id"], ondelete="CASCADE", name=f"fk_{table}_call"
    )


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # None: never
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # to a minute
    rotated_from: Mapped[str] = mapped_column(String(32), default="")  # the key a rotation replaced


class CallRow(Base):
    """A call, keyed by team and id: two teams may use the same call id; one team never twice (the database refuses
    it, whichever server opens the call)."""

    __tablename__ = "calls"
    team: Mapped[str] = mapped_column(String(64))
    id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    end_reason: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # None while live
    node: Mapped[str] = mapped_column(String(64), default="")  # the server that holds it while it is live
    metadata_json: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    speakers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    disposition: Mapped[str] = mapped_column(String(64), default="")
    keywords: Mapped[str] = mapped_column(Text, default="")  # "|Pricing|Acme|": matched case-insensitively
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)  # kept from retention's purge and erasure
    counted: Mapped[str] = mapped_column(String(300), default="")  # "day|rep" of its daily aggregate, once ended

    participants: Mapped[list[ParticipantRow]] = relationship(
        cascade="all, delete-orphan", order_by="ParticipantRow.role.desc()", lazy="selectin"
    )
    channels: Mapped[list[ChannelRow]] = relationship(
        cascade="all, delete-orphan", order_by="ChannelRow.index", lazy="selectin"
    )
    segments: Mapped[list[SegmentRow]] = relationship(
        cascade="all, delete-orphan", order_by="SegmentRow.start", lazy="raise"
    )

    __table_args__ = (
        PrimaryKeyConstraint("team", "id", name="pk_calls"),
        Index("ix_calls_team_started", "team", "started_at"),
        Index("ix_calls_status_node", "status", "node"),
    )


class ParticipantRow(Base):
    __tablename__ = "participants"
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    consent: Mapped[str] = mapped_column(String(16))
    transcribed: Mapped[bool] = mapped_column(Boolean)
    external_id: Mapped[str] = mapped_column(String(256), default="")
    name: Mapped[str] = mapped_column(String(256), default="")
    phone: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str] = mapped_column(String(256), default="")

    __table_args__ = (PrimaryKeyConstraint("team", "call_id", "role", name="pk_participants"), _of_call("participants"))


class ChannelRow(Base):
    __tablename__ = "channels"
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    sample_rate: Mapped[int] = mapped_column(Integer)
    transcribed: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (PrimaryKeyConstraint("team", "call_id", "index", name="pk_channels"), _of_call("channels"))


class SegmentRow(Base):
    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (_of_call("segments"), Index("ix_segments_call", "team", "call_id"))


class ListenAuditRow(Base):
    """Who listened in on which call, when, and for how long. Kept when the call is deleted."""

    __tablename__ = "listen_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32))
    key_label: Mapped[str] = mapped_column(String(128), default="")
    key_role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_reason: Mapped[str] = mapped_column(String(32), default="")

    __table_args__ = (Index("ix_listen_audit_team_started", "team", "started_at"),)


class TeamConfigRow(Base):
    """A team's validated configuration (``media_server.teams.config.TeamConfig`` as JSON)."""

    __tablename__ = "team_configs"
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(32), default="")


class EventRow(Base):
    """The event log: every event subscribers can replay (all but interim transcripts), in id order.

    ``id`` is the event's id, assigned by the server's journal (``store/journal.py``) from a block of ids it claimed
    in ``counters``, not by the database. Events are not tied to a call's row: the log outlives nothing it should not
    (a deleted call's events are deleted with it), and a probe row has no call."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32))
    channel: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a transcript's, hit's or entity's
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the serialized ``Event``

    __table_args__ = (Index("ix_events_team_id", "team", "id"), Index("ix_events_call", "team", "call_id", "id"))


class CounterRow(Base):
    """Named counters that must survive restarts (``event_id``: the last event id claimed by any server; each claims
    a block of ids by raising it, in one statement)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigId)


class NodeRow(Base):
    """A server sharing the database, while it runs: its lease (renewed every few seconds) and where it answers.
    A server whose lease ran out is taken over: another removes its row and closes the calls it held."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(255), default="")  # its HTTP address, for requests about its calls
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConsentChangeRow(Base):
    """Every change of a participant's consent on a call, and who made it: at its start (as the platform said),
    during it (the platform's metadata, the API) and after it (a withdrawal)."""

    __tablename__ = "consent_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(128))
    participant: Mapped[str] = mapped_column(String(16))  # rep | customer
    previous: Mapped[str] = mapped_column(String(16), default="")  # "" at the call's start
    consent: Mapped[str] = mapped_column(String(16))
    by_key: Mapped[str] = mapped_column(String(64), default="")  # the API key's id; "" the call's platform
    by_label: Mapped[str] = mapped_column(String(128), default="")  # the key's label, or the platform
    by_role: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(32))  # call_start | metadata | api | grpc
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_consent_changes_call", "team", "call_id", "id"),)


class DailyAggregateRow(Base):
    """Anonymised figures per team, day (in the team's time zone) and rep: sums over the calls that ended, added
    as each call ends (``media_server/insights/activity.py``). No customer data, no transcript; kept when calls
    are deleted, erased or purged."""

    __tablename__ = "daily_aggregates"
    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    rep: Mapped[str] = mapped_column(String(256), primary_key=True)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)  # DayFigures as JSON


class ErasureRow(Base):
    """The receipt of an erasure of a person: what was done, by whom, when; never whom (the erased value)."""

    __tablename__ = "erasures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(64), default="")
    key_label: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16))  # phone | email | customer_id | rep
    calls: Mapped[list[str]] = mapped_column(JSON, default=list)  # the calls touched
    segments: Mapped[int] = mapped_column(Integer, default=0)  # transcript segments removed
    held: Mapped[list[str]] = mapped_column(JSON, default=list)  # calls left as they were: on legal hold


class AccessAuditRow(Base):
    """Who read or changed what: one row per request or subscription (a call's transcript or events, a search, a
    listen-in, a consent change, a deletion, a key created, the team's configuration changed)."""

    __tablename__ = "access_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(64), default="")  # "" not by an API key (the command line)
    key_label: Mapped[str] = mapped_column(String(128), default="")
    key_role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str] = mapped_column(String(128), default="")  # the call it was about, if one
    target: Mapped[str] = mapped_column(String(512), default="")  # what else it was about (a search, a key id)
    via: Mapped[str] = mapped_column(String(16), default="")  # rest | websocket | grpc | cli
    remote: Mapped[str] = mapped_column(String(64), default="")  # the client's address

    __table_args__ = (Index("ix_access_audit_team_at", "team", "at"),)


class WebhookRow(Base):
    """A team's webhook: where its calls' logs are sent (``store/outbox.py``). ``secret`` signs each delivery (an
    HMAC key: kept as it is, shown once when the webhook is created)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    include_transcript: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(256), default="")
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64), default="")  # the admin key's id


class WebhookDeliveryRow(Base):
    """The outbox: one delivery of one event to one webhook, until it is delivered or given up. It names the call,
    not its content: the body is made from the stored call at each attempt (a call erased or withdrawn meanwhile is
    sent as it is then; one deleted is not sent)."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(32))
    team: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))  # call_ended
    call_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed | gone
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the receiver's HTTP status
    last_error: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claimed_by: Mapped[str] = mapped_column(String(64), default="")  # the server sending it now, or last

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    )
