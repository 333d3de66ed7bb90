"""REST for stored calls (list with search and filters, get, delete, disposition, consent) and rep activity.

A call is stored from its start (status ``live``, its transcript so far), then as it ended.

Every query is scoped to the key's team. The live calls are ``/v1/live`` (``api/live.py``).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response

from media_server.api import models
from media_server.api.audit import audit_request
from media_server.api.auth import require_key, services_of
from media_server.auth.keys import Role
from media_server.calls.consent_update import ConsentUpdateError, update_consent
from media_server.calls.metadata import Consent
from media_server.cluster.forward import FORWARDED, forward
from media_server.insights.activity import RepActivity, activity
from media_server.store.aggregates import DayFigures
from media_server.store.people import person_named
from media_server.store.store import CallFilter

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=models.AUTH)
reps_router = APIRouter(prefix="/v1/reps", tags=["calls"], responses=models.AUTH)
MAX_DISPOSITION = 64


@reps_router.get(
    "/activity",
    response_model=models.RepActivityReport,
    response_model_exclude_unset=True,
    responses=models.errors(400),
)
async def rep_activity(
    request: Request,
    since: Annotated[date | None, Query(alias="from", description="first day; default 30 days before to")] = None,
    until: Annotated[date | None, Query(alias="to", description="last day, included; default today")] = None,
) -> dict[str, Any]:
    """Per rep and for the team over the window (days in the team's time zone): calls, call and talk time,
    averages of talk ratio, longest monologue and patience, questions asked, tracker hits, cues and dispositions;
    ``days`` the team's figures day by day (every day of the window, empty ones too) and ``weeks`` each rep's
    week by week (weeks start on Monday), for charts. Read from the anonymised daily aggregates: calls deleted,
    erased or purged since still count.

    Admin and manager keys see the team. A rep key sees only its own rep's figures (``scope: "rep"``): the rep
    whose id (else e-mail, else name) in call metadata is the key's label (``keys create --role rep --label
    u-17``); a rep key without a label sees none."""
    key = await require_key(request)
    await audit_request(request, key, "read_activity")
    services = services_of(request)
    zone = (await services.teams.config(key.team)).time_zone
    last = until or datetime.now(ZoneInfo(zone)).date()
    first = since or last - timedelta(days=30)
    if first > last:
        raise HTTPException(400, "from must not be after to")
    if (last - first).days > MAX_ACTIVITY_DAYS:
        raise HTTPException(400, f"at most {MAX_ACTIVITY_DAYS} days at a time")
    rows = await services.store.daily_figures(key.team, first.isoformat(), last.isoformat())
    own = key.role == Role.REP
    if own:
        rows = [r for r in rows if key.label and r[1] == key.label]
    reps = activity((rep, figures) for _, rep, figures in rows)
    team = RepActivity("")
    for a in reps:
        team.figures.add(a.figures)
    by_day: dict[str, DayFigures] = {}
    by_week: dict[str, dict[str, DayFigures]] = {}
    for day, rep, figures in rows:
        by_day.setdefault(day, DayFigures()).add(figures)
        monday = _monday(date.fromisoformat(day)).isoformat()
        by_week.setdefault(monday, {}).setdefault(rep, DayFigures()).add(figures)
    days = []
    for n in range((last - first).days + 1):
        day = (first + timedelta(days=n)).isoformat()
        days.append({"day": day, **_without_rep(RepActivity("", by_day.get(day, DayFigures())))})
    weeks = []
    week = _monday(first)
    while week <= last:
        per_rep = activity(by_week.get(week.isoformat(), {}).items())
        weeks.append({"week": week.isoformat(), "reps": [a.to_json() for a in per_rep]})
        week += timedelta(days=7)
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timeZone": zone,
        "scope": "rep" if own else "team",
        **({"rep": key.label} if own else {}),
        "reps": [a.to_json() for a in reps],
        "team": _without_rep(team),
        "days": days,
        "weeks": weeks,
    }


MAX_ACTIVITY_DAYS = 366


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _without_rep(a: RepActivity) -> dict[str, Any]:
    return {k: v for k, v in a.to_json().items() if k != "rep"}


@router.get("", response_model=models.CallList, response_model_exclude_unset=True, responses=models.errors(400))
async def list_calls(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="the `next` value of the previous page"),
    q: str = Query("", max_length=200, description="words said in the call (all of them, anywhere)"),
    rep: str = Query("", max_length=200, description="part of the rep's name, id or email"),
    keyword: str = Query("", max_length=200, description="a tracked phrase said in the call"),
    since: Annotated[date | None, Query(alias="from", description="started on or after this day (UTC)")] = None,
    until: Annotated[date | None, Query(alias="to", description="started on or before this day (UTC)")] = None,
    participant: str = Query(
        "", max_length=256, description="a person on the call: phone number (any format), e-mail or customer id"
    ),
) -> dict[str, Any]:
    key = await require_key(request)
    person = None
    if participant.strip():
        region = (await services_of(request).teams.config(key.team)).phone_region
        person = person_named(participant, region)
    where = CallFilter(text=q, rep=rep, keyword=keyword, since=since, until=until, participant=person)
    # (neither the key, if it came as ?token=, nor the person looked up are kept in the audit)
    kept = [p for p in request.url.query.split("&") if p and not p.startswith(("token=", "participant="))]
    searched = "&".join(kept + ([f"participant=[{person.kind}]"] if person else []))
    await audit_request(
        request, key, "search_calls" if q or rep or keyword or person else "list_calls", target=searched
    )
    try:
        calls, next_cursor = await services_of(request).store.list_calls(key.team, limit, cursor, where)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"calls": [c.summary() for c in calls], "next": next_cursor}


@router.get(
    "/{call_id}", response_model=models.CallDetail, response_model_exclude_unset=True, responses=models.errors(404)
)
async def get_call(request: Request, call_id: str) -> dict[str, Any]:
    key = await require_key(request)
    await audit_request(request, key, "read_call", call_id)
    record = await services_of(request).store.get_call(key.team, call_id)  # a live call: as stored so far
    if record is None:
        raise HTTPException(404, "no such call")
    return record.detail()


@router.put(
    "/{call_id}/disposition",
    response_model=models.DispositionSet,
    responses=models.errors(400, 404),
    openapi_extra=models.body(models.DispositionBody),
)
async def set_disposition(request: Request, call_id: str) -> dict[str, Any] | Response:
    """``{"disposition": "meeting_booked"}``: on a live call it is stored when the call ends."""
    key = await require_key(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    value = body.get("disposition") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DISPOSITION:
        raise HTTPException(400, f'the body must be {{"disposition": "..."}}, 1-{MAX_DISPOSITION} characters')
    services = services_of(request)
    if not request.headers.get(FORWARDED):  # (recorded where it was asked, once)
        await audit_request(request, key, "set_disposition", call_id, value.strip())
    elsewhere = await services.held_elsewhere(key.team, call_id)
    if elsewhere is not None:
        return await forward(request, *elsewhere)  # (the server holding the call keeps its disposition)
    live = services.calls.live.find(key.team, call_id)
    if live is not None:
        live.insights.disposition = value.strip()
        return {"id": call_id, "disposition": value.strip(), "live": True}
    if not await services.store.set_disposition(key.team, call_id, value.strip()):
        raise HTTPException(404, "no such call")
    return {"id": call_id, "disposition": value.strip(), "live": False}


@router.put(
    "/{call_id}/consent",
    response_model=models.ConsentSet,
    responses=models.errors(400, 403, 404, 409),
    openapi_extra=models.body(models.ConsentBody),
)
async def set_consent(request: Request, call_id: str) -> dict[str, Any] | Response:
    """``{"role": "customer", "consent": "denied"}``. Live: applied at once (a channel that lost consent stops
    being transcribed and heard, and what it said is dropped); any key may withdraw, granting takes a role of the
    team's ``consent_grant`` (``403``). Stored: only a withdrawal, by an admin or manager key, which erases that
    participant's transcript and identity (``409`` for anything else). Every change is kept in the call's
    ``consentHistory``."""
    key = await require_key(request, "ingest")
    try:
        body = await request.json()
    except ValueError:
        body = None
    role = body.get("role") if isinstance(body, dict) else None
    value = body.get("consent") if isinstance(body, dict) else None
    if not isinstance(role, str) or value not in ("granted", "denied", "unknown"):
        raise HTTPException(400, 'the body must be {"role": "rep"|"customer", "consent": "granted"|"denied"|"unknown"}')
    services = services_of(request)
    if not request.headers.get(FORWARDED):  # (recorded where it was asked, once)
        await audit_request(request, key, "consent_change", call_id, f"{role}={value}")
    elsewhere = await services.held_elsewhere(key.team, call_id)
    if elsewhere is not None:
        return await forward(request, *elsewhere)  # (the server holding the call applies it)
    try:
        result = await update_consent(services.calls, services.store, key, call_id, role, Consent(value))
    except ConsentUpdateError as exc:
        status = {"not_found": 404, "invalid": 400, "stored": 409, "forbidden": 403}[exc.kind]
        raise HTTPException(status, exc.message) from None
    return {
        "id": call_id,
        "live": result.live,
        "participants": [asdict(p) for p in result.participants],
        "channels": [
            {"index": c.index, "speaker": c.speaker, "sampleRate": c.sample_rate, "transcribed": c.transcribed}
            for c in result.channels
        ],
        "segmentsErased": result.segments_erased,
    }


@router.put("/{call_id}/legal-hold", responses=models.errors(400, 404), openapi_extra=models.body(models.LegalHoldBody))
async def set_legal_hold(request: Request, call_id: str) -> models.LegalHoldSet:
    """``{"hold": true}``: the call is kept from the team's retention (admin keys; recorded in the audit)."""
    key = await require_key(request, "configure")
    try:
        body = await request.json()
    except ValueError:
        body = None
    hold = body.get("hold") if isinstance(body, dict) else None
    if not isinstance(hold, bool):
        raise HTTPException(400, 'the body must be {"hold": true} or {"hold": false}')
    await audit_request(request, key, "legal_hold", call_id, "on" if hold else "off")
    if not await services_of(request).store.set_legal_hold(key.team, call_id, hold):
        raise HTTPException(404, "no such call")
    return models.LegalHoldSet(id=call_id, legal_hold=hold)


@router.delete("/{call_id}", status_code=204, responses=models.errors(404, 409))
async def delete_call(request: Request, call_id: str) -> Response:
    key = await require_key(request, "delete")
    await audit_request(request, key, "delete_call", call_id)
    live = services_of(request).calls.live.find(key.team, call_id)
    if live is not None or await services_of(request).held_elsewhere(key.team, call_id) is not None:
        raise HTTPException(409, "the call is live: it can be deleted once it has ended")
    if not await services_of(request).store.delete_call(key.team, call_id):
        raise HTTPException(404, "no such call")
    await services_of(request).bus.forget(key.team, {call_id})  # (Redis: no resume hands its events out again)
    return Response(status_code=204)
