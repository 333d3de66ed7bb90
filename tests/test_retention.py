"""A team's retention, as an auditor checks it: with the server's clock moved on (the purger's one seam), a
call's transcript and stored events go after ``transcripts_days``, the whole call after ``calls_days``, audit
records after ``audit_days``; a call on legal hold and a live call stay. On SQLite and PostgreSQL (a real store);
the legal hold and the configuration through the real REST routers under uvicorn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from media_server.api import audit, calls, team
from media_server.auth.keys import Role
from media_server.calls.lifecycle import CallEnd
from media_server.events import new_event
from media_server.store.records import AccessRecord, CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord
from media_server.teams.retention import Purger
from media_server.v1 import events_pb2 as pb
from tests.local_services import Local, local_http

RETENTION = {"retention": {"transcripts_days": 30, "calls_days": 365, "audit_days": 90}}


def _ended_call(call_id: str, ended: datetime) -> CallRecord:
    return CallRecord(
        id=call_id,
        team="acme",
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=ended - timedelta(minutes=3),
        ended_at=ended,
        participants=[
            ParticipantRecord("rep", "granted", True, name="Rita"),
            ParticipantRecord("customer", "granted", True, name="Jane Roe", phone="+15551230000"),
        ],
        channels=[ChannelRecord(0, "rep", 8000, True), ChannelRecord(1, "customer", 8000, True)],
        segments=[SegmentRecord(1, "customer", "my card number is on file", 2.5, 4.0, 0.9)],
        metrics={"talkRatio": 0.5},
        disposition="meeting_booked",
    )


async def _with_events(local: Local, call_id: str) -> None:
    """The call's final in the stored event log too (what a resume with after= hands out)."""
    transcript = pb.Transcript(channel=1, speaker="customer", text="my card number is on file", is_final=True)
    event = local.services.journal.append(new_event(call_id, "acme", transcript=transcript))
    await local.services.journal.committed(event)


async def _logged(local: Local, call_id: str) -> int:
    events, _ = await local.services.store.events_after("acme", call_id, 0, 2**62, 1000)
    return len(events)


async def test_transcripts_calls_and_audit_records_go_when_the_team_s_retention_says(
    tmp_path: Path, store_url: str
) -> None:
    async with local_http(tmp_path, [calls.router, team.router, audit.router], store_url) as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "ops")
        now = datetime.now(UTC)
        for call_id in ("old", "held"):
            await store.save_call(_ended_call(call_id, now))
            await _with_events(local, call_id)
        live = await local.hold_a_call("live")
        await store.record_access(AccessRecord("acme", "read_call", now, call_id="old"))
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
            assert (await http.put("/v1/team/config", json=RETENTION)).status_code == 200
            shown = (await http.get("/v1/team/config")).json()["config"]["retention"]
            assert shown == RETENTION["retention"]
            hold = await http.put("/v1/calls/held/legal-hold", json={"hold": True})
            assert hold.status_code == 200 and hold.json()["legalHold"] is True
            assert (await http.put("/v1/calls/nope/legal-hold", json={"hold": True})).status_code == 404

        clock = now
        purger = Purger(store, clock=lambda: clock)
        assert (await purger.run_once())["acme"] == {"calls": 0, "segments": 0, "events": 0, "auditRecords": 0}

        clock = now + timedelta(days=31)  # the transcript's time is up; the call log stays
        removed = (await purger.run_once())["acme"]
        assert (removed["segments"], removed["events"], removed["calls"]) == (1, 1, 0)
        old = await store.get_call("acme", "old")
        assert old is not None and old.segments == [] and old.disposition == "meeting_booked"
        assert await _logged(local, "old") == 0
        held = await store.get_call("acme", "held")
        assert held is not None and held.segments and held.legal_hold and await _logged(local, "held") == 1
        assert await store.get_call("acme", "live") is not None

        clock = now + timedelta(days=91)  # audit records (the reads, the keys made, the hold) older than 90 days
        assert (await purger.run_once())["acme"]["auditRecords"] >= 3
        assert [e.action for e in await store.access_log("acme")] == []

        clock = now + timedelta(days=366)  # the call's time is up
        assert (await purger.run_once())["acme"]["calls"] == 1
        assert await store.get_call("acme", "old") is None
        assert await store.get_call("acme", "held") is not None  # (legal hold)
        assert await store.get_call("acme", "live") is not None  # (live: never purged)
        await live.end(CallEnd.STOP)
