"""Long-lived connections by API key, closed when their key stops authenticating.

Every connection that outlives its request (event and ingest websockets, gRPC streams, listen-ins) holds its key
here with a way to end it (:meth:`KeySessions.hold`). A :class:`KeyWatcher` asks the database every
``interval_s`` (0.5 s) which of the held keys are revoked, expired or gone, and ends their connections: a key
revoked on this server, on another server sharing the database, or by ``media-server keys revoke`` in another
process is noticed within a second. How each connection is ended:

=========================================  ======================================================================
websockets (events, Twilio/L16, Deepgram)  close ``4401`` ``API key revoked or expired`` (ingest: the call ends
                                           as ``key_revoked``, what was transcribed is kept)
gRPC streams (StreamCall, Subscribe, Riva)  ``UNAUTHENTICATED`` ``API key revoked or expired``
listen-ins                                  the peer connection is closed, the audit records ``key_revoked``
=========================================  ======================================================================
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from media_server.background import Background

log = logging.getLogger(__name__)

CLOSE_REVOKED = 4401  # websocket close code: the key that opened the connection no longer authenticates
REVOKED = "API key revoked or expired"

Revoke = Callable[[], object]
"""Ends one connection (called on the event loop; must not block: start what takes time as a task)."""


class KeySessions:
    """The open connections of each key."""

    def __init__(self) -> None:
        self._held: dict[str, dict[int, Revoke]] = {}
        self._ids = itertools.count()

    def hold(self, key_id: str, revoke: Revoke) -> Held:
        """Register a connection of ``key_id``; release the handle when the connection ends."""
        number = next(self._ids)
        self._held.setdefault(key_id, {})[number] = revoke
        return Held(self, key_id, number)

    def _release(self, key_id: str, number: int) -> None:
        held = self._held.get(key_id)
        if held is not None:
            held.pop(number, None)
            if not held:
                del self._held[key_id]

    def keys(self) -> set[str]:
        return set(self._held)

    def __len__(self) -> int:
        return sum(len(held) for held in self._held.values())

    def revoke(self, key_id: str) -> int:
        """End every connection of ``key_id``; how many."""
        held = self._held.pop(key_id, {})
        for revoke in held.values():
            try:
                revoke()
            except Exception:
                log.exception("ending a connection of revoked key %s failed", key_id)
        return len(held)


class Held:
    """One registered connection (a context manager: released on exit)."""

    def __init__(self, sessions: KeySessions, key_id: str, number: int) -> None:
        self._sessions, self.key_id, self._number = sessions, key_id, number

    def release(self) -> None:
        self._sessions._release(self.key_id, self._number)

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class KeyStore(Protocol):
    async def invalid_keys(self, key_ids: set[str]) -> set[str]: ...


class KeyWatcher:
    """Ends the connections of keys that no longer authenticate (polls the database: any process may revoke)."""

    def __init__(self, store: KeyStore, sessions: KeySessions, interval_s: float = 0.5) -> None:
        self.store = store
        self.sessions = sessions
        self.interval_s = interval_s
        self._task = Background("key-watcher", self._run)

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> int:
        """One look: end the connections of held keys that are revoked, expired or gone; how many."""
        held = self.sessions.keys()
        if not held:
            return 0
        ended = 0
        for key_id in sorted(await self.store.invalid_keys(held)):
            count = self.sessions.revoke(key_id)
            if count:
                log.info("API key %s is revoked or expired: ended its %d open connection(s)", key_id, count)
            ended += count
        return ended

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception as exc:  # the database is away for a moment: look again next time
                log.debug("key watcher: %s", exc)
