"""What a signed-in user is (``/v1/me``) and the team's live calls (``/v1/live``), for the dashboard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from media_server.api import models
from media_server.api.auth import require_key, services_of
from media_server.auth.keys import ApiKey

router = APIRouter(tags=["live"], responses=models.AUTH)

ACTIONS = ("ingest", "read", "delete", "listen", "audit", "audit_access", "erase", "configure")


@router.get("/v1/me", response_model=models.Me)
async def me(request: Request) -> dict[str, Any]:
    """The key's team and role, and what it may do: the dashboard signs in with it."""
    key = await require_key(request, "ingest")  # any valid key may ask what it is
    return describe(key)


def describe(key: ApiKey) -> dict[str, Any]:
    return {
        "keyId": key.id,
        "team": key.team,
        "role": key.role.value,
        "label": key.label,
        "can": {action: key.can(action) for action in ACTIONS},
    }


@router.get("/v1/live", response_model=models.LiveCalls, response_model_exclude_unset=True)
async def live_calls(request: Request) -> dict[str, Any]:
    """The team's live calls, newest first, and ``lastEventId``: subscribe to ``/v1/events?after=lastEventId``
    to keep the list current without missing or repeating an event."""
    key = await require_key(request)
    services = services_of(request)
    # No await between these two lines: the snapshot and the event id describe the same moment.
    # Only calls whose call_started is out (id <= last): the others arrive on the stream, started, after it.
    calls = [call.snapshot() for call in services.calls.live.values() if call.team == key.team and call.announced]
    last = services.journal.last_id
    # Other servers' calls (events.bus = redis), as they showed them within the last second, and still live by
    # the database (whose call_ended is stored before anyone sees it). One that started on another server in the
    # last second may come only with its events (the dashboard then takes the list again).
    mine = {c["id"] for c in calls}
    remote = [c for c in await services.directory.remote(key.team) if c["id"] not in mine]
    if remote:
        live = await services.store.still_live(key.team, [c["id"] for c in remote])
        calls += [c for c in remote if c["id"] in live]
    calls.sort(key=lambda c: c["startedAt"], reverse=True)
    return {"lastEventId": last, "calls": calls}
