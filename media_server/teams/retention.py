"""Retention: what a team's configuration (``retention``) no longer keeps is removed from the store: on start and
every ``store.purge_interval_s``. Transcripts (segments, words and the call's stored events, which resumes and
search read) go ``transcripts_days`` after a call ended, whole calls ``calls_days`` after, audit records
``audit_days`` after; calls on legal hold and live calls stay. Redis keeps events for minutes (``events.window_s``),
never days, so nothing there outlives a retention. Several servers on one database: one purges at a time
(``Store.purge``). ``clock`` is the one seam tests move."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from media_server.background import Background
from media_server.store.store import Store
from media_server.teams.config import TeamConfig

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Purger:
    store: Store
    interval_s: float = 3600.0
    clock: Callable[[], datetime] = _now
    last: dict[str, dict[str, int]] = field(default_factory=dict)  # what the last purge removed, per team
    last_at: datetime | None = None
    _task: Background = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._task = Background("retention", self._run)

    async def run_once(self) -> dict[str, dict[str, int]]:
        """Purge every team with a retention now; what went, per team."""
        now = self.clock()
        removed: dict[str, dict[str, int]] = {}
        for team, raw in (await self.store.configured_teams()).items():
            try:
                retention = TeamConfig.model_validate(raw).retention
            except ValidationError:
                log.error("team %s's stored configuration is not valid: not purged", team)
                continue
            if not (retention.transcripts_days or retention.calls_days or retention.audit_days):
                continue
            counts = await self.store.purge(
                team, now, retention.transcripts_days, retention.calls_days, retention.audit_days
            )
            removed[team] = counts
            if any(counts.values()):
                log.info("retention of team %s: removed %s", team, counts)
        self.last, self.last_at = removed, now
        return removed

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the retention purge failed; tried again in %g s", self.interval_s)
            await asyncio.sleep(self.interval_s)
