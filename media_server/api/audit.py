"""The access audit: every read of a call's transcript or events, search, listen-in, consent change, deletion,
key created and configuration change is recorded (who: key id, label and role; what; when; from where; one
record per request or subscription) before it is answered; ``GET /v1/audit`` shows it to admins."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.requests import HTTPConnection

from media_server.api import models
from media_server.api.auth import require_key, services_of
from media_server.auth.keys import ApiKey
from media_server.services import Services
from media_server.store.records import AccessRecord

router = APIRouter(tags=["audit"], responses=models.AUTH)


def remote_of(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client is not None else ""


async def audited(
    services: Services,
    key: ApiKey,
    action: str,
    *,
    call_id: str = "",
    target: str = "",
    via: str = "rest",
    remote: str = "",
) -> None:
    """Record one access by ``key`` (before what it records is answered: no audit, no answer)."""
    entry = AccessRecord(
        key.team, action, datetime.now(UTC), key.id, key.label, key.role.value, call_id, target, via, remote
    )
    await services.store.record_access(entry)


async def audit_request(request: Request, key: ApiKey, action: str, call_id: str = "", target: str = "") -> None:
    await audited(services_of(request), key, action, call_id=call_id, target=target, remote=remote_of(request))


@router.get("/v1/audit", response_model=models.AccessLog)
async def access_audit(
    request: Request,
    since: Annotated[date | None, Query(alias="from", description="on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(alias="to", description="on or before this day (UTC)")] = None,
    action: str | None = Query(None, max_length=32),
    key_id: str | None = Query(None, alias="keyId", max_length=64),
    call_id: str | None = Query(None, alias="callId", max_length=128),
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="the `next` value of the previous page"),
) -> dict[str, Any]:
    """Who read or changed what, newest first (admin keys). Reading it is recorded too."""
    key = await require_key(request, "audit_access")
    await audit_request(request, key, "read_audit")
    entries = await services_of(request).store.access_log(
        key.team,
        datetime.combine(since, time(), UTC) if since else None,
        datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
        action,
        key_id,
        call_id,
        limit,
        before,
    )
    more = len(entries) == limit
    return {"entries": [e.to_json() for e in entries], "next": entries[-1].id if more and entries else None}
