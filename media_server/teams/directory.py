"""Teams' configurations as the server uses them: read from the store once, then served from memory."""

from __future__ import annotations

from media_server.store.store import Store
from media_server.teams.config import TeamConfig


class TeamDirectory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, TeamConfig] = {}

    async def config(self, team: str) -> TeamConfig:
        """The team's configuration; the defaults for a team that never set one."""
        cached = self._cache.get(team)
        if cached is None:
            stored = await self.store.team_config(team)
            cached = TeamConfig() if stored is None else TeamConfig.model_validate(stored)
            self._cache[team] = cached
        return cached

    async def set_config(self, team: str, config: TeamConfig, key_id: str) -> None:
        """Store it; calls that start from now on use it (live calls keep theirs)."""
        await self.store.set_team_config(team, config.model_dump(mode="json"), key_id)
        self._cache[team] = config
