"""REST for calls: the live ones (``/v1/live``), finalized ones (list with search and filters, get, delete).

Every query is scoped to the key's team.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from media_server.api.auth import require_key, services_of
from media_server.store.store import CallFilter

router = APIRouter(prefix="/v1/calls", tags=["calls"])


@router.get("")
async def list_calls(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="the `next` value of the previous page"),
    q: str = Query("", max_length=200, description="words said in the call (all of them, anywhere)"),
    rep: str = Query("", max_length=200, description="part of the rep's name, id or email"),
    keyword: str = Query("", max_length=200, description="a tracked phrase said in the call"),
    since: Annotated[date | None, Query(alias="from", description="started on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(alias="to", description="started on or before this day (UTC)")] = None,
) -> dict[str, Any]:
    key = await require_key(request)
    where = CallFilter(text=q, rep=rep, keyword=keyword, since=since, until=until)
    try:
        calls, next_cursor = await services_of(request).store.list_calls(key.team, limit, cursor, where)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"calls": [c.summary() for c in calls], "next": next_cursor}


@router.get("/{call_id}")
async def get_call(request: Request, call_id: str) -> dict[str, Any]:
    key = await require_key(request)
    record = await services_of(request).store.get_call(key.team, call_id)
    if record is None:
        live = services_of(request).calls.live.get(call_id)
        if live is not None and live.team == key.team:
            raise HTTPException(409, "the call is still live: subscribe to its events; it is stored when it ends")
        raise HTTPException(404, "no such call")
    return record.detail()


@router.delete("/{call_id}", status_code=204)
async def delete_call(request: Request, call_id: str) -> Response:
    key = await require_key(request, "delete")
    if not await services_of(request).store.delete_call(key.team, call_id):
        raise HTTPException(404, "no such call")
    return Response(status_code=204)
