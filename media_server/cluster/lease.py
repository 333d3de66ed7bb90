"""A server's lease in the shared database, and the takeover of servers whose lease ran out.

Each server renews its row in ``nodes`` every ``lease_s / 3`` seconds; every server also looks for rows whose
lease ran out (the server died, or lost the database for longer than its lease) and takes them over in one
transaction (``Store.take_over``: the row goes, its live calls become this server's), then closes those calls
as ``interrupted`` with reason ``node_lost`` (``CallLifecycle.take_over``), which their subscribers see as
``call_ended``. The database decides who takes a server over, not a guess of each: two servers looking at once,
one of them gets it. Times are the servers' clocks (keep them in sync: NTP; the lease is 15 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from media_server.store.store import Store

log = logging.getLogger(__name__)


@dataclass
class NodeLease:
    store: Store
    node: str
    url: str  # where this server answers HTTP (for requests about its calls made on another server)
    lease_s: float
    on_taken: Callable[[list[str]], Awaitable[None]]  # close the calls of these servers (now this one's)
    taken_over: list[str] = field(default_factory=list)  # servers this one took over since it started
    healthy: bool = True
    _unclosed: list[str] = field(default_factory=list)  # taken over, their calls not closed yet
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the lease (a server of this name whose lease has not run out yet: its calls are its own); then
        keep it and look for servers to take over."""
        if not await self._renew():
            log.info("server %s holds a lease in the database (%s)", self.node, self.url)
        self._task = asyncio.create_task(self._run(), name="node-lease")

    async def stop(self) -> None:
        """Give the lease up (its calls were ended already)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.store.release_lease(self.node)

    def stats(self) -> dict[str, object]:
        return {
            "node": self.node,
            "url": self.url,
            "leaseS": self.lease_s,
            "healthy": self.healthy,
            "takenOver": list(self.taken_over),
        }

    async def _renew(self) -> bool:
        return await self.store.renew_lease(self.node, self.url, datetime.now(UTC) + timedelta(seconds=self.lease_s))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self._renew():
                    log.error(
                        "server %s had lost its lease (the database was away longer than %g s)", self.node, self.lease_s
                    )
                taken = await self.store.take_over(self.node, datetime.now(UTC))
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.error("the lease of server %s could not be renewed: %s", self.node, exc)
                self.healthy = False
                continue
            if taken:
                log.warning("servers %s stopped renewing their lease: taking over their calls", ", ".join(taken))
                self.taken_over += taken
                self._unclosed += taken
            if self._unclosed:
                try:
                    await self.on_taken(self._unclosed)
                    self._unclosed = []
                except Exception:
                    log.exception("closing the calls of servers %s failed; tried again", ", ".join(self._unclosed))
