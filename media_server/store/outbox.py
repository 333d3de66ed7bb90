"""Teams' webhooks and their durable outbox.

A call's end puts one delivery per subscribed webhook into ``webhook_deliveries``, in the transaction that stores
the end (``enqueue``, from the journal's ``CallClosed``): no call ends without its deliveries, and none is lost to a
restart. A sender (``media_server/webhooks/sender.py``) claims due deliveries, sends them and records each attempt.

Claims: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` picks due rows that no other server is claiming, and
the claim moves their ``next_attempt_at`` past the send's timeout, so that servers sharing the database send each
delivery once (a server that dies mid-send leaves it to be claimed again after that: at least once, with the same
delivery id for the receiver to spot a repeat). On SQLite the store's single writer serialises claims.

A delivery names its call, never its content: the body is made from the stored call at each attempt, so an erasure,
a consent withdrawal or a deletion before it is sent is honoured and the outbox holds no personal data.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, delete, insert, select, update

from media_server.store.tables import WebhookDeliveryRow, WebhookRow

if TYPE_CHECKING:
    from media_server.store.store import Store

EVENTS = ("call_ended", "call_disposition")
"""What a webhook may subscribe to: a call's end; a disposition set (or changed) after the call ended."""

SECRET_PREFIX = "whsec_"

_WEBHOOKS = cast(Table, WebhookRow.__table__)
_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)


@dataclass(frozen=True)
class Webhook:
    id: str
    team: str
    url: str
    events: tuple[str, ...]
    include_transcript: bool
    description: str
    created_at: datetime
    created_by: str
    secret: str  # (never in to_json: shown once, by the API, when the webhook is created)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "includeTranscript": self.include_transcript,
            "description": self.description,
            "createdAt": iso(self.created_at),
            "createdBy": self.created_by or None,
        }


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    team: str
    event: str
    call_id: str
    status: str  # pending | delivered | failed (given up) | gone (the call no longer exists)
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "callId": self.call_id,
            "status": self.status,
            "attempts": self.attempts,
            "lastStatusCode": self.last_status,
            "lastError": self.last_error or None,
            "nextAttemptAt": iso(self.next_attempt_at) if self.next_attempt_at and self.status == "pending" else None,
            "createdAt": iso(self.created_at),
            "deliveredAt": iso(self.delivered_at) if self.delivered_at else None,
        }


@dataclass(frozen=True)
class Claimed:
    """A delivery this server now sends, with its webhook."""

    delivery: Delivery
    webhook: Webhook


def enqueue(conn: Connection, event: str, team: str, call_id: str, now: datetime) -> int:
    """One pending delivery of ``event`` about a call per webhook of ``team`` subscribed to it, inside the caller's
    transaction: ``call_ended`` once per webhook and call; ``call_disposition`` unless one is pending already (its
    body, made when it is sent, has the newest disposition). Returns how many."""
    hooks = conn.execute(select(_WEBHOOKS.c.id, _WEBHOOKS.c.events).where(_WEBHOOKS.c.team == team)).all()
    subscribed = [str(hook_id) for hook_id, events in hooks if event in (events or [])]
    if not subscribed:
        return 0
    queued = select(_DELIVERIES.c.webhook_id).where(
        _DELIVERIES.c.team == team,
        _DELIVERIES.c.call_id == call_id,
        _DELIVERIES.c.event == event,
        _DELIVERIES.c.webhook_id.in_(subscribed),
    )
    if event != "call_ended":
        queued = queued.where(_DELIVERIES.c.status == "pending")
    done = set(conn.execute(queued).scalars())
    rows = [
        {
            "webhook_id": hook_id,
            "team": team,
            "event": event,
            "call_id": call_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
            "claimed_by": "",
        }
        for hook_id in subscribed
        if hook_id not in done
    ]
    if rows:
        conn.execute(insert(_DELIVERIES), rows)
    return len(rows)


