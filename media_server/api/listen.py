"""Listen-in over WebRTC, WHEP-style: ``POST /v1/calls/{call_id}/listen`` with an SDP offer that receives audio.

``?channel=mixed`` (default: every channel whose voices consented, mixed) or ``?channel=N`` (one channel).
``201 Created`` with the SDP answer and ``Location`` (the session URL); DELETE the session URL to stop.
Only keys whose role may listen (admin, manager) can; every listen-in is in the audit log
(``GET /v1/audit/listens``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response

from media_server.api import models
from media_server.api.audit import audit_request
from media_server.api.auth import require_key, services_of
from media_server.cluster.forward import redirect
from media_server.ice import rtc_configuration
from media_server.listen.manager import ListenError, ListenManager

MAX_OFFER_BYTES = 64 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    settings = services.settings.listen
    manager = ListenManager(
        services.store,
        settings.max_sessions,
        settings.max_delay_ms / 1000,
        rtc=rtc_configuration(services.settings.webrtc),
        key_sessions=services.sessions,
    )
    app.state.listen = manager
    try:
        yield
    finally:
        await manager.close()


router = APIRouter(tags=["listen"], lifespan=lifespan, responses=models.AUTH)


def manager_of(request: Request) -> ListenManager:
    manager: ListenManager = request.app.state.listen
    return manager


@router.post(
    "/v1/calls/{call_id}/listen",
    status_code=201,
    response_class=models.SdpAnswer,
    response_description="the SDP answer; `Location`: the session URL (DELETE it to stop)",
    responses=models.errors(
        400, 404, 409, 503, _404="no such live call", _409="the call has ended: only live calls can be listened to"
    ),
    openapi_extra=models.SDP_OFFER,
)
async def listen(request: Request, call_id: str, channel: str = Query("mixed", max_length=16)) -> Response:
    key = await require_key(request, "listen")
    await audit_request(request, key, "listen", call_id, channel)
    services = services_of(request)
    call = services.calls.live.find(key.team, call_id)
    if call is None:
        elsewhere = await services.held_elsewhere(key.team, call_id)
        if elsewhere is not None:
            return redirect(request, *elsewhere)  # (the offer goes to the server that holds the call's audio)
        if await services.store.get_call(key.team, call_id) is not None:
            raise HTTPException(409, "the call has ended: only live calls can be listened to")
        raise HTTPException(404, "no such live call")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise HTTPException(415, "the body must be an SDP offer (Content-Type: application/sdp)")
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise HTTPException(413, "the offer is too large")
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the offer is not UTF-8 text") from None
    try:
        session = await manager_of(request).open(key, call, offer, channel)
    except ListenError as exc:
        raise HTTPException(exc.status, exc.message, headers=exc.headers or None) from None
    return Response(
        session.answer,
        status_code=201,
        media_type="application/sdp",
        headers={"Location": f"/v1/calls/{call_id}/listen/{session.id}"},
    )


@router.delete(
    "/v1/calls/{call_id}/listen/{session_id}",
    response_class=Response,
    response_description="stopped (no body)",
    responses=models.errors(404, _404="no such listen-in session"),
)
async def stop_listening(request: Request, call_id: str, session_id: str) -> Response:
    key = await require_key(request, "listen")
    manager = manager_of(request)
    session = manager.find(session_id, key.team)
    if session is None or session.call.id != call_id:
        raise HTTPException(404, "no such listen-in session")
    await manager.end(session, "stopped")
    return Response(status_code=200)


@router.get("/v1/audit/listens", response_model=models.ListenLog)
async def listen_audit(
    request: Request,
    call_id: str | None = Query(None, alias="callId", max_length=128),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Who listened to which call, when and for how long (``duration`` is null while it goes on). Newest first."""
    key = await require_key(request, "audit")
    await audit_request(request, key, "read_audit", call_id or "", "listens")
    entries = await services_of(request).store.listens(key.team, call_id, limit)
    return {"listens": [entry.to_json() for entry in entries]}
