"""The registry of live calls: opens them, ends them exactly once, stores them, and says so."""

from __future__ import annotations

import asyncio
import logging

from google.protobuf import json_format

from media_server.calls.call import Call, CallServices, ChannelSpec
from media_server.calls.metadata import CallMetadata
from media_server.store.records import CallRecord
from media_server.store.store import CallExists, Store
from media_server.teams.directory import TeamDirectory
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)


class CallConflict(Exception):
    """A call with this id is live or already stored."""


class CallRegistry:
    def __init__(self, services: CallServices, store: Store, teams: TeamDirectory | None = None) -> None:
        self.services = services
        self.store = store
        self.teams = teams
        self.live: dict[str, Call] = {}
        self._ending: dict[str, asyncio.Task[CallRecord]] = {}

    async def open(
        self, call_id: str, team: str, source: str, metadata: CallMetadata, channels: list[ChannelSpec]
    ) -> Call:
        if call_id in self.live or call_id in self._ending:
            raise CallConflict(f"call {call_id!r} is already live")
        # (checked again after the await: another open of the same id may have claimed it meanwhile)
        team_config = await self.teams.config(team) if self.teams is not None else None
        if call_id in self.live or call_id in self._ending:
            raise CallConflict(f"call {call_id!r} is already live")
        call = Call(call_id, team, source, metadata, channels, self.services, team_config)
        self.live[call_id] = call  # claim the id before any await
        try:
            if await self.store.call_exists(call_id):
                raise CallConflict(f"call {call_id!r} already exists; use a new call id")
            await call.start()
        except BaseException:
            self.live.pop(call_id, None)
            raise
        log.info("call %s started (%s, team %s, channels %s)", call_id, source, team, [c.speaker for c in channels])
        return call

    def end(self, call: Call, status: str, reason: str) -> asyncio.Task[CallRecord]:
        """Finalize, store and announce the call once; later calls get the same task."""
        task = self._ending.get(call.id)
        if task is None:
            task = asyncio.create_task(self._end(call, status, reason), name=f"end-{call.id}")
            self._ending[call.id] = task
        return task

    async def _end(self, call: Call, status: str, reason: str) -> CallRecord:
        try:
            record = await call.finish(status, reason)
            try:
                await self.store.save_call(record)
            except CallExists:
                log.error("call %s was stored by someone else meanwhile; keeping theirs", call.id)
            except Exception:
                log.exception("call %s could not be stored", call.id)
                await call.error("storage_failed", "the call could not be stored; its events were delivered")
            ended = pb.CallEnded(
                status=record.status,
                reason=record.end_reason,
                duration=round(record.duration, 3),
                speakers=[
                    pb.SpeakerStats(speaker=s.speaker, talk_time=s.talk_time, word_count=s.word_count)
                    for s in record.speakers
                ],
                metrics=json_format.ParseDict(record.metrics, pb.CallMetrics()),
            )
            await call.publish(call_ended=ended)
            log.info(
                "call %s ended: %s (%s), %d segments",
                call.id,
                record.status,
                record.end_reason,
                len(record.segments),
            )
            return record
        finally:
            self.live.pop(call.id, None)
            self._ending.pop(call.id, None)
            self.services.bus.call_ended(call.id)

    async def shutdown(self) -> None:
        """End every live call as interrupted, keeping what was transcribed so far."""
        tasks = [self.end(call, "interrupted", "server_shutdown") for call in list(self.live.values())]
        tasks += list(self._ending.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
