"""API keys. A key is shown once, when it is created; only its SHA-256 hash is stored.

Keys are 256-bit random tokens, so a fast hash is enough (there is nothing to brute-force);
lookups are by hash, in constant time per key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

KEY_PREFIX = "msk_"
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Role(enum.StrEnum):
    ADMIN = "admin"  # everything for the team, keys included
    MANAGER = "manager"  # every call of the team, listen-in, delete
    REP = "rep"  # streams and sees calls
    INGEST = "ingest"  # telephony platforms: may only stream calls in


@dataclass(frozen=True)
class ApiKey:
    id: str
    team: str
    role: Role
    created_at: datetime
    label: str = ""
    expires_at: datetime | None = None  # None: never
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None  # to about a minute
    rotated_from: str = ""  # the key a rotation replaced

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def to_json(self) -> dict[str, object]:
        """What ``keys list`` and ``GET /v1/keys`` show of a key: never its secret (only its hash is stored)."""

        def iso(at: datetime | None) -> str | None:
            return at.isoformat().replace("+00:00", "Z") if at is not None else None

        return {
            "id": self.id,
            "team": self.team,
            "role": self.role.value,
            "label": self.label,
            "createdAt": iso(self.created_at),
            "expiresAt": iso(self.expires_at),
            "revokedAt": iso(self.revoked_at),
            "lastUsedAt": iso(self.last_used_at),
            "rotatedFrom": self.rotated_from or None,
        }

    def can(self, action: str) -> bool:
        allowed = {
            "ingest": {Role.ADMIN, Role.MANAGER, Role.REP, Role.INGEST},
            "read": {Role.ADMIN, Role.MANAGER, Role.REP},
            "delete": {Role.ADMIN, Role.MANAGER},
            "listen": {Role.ADMIN, Role.MANAGER},  # hear live calls; every listen-in is audited
            "audit": {Role.ADMIN, Role.MANAGER},  # read the listen-in audit log
            "audit_access": {Role.ADMIN},  # read the access audit (who read or changed what)
            "erase": {Role.ADMIN},  # erase a person; export what is held about them (an access request)
            "configure": {Role.ADMIN},  # the team's trackers, cues and redaction policy
            "manage_keys": {Role.ADMIN},  # list, create, revoke and rotate the team's keys
        }
        return self.role in allowed.get(action, set())


def validate_team(team: str) -> str:
    if not _TEAM.fullmatch(team):  # not match: "$" would accept a trailing newline
        raise ValueError("team must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return team


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


def looks_like_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and 20 <= len(key) <= 128


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d{1,9})([smhdw]?)$")


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or plain seconds; more than zero."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None or int(found[1]) == 0:
        raise ValueError(f"{text!r} is not a duration: a number with s, m, h, d or w (e.g. 90d)")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2] or "s"])
