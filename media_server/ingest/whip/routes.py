"""WHIP (RFC 9725) endpoint ``/v1/ingest/whip`` and its session URLs ``/v1/ingest/whip/{session_id}``.

POST an SDP offer (``application/sdp``) with ``Authorization: Bearer KEY``: ``201 Created``, the SDP answer,
``Location`` (the session URL) and ``ETag``. DELETE on the session URL ends the leg. The call and the leg's
participant come from query parameters, or the same names as ``X-`` headers (``X-Call-Id``, ``X-Role``,
``X-Rep-Name``...): ``callId`` (default: a new UUID, returned in ``X-Call-Id``), ``role`` (``rep`` or
``customer``, default ``rep``) and any call metadata (``repName``, ``customerPhone``, ``repConsent``,
``customerConsent``, ``keyterms``...; see ``media_server.calls.metadata``).

The server gathers all its ICE candidates before answering and does not take trickled candidates or ICE
restarts: PATCH answers ``501 Not Implemented``, as RFC 9725 §4.3 asks of servers that support neither (a
client then restarts by a new POST). The endpoint URL takes only OPTIONS and POST and the session URL only
PATCH and DELETE: anything else is 405 with ``Allow``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response

from media_server.auth.http import presented_key
from media_server.auth.keys import ApiKey
from media_server.calls.lifecycle import CallEnd
from media_server.calls.metadata import MetadataError, Role, parse_metadata
from media_server.ice import link_headers
from media_server.ingest.whip.manager import WhipError, WhipManager
from media_server.services import Services

ENDPOINT = "/v1/ingest/whip"
MAX_OFFER_BYTES = 64 * 1024  # browsers' offers are a few kB
_CALL_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post, Retry-After, X-Call-Id",
}
# What may come as an X- header (X-Call-Id, X-Rep-Name, ...); others (X-Forwarded-For, tracing) are not metadata.
_HEADER_FIELDS = {
    "callId",
    "role",
    "team",
    "repId",
    "repName",
    "repEmail",
    "repConsent",
    "customerId",
    "customerName",
    "customerPhone",
    "customerEmail",
    "customerConsent",
    "consent",
    "endpointing",
    "utteranceEndMs",
    "interimResults",
    "keyterms",
    "keywords",
}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the application's lifespan: the services exist before and outlive the WHIP sessions."""
    services = app.state.services
    settings = services.settings.whip
    manager = WhipManager(services, settings.max_sessions, settings.retry_after_s)
    app.state.whip = manager
    try:
        yield
    finally:
        await manager.close()


router = APIRouter(tags=["ingest"], lifespan=lifespan)


class _SdpAnswer(Response):
    media_type = "application/sdp"  # (what /openapi.json says a POST answers)


