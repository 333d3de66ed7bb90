"""A person's data on request: erasure (``POST /v1/erasures``) and an access request (``GET /v1/people/export``),
admin keys only; both recorded in the access audit without the person's value. The lookup of a person's calls is
``GET /v1/calls?participant=...`` (``api/calls.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from media_server.api import models
from media_server.api.audit import audit_request
from media_server.api.auth import require_key, services_of
from media_server.calls.consent import ConsentActor
from media_server.calls.erasure import erase_live
from media_server.cluster.forward import FORWARDED, ask
from media_server.store.people import NotAPerson, Person

router = APIRouter(tags=["people"], responses=models.AUTH)

_FIELDS = {"phone": "phone", "email": "email", "customerId": "customer_id", "rep": "rep"}


def _person(fields: dict[str, Any], region: str) -> Person:
    given = [(kind, value) for name, kind in _FIELDS.items() if (value := fields.get(name)) is not None]
    if len(given) != 1 or not isinstance(given[0][1], str):
        raise HTTPException(400, f"name the person by exactly one of {', '.join(_FIELDS)} (a string)")
    kind, value = given[0]
    try:
        return Person.of(kind, value, region)
    except NotAPerson as exc:
        raise HTTPException(400, str(exc)) from None


@router.post(
    "/v1/erasures",
    status_code=201,
    response_model=models.ErasureReceipt,
    response_model_exclude_unset=True,
    responses=models.errors(400),
    openapi_extra=models.body(models.PersonBody, "the person, by exactly one of phone, email, customerId, rep"),
)
async def erase(request: Request) -> dict[str, Any]:
    """``{"phone": "+1 555 123 0000"}`` (or ``email``, ``customerId``, ``rep``): every call of the team where that
    person is a participant loses their transcript, identity and free-form metadata; live calls too (their channel
    stops being transcribed), on every server. Calls on legal hold are left alone and listed. Returns the receipt."""
    key = await require_key(request, "erase")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object naming the person")
    services = services_of(request)
    person = _person(body, (await services.teams.config(key.team)).phone_region)
    actor = ConsentActor("erasure", key.id, key.label, key.role.value)
    live = await erase_live(services.calls, key.team, person, actor)
    if request.headers.get(FORWARDED):  # (another server erases the stored calls; this one its live calls)
        return {"liveCalls": live}
    await audit_request(request, key, "erasure", target=f"kind={person.kind}")
    unreached: list[str] = []
    if services.lease is not None:  # the other servers' live calls
        for node, url in (await services.store.node_urls()).items():
            if node == services.journal.node:
                continue
            status, answer = await ask(node, url, "POST", "/v1/erasures", _bearer(request), body)
            if status == 201 and isinstance(answer, dict):
                live += list(answer.get("liveCalls", []))
            else:
                unreached.append(node)
    receipt = await services.store.erase_person(key.team, person, key.id, key.label)
    touched = set(receipt["calls"]) | set(live)
    forgotten = await services.bus.forget(key.team, touched)
    await audit_request(
        request,
        key,
        "erasure_receipt",
        target=f"kind={person.kind} calls={len(touched)} segments={receipt['segmentsRemoved']}",
    )
    return {
        **receipt,
        "calls": sorted(touched),
        "liveCalls": sorted(live),
        "busEventsRemoved": forgotten,
        "serversNotReached": unreached,
    }


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header.partition(" ")[2].strip() or request.query_params.get("token", "")


@router.get("/v1/people/export", response_model=models.PersonExport, responses=models.errors(400))
async def export_person(
    request: Request,
    phone: str | None = Query(None, max_length=256),
    email: str | None = Query(None, max_length=256),
    customer_id: str | None = Query(None, alias="customerId", max_length=256),
    rep: str | None = Query(None, max_length=256),
) -> dict[str, Any]:
    """An access request: everything held about the person (admin keys), as JSON."""
    key = await require_key(request, "erase")
    services = services_of(request)
    fields = {"phone": phone, "email": email, "customerId": customer_id, "rep": rep}
    person = _person(fields, (await services.teams.config(key.team)).phone_region)
    await audit_request(request, key, "access_request", target=f"kind={person.kind}")
    calls = await services.store.person_export(key.team, person)
    return {"kind": person.kind, "value": person.value, "calls": calls}