class Outbox:
    """The webhooks and deliveries of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        team: str,
        url: str,
        events: list[str],
        include_transcript: bool,
        description: str,
        created_by: str,
        now: datetime,
    ) -> Webhook:
        """A new webhook, with its signing secret (returned only here)."""
        hook = Webhook(
            id="wh_" + secrets.token_hex(8),
            team=team,
            url=url,
            events=tuple(events),
            include_transcript=include_transcript,
            description=description[:256],
            created_at=now,
            created_by=created_by,
            secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        )
        row = {
            "id": hook.id,
            "team": team,
            "url": url,
            "events": list(events),
            "include_transcript": include_transcript,
            "description": hook.description,
            "secret": hook.secret,
            "created_at": now,
            "created_by": created_by,
        }
        await self.store._write(lambda conn: conn.execute(insert(_WEBHOOKS).values(**row)))
        return hook

    async def webhooks(self, team: str) -> list[Webhook]:
        query = select(_WEBHOOKS).where(_WEBHOOKS.c.team == team).order_by(_WEBHOOKS.c.created_at, _WEBHOOKS.c.id)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_webhook(r) for r in rows]

    async def webhook(self, team: str, webhook_id: str) -> Webhook | None:
        query = select(_WEBHOOKS).where(_WEBHOOKS.c.team == team, _WEBHOOKS.c.id == webhook_id)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _webhook(row)

    async def delete(self, team: str, webhook_id: str) -> bool:
        """Remove a webhook and its deliveries (pending ones are not sent); False: no such webhook."""

        def work(conn: Connection) -> bool:
            gone = conn.execute(delete(_WEBHOOKS).where(_WEBHOOKS.c.team == team, _WEBHOOKS.c.id == webhook_id))
            conn.execute(delete(_DELIVERIES).where(_DELIVERIES.c.team == team, _DELIVERIES.c.webhook_id == webhook_id))
            return bool(gone.rowcount)

        deleted: bool = await self.store._write(work)
        return deleted

    async def deliveries(
        self, team: str, webhook_id: str, limit: int = 100, before_id: int | None = None
    ) -> list[Delivery]:
        """A webhook's deliveries, newest first (``before_id``: the next page)."""
        query = select(_DELIVERIES).where(_DELIVERIES.c.team == team, _DELIVERIES.c.webhook_id == webhook_id)
        if before_id is not None:
            query = query.where(_DELIVERIES.c.id < before_id)
        query = query.order_by(_DELIVERIES.c.id.desc()).limit(limit)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_delivery(r) for r in rows]

    async def claim(self, node: str, now: datetime, hold_s: float, limit: int = 20) -> list[Claimed]:
        """Due deliveries for ``node`` to send now: each counts an attempt and is not due again for ``hold_s``
        (its send's timeout and more), so no other server sends it meanwhile."""
        claimed: list[Claimed] = await self.store._write(_claim, node, now, now + timedelta(seconds=hold_s), limit)
        return claimed

    async def record(
        self,
        delivery_id: int,
        status: str,
        *,
        last_status: int | None,
        last_error: str,
        next_attempt_at: datetime | None = None,
        delivered_at: datetime | None = None,
    ) -> None:
        """What an attempt came to: ``delivered``, ``pending`` (retried at ``next_attempt_at``), ``failed`` (given
        up) or ``gone``."""
        values = {
            "status": status,
            "last_status": last_status,
            "last_error": last_error[:512],
            "next_attempt_at": next_attempt_at,
            "delivered_at": delivered_at,
        }
        await self.store._write(
            lambda conn: conn.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id).values(**values))
        )


def _claim(conn: Connection, node: str, now: datetime, until: datetime, limit: int) -> list[Claimed]:
    due = (_DELIVERIES.c.status == "pending", _DELIVERIES.c.next_attempt_at <= now)
    query = select(_DELIVERIES.c.id).where(*due).order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id).limit(limit)
    token = f"{node[:50]}:{secrets.token_hex(6)}"  # (this claim's rows)
    claim = update(_DELIVERIES).values(attempts=_DELIVERIES.c.attempts + 1, next_attempt_at=until, claimed_by=token)
    if conn.dialect.name == "postgresql":
        # Rows another server is claiming now are locked: skipped, not waited for.
        ids = [int(i) for i in conn.execute(query.with_for_update(skip_locked=True)).scalars()]
        if not ids:
            return []
        conn.execute(claim.where(_DELIVERIES.c.id.in_(ids)))
    else:
        # One statement: SQLite runs it alone (a select then an update would let another writer claim between).
        conn.execute(claim.where(_DELIVERIES.c.id.in_(query.scalar_subquery()), *due))
    deliveries = [
        _delivery(r)
        for r in conn.execute(select(_DELIVERIES).where(_DELIVERIES.c.claimed_by == token).order_by(_DELIVERIES.c.id))
        .mappings()
        .all()
    ]
    if not deliveries:
        return []
    hook_ids = {d.webhook_id for d in deliveries}
    hooks = {
        r["id"]: _webhook(r)
        for r in conn.execute(select(_WEBHOOKS).where(_WEBHOOKS.c.id.in_(hook_ids))).mappings().all()
    }
    return [Claimed(d, hooks[d.webhook_id]) for d in deliveries if d.webhook_id in hooks]


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _webhook(row: Any) -> Webhook:
    created = _utc(row["created_at"])
    assert created is not None
    return Webhook(
        id=row["id"],
        team=row["team"],
        url=row["url"],
        events=tuple(row["events"] or ()),
        include_transcript=bool(row["include_transcript"]),
        description=row["description"] or "",
        created_at=created,
        created_by=row["created_by"] or "",
        secret=row["secret"],
    )


def _delivery(row: Any) -> Delivery:
    created = _utc(row["created_at"])
    assert created is not None
    return Delivery(
        id=int(row["id"]),
        webhook_id=row["webhook_id"],
        team=row["team"],
        event=row["event"],
        call_id=row["call_id"],
        status=row["status"],
        attempts=int(row["attempts"] or 0),
        next_attempt_at=_utc(row["next_attempt_at"]),
        last_status=row["last_status"],
        last_error=row["last_error"] or "",
        created_at=created,
        delivered_at=_utc(row["delivered_at"]),
    )