def _errors(**described: str) -> dict[int | str, dict[str, object]]:
    """WHIP's errors are a line of text (``_401="..."``)."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {int(code[1:]): {"description": why, "content": text} for code, why in described.items()}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def manager_of(request: Request) -> WhipManager:
    manager: WhipManager = request.app.state.whip
    return manager


def _problem(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(message + "\n", status, {**_CORS, **(headers or {})}, media_type="text/plain")


async def _key(request: Request) -> ApiKey:
    key = await services_of(request).authenticate(presented_key(request))
    if key is None or not key.can("ingest"):
        raise HTTPException(401, "missing or invalid API key", {**_CORS, "WWW-Authenticate": "Bearer"})
    return key


def request_metadata(request: Request) -> dict[str, str]:
    """``X-`` headers (``X-Rep-Name`` is ``repName``) and query parameters (any metadata); the query wins."""
    values: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.startswith("x-"):
            head, *rest = name[2:].split("-")
            field = head + "".join(part.title() for part in rest)
            if field in _HEADER_FIELDS:
                values[field] = value
    values.update({k: v for k, v in request.query_params.items() if k != "token"})
    return values


@router.options(ENDPOINT, response_class=Response, response_description="CORS headers, `Link`: ICE servers")
async def preflight(request: Request) -> Response:
    """CORS preflight (no key: browsers send none), and what the endpoint accepts."""
    response = Response(
        status_code=200,
        headers={
            **_CORS,
            "Access-Control-Allow-Methods": "OPTIONS, POST, PATCH, DELETE",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, X-Call-Id, X-Role",
            "Access-Control-Max-Age": "86400",
            "Accept-Post": "application/sdp",
            "Allow": "OPTIONS, POST",
        },
    )
    for link in link_headers(services_of(request).settings.webrtc):  # RFC 9725 §4.4: ICE servers before the POST
        response.headers.append("Link", link)
    return response


@router.post(
    ENDPOINT,
    status_code=201,
    response_class=_SdpAnswer,
    response_description="the SDP answer; `Location`: the session URL, `ETag`, `X-Call-Id`",
    responses=_errors(
        _400="invalid offer, call id, role or metadata",
        _401="missing or invalid API key",
        _403="the metadata names another team",
        _415="not application/sdp",
        _503="at capacity: try again after `Retry-After`",
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"application/sdp": {"schema": {"type": "string"}}}}},
)
async def publish(request: Request) -> Response:
    try:
        key = await _key(request)
    except HTTPException as exc:
        return _problem(exc.status_code, str(exc.detail), exc.headers)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        return _problem(
            415, "the offer must be sent as Content-Type: application/sdp", {"Accept-Post": "application/sdp"}
        )
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        return _problem(413, f"an SDP offer is at most {MAX_OFFER_BYTES} bytes")
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        return _problem(400, "the offer is not UTF-8 text")

    raw = request_metadata(request)
    call_id = raw.pop("callId", "") or raw.pop("callSid", "") or str(uuid.uuid4())
    raw.pop("callSid", None)
    if not _CALL_ID.fullmatch(call_id):
        return _problem(400, "callId: 1-128 letters, digits or . _ : @ + -")
    role_text = raw.pop("role", "rep").strip().lower()
    if role_text not in ("rep", "customer"):
        return _problem(400, f"role must be rep or customer, not {role_text!r}")
    try:
        metadata = parse_metadata(raw)
    except MetadataError as exc:
        return _problem(400, f"invalid metadata: {exc}")
    metadata.token = None
    if metadata.team and metadata.team != key.team:
        return _problem(403, f"this key belongs to team {key.team!r}, not {metadata.team!r}")

    try:
        session = await manager_of(request).publish(key, call_id, Role(role_text), metadata, offer)
    except WhipError as exc:
        return _problem(exc.status, exc.message, exc.headers)
    response = Response(
        session.answer,
        201,
        {**_CORS, "Location": f"{ENDPOINT}/{session.id}", "ETag": session.etag, "X-Call-Id": call_id},
        media_type="application/sdp",
    )
    for link in link_headers(services_of(request).settings.webrtc):  # RFC 9725 §4.6: the client may use them
        response.headers.append("Link", link)
    return response


@router.delete(
    ENDPOINT + "/{session_id}",
    response_class=Response,
    response_description="the leg ended (no body)",
    responses=_errors(_401="missing or invalid API key", _404="no such WHIP session"),
)
async def delete(request: Request, session_id: str) -> Response:
    try:
        key = await _key(request)
    except HTTPException as exc:
        return _problem(exc.status_code, str(exc.detail), exc.headers)
    manager = manager_of(request)
    session = manager.find(session_id, key.team)
    if session is None:
        return _problem(404, "no such WHIP session")
    await manager.end(session, CallEnd.WHIP_DELETE)
    return Response(status_code=200, headers=_CORS)


@router.patch(
    ENDPOINT + "/{session_id}",
    status_code=501,
    response_class=Response,
    response_description="trickle ICE and ICE restarts are not supported (RFC 9725 §4.3)",
    responses=_errors(_401="missing or invalid API key", _404="no such WHIP session"),
)
async def patch(request: Request, session_id: str) -> Response:
    try:
        key = await _key(request)
    except HTTPException as exc:
        return _problem(exc.status_code, str(exc.detail), exc.headers)
    if manager_of(request).find(session_id, key.team) is None:
        return _problem(404, "no such WHIP session")
    return _problem(501, "trickle ICE and ICE restarts are not supported: the answer carries all candidates")


@router.api_route(ENDPOINT, methods=["GET", "PUT", "DELETE", "PATCH"], include_in_schema=False)
async def endpoint_other() -> Response:
    return _problem(405, "the WHIP endpoint takes OPTIONS and POST", {"Allow": "OPTIONS, POST"})


@router.api_route(ENDPOINT + "/{session_id}", methods=["GET", "POST", "PUT"], include_in_schema=False)
async def session_other(session_id: str) -> Response:
    return _problem(405, "a WHIP session takes PATCH and DELETE", {"Allow": "PATCH, DELETE"})


@router.options(ENDPOINT + "/{session_id}", include_in_schema=False)
async def session_preflight(session_id: str) -> Response:
    return Response(
        status_code=200,
        headers={
            **_CORS,
            "Access-Control-Allow-Methods": "PATCH, DELETE",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
            "Access-Control-Max-Age": "86400",
            "Allow": "PATCH, DELETE",
        },
    )
