"""The team's API keys, for its admins: ``GET /v1/keys``, ``POST /v1/keys``, ``POST /v1/keys/{id}/revoke`` (or
``DELETE /v1/keys/{id}``), ``POST /v1/keys/{id}/rotate``.

A key's secret is shown once, in the answer that creates it (only its hash is stored). Revoking a key ends its open
connections within a second, on every server sharing the database (``auth/sessions.py``); a rotation makes a new
secret for the same team, role and label and revokes the old one now, or lets it expire after ``grace``. Every
operation, listing included, is in the access audit (``key_list``, ``key_create``, ``key_revoke``, ``key_rotate``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from media_server.api import models
from media_server.api.audit import remote_of
from media_server.api.auth import require_key, services_of
from media_server.auth.keys import ApiKey, Role, parse_duration
from media_server.store.store import Actor

router = APIRouter(tags=["keys"], responses=models.AUTH)

Duration = Annotated[str | int | None, Field(description="e.g. 90d, 12h, 30m, or seconds")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NewKey(_Body):
    role: Role
    label: str = Field("", max_length=128)
    expires_in: Duration = Field(None, alias="expiresIn")
    expires_at: datetime | None = Field(None, alias="expiresAt")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Rotation(_Body):
    grace: Duration = Field(None, description="the old key keeps working this long (default: revoked at once)")
    expires_in: Duration = Field(None, alias="expiresIn")


def _duration(value: str | int | None, name: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def _expiry(expires_in: str | int | None, expires_at: datetime | None = None) -> datetime | None:
    now = datetime.now(UTC)
    after = _duration(expires_in, "expiresIn")
    if after is not None and expires_at is not None:
        raise HTTPException(422, "give expiresIn or expiresAt, not both")
    if expires_at is not None and expires_at <= now:
        raise HTTPException(422, "expiresAt is in the past")
    return now + after if after is not None else expires_at


def _actor(request: Request, key: ApiKey) -> Actor:
    return Actor(key.id, key.label, key.role.value, "rest", remote_of(request))


@router.get("/v1/keys", response_model=models.KeyList)
async def list_keys(request: Request) -> dict[str, Any]:
    """The team's keys, oldest first (never their secrets): revoked and expired ones too."""
    key = await require_key(request, "manage_keys")
    keys = await services_of(request).store.list_keys(key.team, by=_actor(request, key))
    return {"keys": [k.to_json() for k in keys]}


@router.post("/v1/keys", status_code=201, response_model=models.KeyCreated)
async def create_key(request: Request, body: NewKey) -> dict[str, Any]:
    """A new key of the team; ``key`` in the answer is its secret, shown only this once."""
    key = await require_key(request, "manage_keys")
    expires_at = _expiry(body.expires_in, body.expires_at)
    created, secret = await services_of(request).store.create_key(
        key.team, body.role, body.label, expires_at, by=_actor(request, key)
    )
    return {**created.to_json(), "key": secret}


@router.post("/v1/keys/{key_id}/revoke", response_model=models.KeyInfo, responses=models.errors(404))
async def revoke_key(request: Request, key_id: str) -> dict[str, Any]:
    """Revoke a key of the team now: it is refused from now on and its open connections are closed."""
    key = await require_key(request, "manage_keys")
    services = services_of(request)
    revoked = await services.store.revoke_key(key_id[:64], key.team, by=_actor(request, key))
    if revoked is None:
        raise HTTPException(404, "no such key")
    services.sessions.revoke(revoked.id)  # at once here; the other servers' watchers within a second
    return revoked.to_json()


@router.delete("/v1/keys/{key_id}", response_model=models.KeyInfo, responses=models.errors(404))
async def delete_key(request: Request, key_id: str) -> dict[str, Any]:
    """The same as ``POST /v1/keys/{id}/revoke`` (the key stays listed, revoked)."""
    return await revoke_key(request, key_id)


@router.post(
    "/v1/keys/{key_id}/rotate", status_code=201, response_model=models.KeyRotated, responses=models.errors(404)
)
async def rotate_key(request: Request, key_id: str, body: Rotation | None = None) -> dict[str, Any]:
    """A new secret for a key: a new key of the same role and label (``key``: its secret, shown this once); the old
    one is revoked now, or expires after ``grace``. ``previous`` is the old key."""
    key = await require_key(request, "manage_keys")
    body = body or Rotation()
    services = services_of(request)
    rotated = await services.store.rotate_key(
        key_id[:64],
        key.team,
        grace=_duration(body.grace, "grace") or timedelta(0),
        expires_at=_expiry(body.expires_in),
        by=_actor(request, key),
    )
    if rotated is None:
        raise HTTPException(404, "no such key (or it is revoked or expired)")
    old, new, secret = rotated
    if old.revoked_at is not None:
        services.sessions.revoke(old.id)
    return {**new.to_json(), "key": secret, "previous": old.to_json()}
