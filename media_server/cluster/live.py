"""Live calls across servers: each server keeps what the dashboard's wall shows of its live calls in Redis, one
hash per team (``<prefix>live:<team>``: call id -> the server holding it, when this was written and the call's
snapshot), rewritten every ``interval_s`` and removed when the call ends. ``/v1/live`` on any server shows its own
calls and the others' (an entry not rewritten for ``3 * interval_s`` is a server that stopped: left out; its calls
are closed by the lease's takeover). Who holds a call is the database's to say (``Store.live_owner``), not
this directory's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import RedisError

from media_server.bus.redis import redis_client

log = logging.getLogger(__name__)


class LiveDirectory:
    """One server: no other server's calls (the embedded default)."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def remote(self, team: str) -> list[dict[str, Any]]:
        """What the wall shows of the team's calls live on other servers."""
        return []


class RedisLiveDirectory(LiveDirectory):
    def __init__(
        self,
        url: str,
        prefix: str,
        node: str,
        calls: Callable[[], Iterable[tuple[str, str, dict[str, Any]]]],
        interval_s: float = 1.0,
    ):
        """``calls``: this server's live calls to show, as (team, call id, snapshot)."""
        self.prefix = prefix
        self.node = node
        self.calls = calls
        self.interval_s = interval_s
        self._client = redis_client(url, socket_connect_timeout=2, socket_timeout=5)
        self._shown: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def _key(self, team: str) -> str:
        return f"{self.prefix}live:{team}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-directory")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._write()  # (the calls ended by now: their entries go)
        await self._client.aclose()

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self._write()
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("live calls could not be shown to the other servers: %s", exc)
                failing = True
            await asyncio.sleep(self.interval_s)

    async def _write(self) -> None:
        now = time.time()
        shown: set[tuple[str, str]] = set()
        async with self._client.pipeline(transaction=False) as pipe:
            for team, call_id, snapshot in self.calls():
                entry = {"node": self.node, "at": now, "call": snapshot}
                pipe.hset(self._key(team), call_id, json.dumps(entry))
                pipe.expire(self._key(team), int(self.interval_s * 10) + 60)
                shown.add((team, call_id))
            for team, call_id in self._shown - shown:
                pipe.hdel(self._key(team), call_id)
            await pipe.execute()
        self._shown = shown

    async def _entries(self, team: str) -> dict[str, dict[str, Any]]:
        try:
            raw: Any = await self._client.hgetall(self._key(team))
        except (RedisError, OSError) as exc:
            log.warning("the other servers' live calls could not be read: %s", exc)
            return {}
        fresh = time.time() - 3 * self.interval_s
        entries = {}
        for call_id, value in raw.items():
            try:
                entry = json.loads(value)
            except ValueError:
                continue
            if entry.get("node") != self.node and float(entry.get("at", 0)) >= fresh:
                entries[call_id.decode()] = entry
        return entries

    async def remote(self, team: str) -> list[dict[str, Any]]:
        return [dict(entry["call"], node=entry["node"]) for entry in (await self._entries(team)).values()]
