"""CRM sharing at the team's direction: the team's webhooks (admin keys) and the export of call logs (read keys).

- ``POST /v1/webhooks`` ``{"url", "events": ["call_ended", "call_disposition"], "includeTranscript": false,
  "description": ""}`` (``events`` default: ``call_ended``):
  ``201`` with the webhook and its signing ``secret``, shown this once. ``400`` for a URL the server does not send
  to (not http(s), does not resolve, resolves to the server's own network without ``webhooks.allow``).
- ``GET /v1/webhooks``: the team's webhooks (never their secrets).
- ``DELETE /v1/webhooks/{id}``: ``204``; its pending deliveries are not sent.
- ``GET /v1/webhooks/{id}/deliveries?limit=&before=``: each delivery's status, attempts, last status code or
  error, next attempt, delivery time; newest first.
- ``GET /v1/calls/export?format=csv|jsonl&from=YYYY-MM-DD&to=YYYY-MM-DD``: ended calls that started in those days
  (UTC, both included), newest first, streamed: call logs and dispositions, participants as consented, no
  transcript. Registered before ``/v1/calls/{call_id}`` (``app.py``), which would take ``export`` for a call id.

Creating and deleting a webhook, reading deliveries and exporting are recorded in the access audit.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from media_server.api import models
from media_server.api.audit import audit_request
from media_server.api.auth import require_key, services_of
from media_server.store.outbox import EVENTS, Outbox
from media_server.store.store import CallFilter, Store
from media_server.webhooks.destinations import RefusedDestination, resolve
from media_server.webhooks.payload import CSV_COLUMNS, call_log, csv_row

router = APIRouter(tags=["webhooks"], responses=models.AUTH)
EXPORT_PAGE = 200
MAX_WEBHOOKS = 20  # per team


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=models.WebhookCreated,
    responses=models.errors(400, 409),
    openapi_extra=models.body(models.WebhookBody),
)
async def create_webhook(request: Request) -> dict[str, Any]:
    key = await require_key(request, "configure")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(400, 'the body must be {"url": "https://...", "events": ["call_ended"]}')
    url, events = body.get("url"), body.get("events", ["call_ended"])
    transcript, description = body.get("includeTranscript", False), body.get("description", "")
    if not isinstance(url, str) or not url.strip():
        raise HTTPException(400, "url: the receiver's https:// URL is required")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e in EVENTS for e in events):
        raise HTTPException(400, f"events: a list of one or more of {', '.join(EVENTS)}")
    if not isinstance(transcript, bool):
        raise HTTPException(400, "includeTranscript: true or false")
    if not isinstance(description, str) or len(description) > 256:
        raise HTTPException(400, "description: text of at most 256 characters")
    services = services_of(request)
    try:
        await resolve(url.strip(), services.settings.webhooks)
    except RefusedDestination as exc:
        raise HTTPException(400, f"url: {exc}") from None
    outbox = Outbox(services.store)
    if len(await outbox.webhooks(key.team)) >= MAX_WEBHOOKS:
        raise HTTPException(409, f"the team has {MAX_WEBHOOKS} webhooks already: delete one first")
    hook = await outbox.create(
        key.team, url.strip(), sorted(set(events)), transcript, description, key.id, datetime.now(UTC)
    )
    await audit_request(request, key, "webhook_create", target=f"{hook.id} {hook.url}")
    return {**hook.to_json(), "secret": hook.secret}


@router.get("/v1/webhooks", response_model=models.WebhookList)
async def list_webhooks(request: Request) -> dict[str, Any]:
    key = await require_key(request, "configure")
    hooks = await Outbox(services_of(request).store).webhooks(key.team)
    return {"webhooks": [h.to_json() for h in hooks]}


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=models.errors(404))
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    key = await require_key(request, "configure")
    await audit_request(request, key, "webhook_delete", target=webhook_id)
    if not await Outbox(services_of(request).store).delete(key.team, webhook_id):
        raise HTTPException(404, "no such webhook")
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", response_model=models.Deliveries, responses=models.errors(404))
async def webhook_deliveries(
    request: Request,
    webhook_id: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="the `next` value of the previous page"),
) -> dict[str, Any]:
    key = await require_key(request, "configure")
    outbox = Outbox(services_of(request).store)
    if await outbox.webhook(key.team, webhook_id) is None:
        raise HTTPException(404, "no such webhook")
    found = await outbox.deliveries(key.team, webhook_id, limit, before)
    more = len(found) == limit
    return {"deliveries": [d.to_json() for d in found], "next": found[-1].id if more and found else None}


@router.get(
    "/v1/calls/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the call logs: JSON lines (one `call_ended` webhook body each, without transcript) or CSV",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **models.errors(400),
    },
)
async def export_calls(
    request: Request,
    format: Literal["csv", "jsonl"] = Query("jsonl"),
    since: Annotated[date | None, Query(alias="from", description="started on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(alias="to", description="started on or before this day (UTC)")] = None,
) -> StreamingResponse:
    key = await require_key(request)
    if since and until and since > until:
        raise HTTPException(400, "from must not be after to")
    await audit_request(request, key, "export_calls", target=f"format={format}&from={since or ''}&to={until or ''}")
    store = services_of(request).store
    where = CallFilter(since=since, until=until)
    name = f"calls-{since or 'start'}-{until or 'today'}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return StreamingResponse(_csv(store, key.team, where), media_type="text/csv; charset=utf-8", headers=headers)
    return StreamingResponse(_jsonl(store, key.team, where), media_type="application/x-ndjson", headers=headers)


async def _ended_calls(store: Store, team: str, where: CallFilter) -> AsyncIterator[list[Any]]:
    cursor: str | None = None
    while True:
        page, cursor = await store.list_calls(team, EXPORT_PAGE, cursor, where)
        yield [c for c in page if c.status != "live"]
        if cursor is None:
            return


async def _jsonl(store: Store, team: str, where: CallFilter) -> AsyncIterator[bytes]:
    async for page in _ended_calls(store, team, where):
        if page:
            yield b"".join(json.dumps(call_log(c), ensure_ascii=False).encode() + b"\n" for c in page)


async def _csv(store: Store, team: str, where: CallFilter) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for page in _ended_calls(store, team, where):
        writer.writerows(csv_row(c) for c in page)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
