"""API keys: format, hashing, role permissions, team names, and their storage (hash only) in SQLite."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_server.auth.keys import (
    KEY_PREFIX,
    ApiKey,
    Role,
    generate_key,
    hash_key,
    looks_like_key,
    same_hash,
    validate_team,
)
from media_server.store.store import Store


def _key(role: Role) -> ApiKey:
    return ApiKey(id="k1", team="acme", role=role, created_at=datetime.now(UTC))


# -- keys.py -----------------------------------------------------------------------------------------


def test_generated_keys_have_the_prefix_and_are_unique() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(KEY_PREFIX) and KEY_PREFIX == "msk_"
        body = key[len(KEY_PREFIX) :]
        assert len(body) >= 43  # 32 random bytes, URL-safe base64
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in body)
        assert looks_like_key(key)


def test_hash_is_sha256_hex_of_the_key() -> None:
    key = "msk_example-key"
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(hash_key(key)) == 64
    assert hash_key(key) != hash_key(key + "x")


def test_same_hash() -> None:
    h = hash_key(generate_key())
    assert same_hash(h, h)
    assert not same_hash(h, hash_key(generate_key()))


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("msk_" + "a" * 16, True),
        ("msk_" + "a" * 15, False),  # too short
        ("msk_" + "a" * 124, True),
        ("msk_" + "a" * 125, False),  # too long
        ("sk_" + "a" * 40, False),  # wrong prefix
        ("", False),
    ],
)
def test_looks_like_key(key: str, ok: bool) -> None:
    assert looks_like_key(key) is ok


@pytest.mark.parametrize(
    ("role", "ingest", "read", "delete"),
    [
        (Role.ADMIN, True, True, True),
        (Role.MANAGER, True, True, True),
        (Role.REP, True, True, False),
        (Role.INGEST, True, False, False),
    ],
)
def test_role_permissions(role: Role, ingest: bool, read: bool, delete: bool) -> None:
    key = _key(role)
    assert key.can("ingest") is ingest
    assert key.can("read") is read
    assert key.can("delete") is delete


@pytest.mark.parametrize("role", list(Role))
def test_unknown_action_is_denied(role: Role) -> None:
    assert _key(role).can("launch_missiles") is False
    assert _key(role).can("") is False


@pytest.mark.parametrize("team", ["acme", "a", "A1", "acme-corp.eu_2", "x" * 64, "0team"])
def test_valid_team_names(team: str) -> None:
    assert validate_team(team) == team


@pytest.mark.parametrize(
    "team", ["", "x" * 65, "-acme", ".acme", "_acme", "ac me", "acme/x", "acmé", "acme\n", "acme\t", "\nacme"]
)
def test_invalid_team_names(team: str) -> None:
    with pytest.raises(ValueError, match="team must be"):
        validate_team(team)


# -- the store's keys ----------------------------------------------------------------------------------


def _database_files(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.glob("db.sqlite*")}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_created_key_resolves_to_its_team_and_role(store: Store) -> None:
    key, secret = await store.create_key("acme", Role.MANAGER, label="ops laptop")
    assert looks_like_key(secret)
    assert (key.team, key.role, key.label) == ("acme", Role.MANAGER, "ops laptop")

    found = await store.find_key(secret)
    assert found is not None
    assert (found.id, found.team, found.role, found.label) == (key.id, "acme", Role.MANAGER, "ops laptop")
    assert found.created_at.tzinfo is not None
    assert abs((found.created_at - datetime.now(UTC)).total_seconds()) < 60


async def test_keys_of_different_teams_stay_apart(store: Store) -> None:
    _, acme = await store.create_key("acme", Role.ADMIN)
    _, globex = await store.create_key("globex", Role.INGEST)
    acme_key, globex_key = await store.find_key(acme), await store.find_key(globex)
    assert acme_key is not None and globex_key is not None
    assert (acme_key.team, acme_key.role) == ("acme", Role.ADMIN)
    assert (globex_key.team, globex_key.role) == ("globex", Role.INGEST)
    assert acme_key.id != globex_key.id


async def test_wrong_key_resolves_to_none(store: Store) -> None:
    _, secret = await store.create_key("acme", Role.REP)
    assert await store.find_key(generate_key()) is None
    assert await store.find_key(secret[:-1]) is None
    assert await store.find_key(secret + "x") is None
    assert await store.find_key("") is None
    assert await store.find_key(hash_key(secret)) is None  # the stored hash is not a key


async def test_create_key_rejects_a_bad_team(store: Store) -> None:
    with pytest.raises(ValueError, match="team must be"):
        await store.create_key("not a team", Role.ADMIN)


async def test_database_never_contains_the_plaintext_key(store: Store, tmp_path: Path) -> None:
    secrets = [(await store.create_key("acme", role))[1] for role in Role]
    await store.close()

    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
        hashes = {row[0] for row in conn.execute("SELECT key_hash FROM api_keys")}
    assert len(rows) == len(secrets)
    assert hashes == {hash_key(s) for s in secrets}
    for secret in secrets:
        assert not any(secret in str(value) for row in rows for value in row)
        assert not any(secret[len(KEY_PREFIX) :] in str(value) for row in rows for value in row)

    # Nor do the bytes on disk (the database and any WAL / journal beside it).
    files = _database_files(tmp_path)
    assert db in files
    for raw in files.values():
        for secret in secrets:
            assert secret.encode() not in raw
            assert secret[len(KEY_PREFIX) :].encode() not in raw


async def test_revoked_key_resolves_to_none(store: Store, tmp_path: Path) -> None:
    key, secret = await store.create_key("acme", Role.ADMIN)
    _, other = await store.create_key("acme", Role.ADMIN)
    await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", ("2026-01-01 00:00:00.000000", key.id))
    reopened = Store(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await reopened.open()
    try:
        assert await reopened.find_key(secret) is None
        assert await reopened.find_key(other) is not None
    finally:
        await reopened.close()


async def test_keys_survive_a_restart(store: Store, tmp_path: Path) -> None:
    key, secret = await store.create_key("acme", Role.REP)
    await store.close()
    reopened = Store(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await reopened.open()  # migrations are idempotent
    try:
        found = await reopened.find_key(secret)
        assert found is not None and found.id == key.id and found.role is Role.REP
    finally:
        await reopened.close()
