"""``media-server keys list|revoke|rotate``: the keys' lifecycle on the command line (``keys create`` is in
``cli.py``). They work on the database directly, also while servers run on it: a revoked key's open connections are
closed by every server's key watcher within a second. Each is written to the access audit, by ``cli``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from media_server.auth.keys import ApiKey, parse_duration
from media_server.config import Settings

T = TypeVar("T")
SettingsOf = Callable[[argparse.Namespace], Settings]
Common = Callable[[argparse.ArgumentParser], None]


def expiry(text: str | None) -> datetime | None:
    """``--expires-in``: when a key made now expires (None: never)."""
    return datetime.now(UTC) + parse_duration(text) if text else None


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at is not None else "-"


def _state(key: ApiKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked " + _when(key.revoked_at)
    if key.expires_at is not None and key.expires_at <= now:
        return "expired " + _when(key.expires_at)
    return "valid"


def _run(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    from media_server.store.store import Store  # (the store's imports only for the commands that use it)

    async def run() -> T:
        store = Store(settings.db_url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    keys: list[ApiKey] = _run(settings, lambda store: store.list_keys(args.team))
    if args.json:
        print(json.dumps([key.to_json() for key in keys], indent=2))
        return 0
    now = datetime.now(UTC)
    rows = [("ID", "TEAM", "ROLE", "LABEL", "CREATED", "EXPIRES", "STATE", "LAST USED")]
    rows += [
        (
            k.id,
            k.team,
            k.role.value,
            k.label or "-",
            _when(k.created_at),
            _when(k.expires_at),
            _state(k, now),
            _when(k.last_used_at),
        )
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    key: ApiKey | None = _run(settings, lambda store: store.revoke_key(args.key_id, args.team))
    if key is None:
        print(f"error: no key {args.key_id}" + (f" of team {args.team}" if args.team else ""), file=sys.stderr)
        return 1
    print(f"revoked {key.role.value} key {key.id} of team {key.team}; servers close its connections within a second")
    return 0


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    grace = parse_duration(args.grace) if args.grace else timedelta(0)
    expires_at = expiry(args.expires_in)
    rotated = _run(settings, lambda store: store.rotate_key(args.key_id, args.team, grace=grace, expires_at=expires_at))
    if rotated is None:
        print(f"error: no valid key {args.key_id} (unknown, revoked or expired)", file=sys.stderr)
        return 1
    old, new, secret = rotated
    ends = "revoked now" if old.revoked_at is not None else f"valid until {_when(old.expires_at)} UTC"
    print(f"rotated key {old.id} ({ends}): new {new.role.value} key {new.id} for team {new.team}; shown only once:")
    print(secret)
    return 0


def add_commands(keys: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, of: SettingsOf) -> None:
    """``list``, ``revoke`` and ``rotate`` under ``media-server keys``."""

    def handler(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            try:
                return command(args, of(args))
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2

        return run

    listing = keys.add_parser("list", help="list keys (never their secrets): id, team, role, label, dates, state")
    listing.add_argument("--team", help="only this team's keys")
    listing.add_argument("--json", action="store_true")
    common(listing)
    listing.set_defaults(func=handler(cmd_list))

    revoke = keys.add_parser("revoke", help="revoke a key: refused from now on, its open connections closed")
    revoke.add_argument("key_id")
    revoke.add_argument("--team", help="only if the key is this team's")
    common(revoke)
    revoke.set_defaults(func=handler(cmd_revoke))

    rotate = keys.add_parser(
        "rotate", help="a new secret for a key (same team, role, label); the new key is printed as the last line"
    )
    rotate.add_argument("key_id")
    rotate.add_argument("--team", help="only if the key is this team's")
    rotate.add_argument("--grace", help="the old key keeps working this long (e.g. 1h; default: revoked at once)")
    rotate.add_argument("--expires-in", help="the new key expires after this (e.g. 90d; default: the old lifetime)")
    common(rotate)
    rotate.set_defaults(func=handler(cmd_rotate))
