"""A team's configuration: ``GET /v1/team/config`` (any key of the team that may read) and
``PUT /v1/team/config`` (admin keys): trackers, battlecards, coaching thresholds, redaction policy.

A configuration that does not validate is refused as a whole with ``400`` and one line per problem
(``trackers[0].category: category must be one of ...``); nothing of it is applied.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from media_server.api import models
from media_server.api.audit import audit_request
from media_server.api.auth import require_key, services_of
from media_server.teams.config import TeamConfig
from media_server.teams.validation import describe

router = APIRouter(prefix="/v1/team", tags=["team"], responses=models.AUTH)


@router.get("/config", response_model=models.TeamConfigAnswer)
async def get_config(request: Request) -> dict[str, Any]:
    key = await require_key(request)
    config = await services_of(request).teams.config(key.team)
    return {"team": key.team, "config": config.model_dump(mode="json")}


@router.put(
    "/config",
    response_model=models.TeamConfigAnswer,
    responses={400: {"model": models.InvalidConfig, "description": "the configuration does not validate"}},
    openapi_extra=models.body(TeamConfig, "the team's whole configuration (what it leaves out: defaults)"),
)
async def put_config(request: Request) -> dict[str, Any]:
    key = await require_key(request, "configure")
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body must be a JSON object: the team's configuration") from None
    try:
        config = TeamConfig.model_validate(body)
    except ValidationError as exc:
        raise HTTPException(400, {"message": "invalid team configuration", "errors": describe(exc)}) from None
    await audit_request(request, key, "config_change")
    await services_of(request).teams.set_config(key.team, config, key.id)
    return {"team": key.team, "config": config.model_dump(mode="json")}
