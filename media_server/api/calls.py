"""REST for finalized calls: list, get, delete. Every query is scoped to the key's team."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from media_server.api.auth import require_key, services_of

router = APIRouter(prefix="/v1/calls", tags=["calls"])


@router.get("")
async def list_calls(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="the `next` value of the previous page"),
) -> dict[str, Any]:
    key = await require_key(request)
    try:
        calls, next_cursor = await services_of(request).store.list_calls(key.team, limit, cursor)
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
