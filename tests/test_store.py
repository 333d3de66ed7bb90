"""The store on SQLite and PostgreSQL (each test that takes ``store_url`` runs on both): call ids are unique per
team (two teams keep a call of the same id apart; a team's second call of an id is refused by the database, also
when two servers open it at once); event ids of servers sharing a database never overlap (in one process and in two
processes); a database of the previous schema is upgraded in place with its rows; two real servers on one
PostgreSQL database share their calls and refuse a team's id taken on the other.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from media_server.bus import InMemoryEventBus
from media_server.calls.lifecycle import CallConflict, CallEnd, LiveCall
from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from media_server.events import new_event
from media_server.store.journal import Journal
from media_server.store.records import CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord
from media_server.store.store import MIGRATIONS, CallExists, CallFilter, Store
from media_server.store.tables import EventRow
from media_server.v1 import events_pb2 as pb
from tests.conftest import ROOT, ThrowawayPostgres, _missing, start_server, stop_server
from tests.local_services import local_services
from tests.speech import program, tel8k


def _call(team: str, call_id: str, rep_line: str, customer_line: str) -> CallRecord:
    started = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return CallRecord(
        id=call_id,
        team=team,
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=started,
        ended_at=started + timedelta(minutes=3),
        participants=[
            ParticipantRecord("rep", "granted", True, name=f"{team} rep"),
            ParticipantRecord("customer", "granted", True, name=f"{team} customer", phone="+15550100"),
        ],
        channels=[ChannelRecord(0, "rep", 8000, True), ChannelRecord(1, "customer", 8000, True)],
        segments=[
            SegmentRecord(0, "rep", rep_line, 0.0, 2.0, 0.9),
            SegmentRecord(1, "customer", customer_line, 2.5, 4.0, 0.9),
        ],
    )


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Store]:
    store = Store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _journal(url: str, node: str = "") -> AsyncIterator[Journal]:
    """A server's journal over the store at ``url`` (another one on the same database: another server)."""
    async with _opened(url) as store:
        bus = InMemoryEventBus(10_000)
        journal = Journal(store, bus, node)
        await journal.start()
        try:
            yield journal
        finally:
            await journal.close(within_s=5.0)
            await bus.close()


def _final(call_id: str, text: str, team: str = "acme") -> pb.Event:
    return new_event(call_id, team, transcript=pb.Transcript(channel=1, speaker="customer", text=text, is_final=True))


async def _stored_ids(store: Store) -> list[int]:
    async with store.sessions() as session:
        return list((await session.scalars(select(EventRow.id).where(EventRow.id > 0).order_by(EventRow.id))).all())


class _Blind:
    """A store whose quick look for a call id finds nothing (as when another server's row is committed just after
    the look); everything else is the store's."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def call_exists(self, team: str, call_id: str) -> bool:
        return False


# -- call ids, per team ------------------------------------------------------------------------------


async def test_two_teams_may_use_one_call_id_and_each_sees_only_its_own(store_url: str) -> None:
    async with _opened(store_url) as store:
        await store.save_call(_call("acme", "c1", "Acme here, about pricing.", "My card ends in 42."))
        await store.save_call(_call("globex", "c1", "Globex support.", "The invoice is wrong."))

        acme, globex = await store.get_call("acme", "c1"), await store.get_call("globex", "c1")
        assert acme is not None and globex is not None
        assert [s.text for s in acme.segments] == ["Acme here, about pricing.", "My card ends in 42."]
        assert [s.text for s in globex.segments] == ["Globex support.", "The invoice is wrong."]
        assert [p.name for p in acme.participants] == ["acme rep", "acme customer"]
        assert [p.name for p in globex.participants] == ["globex rep", "globex customer"]
        assert [c.id for c in (await store.list_calls("acme"))[0]] == ["c1"]
        assert (await store.list_calls("acme", where=CallFilter(text="invoice")))[0] == [], "no other team's words"
        assert [c.snippet for c in (await store.list_calls("globex", where=CallFilter(text="invoice")))[0]] == [
            "The invoice is wrong."
        ]

        assert await store.set_disposition("globex", "c1", "refund")
        withdrawn = await store.withdraw_consent("acme", "c1", "customer")
        assert withdrawn is not None and withdrawn[1] == 1
        assert await store.delete_call("acme", "c1")

        assert await store.get_call("acme", "c1") is None
        kept = await store.get_call("globex", "c1")
        assert kept is not None, "deleting one team's call leaves the other team's call of that id"
        assert [s.text for s in kept.segments] == ["Globex support.", "The invoice is wrong."]
        assert kept.participants[1].phone == "+15550100" and kept.disposition == "refund"


async def test_a_call_id_the_team_has_already_is_refused_whichever_server_opens_it(
    store_url: str, tmp_path: Path
) -> None:
    async with _opened(store_url) as store:
        await store.save_call(_call("acme", "stored", "a", "b"))
        with pytest.raises(CallExists):
            await store.save_call(_call("acme", "stored", "c", "d"))

    # Two servers on one database: each its own lifecycle, store and journal.
    async with (
        local_services(tmp_path / "a", store_url, node="node-a") as a,
        local_services(tmp_path / "b", store_url, node="node-b") as b,
    ):
        with pytest.raises(CallConflict, match="already exists; use a new call id"):
            await a.hold_a_call("stored")
        with pytest.raises(CallConflict, match="1-128 characters"):  # (longer than the store keeps, on any database)
            await a.hold_a_call("x" * 129)
        for forged in ("CA1\n2026-12-04 INFO forged line", "CA\x1b[31m", "CA\x00", " CA1"):
            with pytest.raises(CallConflict, match="control characters"):  # (a Twilio callSid is not checked before)
                await a.hold_a_call(forged)
        held = await a.hold_a_call("live-1")
        with pytest.raises(CallConflict, match="already exists; use a new call id"):
            await b.hold_a_call("live-1")  # live on the other server
        globex = await b.hold_a_call("live-1", team="globex")  # another team's call of that id: its own

        # Two servers opening one new id at the same moment: the database lets exactly one in.
        outcomes = await asyncio.gather(a.hold_a_call("race"), b.hold_a_call("race"), return_exceptions=True)
        assert sorted(type(o).__name__ for o in outcomes) == ["CallConflict", "LiveCall"], outcomes

        # The calls table's key decides even when the quick look finds nothing (the other server's row committed
        # just after it): the refused call never started, and the call that holds the id is untouched.
        b.services.calls.store = _Blind(b.services.store)  # type: ignore[assignment]
        with pytest.raises(CallConflict, match="already exists"):
            await b.hold_a_call("live-1")
        assert ("acme", "live-1") not in b.services.calls.live and held.live
        assert b.services.journal.healthy
        held_by_a = {(c.team, c.id) for c in await a.services.store.live_calls("node-a")}
        assert ("acme", "live-1") in held_by_a and ("globex", "live-1") not in held_by_a
        held_by_b = {(c.team, c.id) for c in await b.services.store.live_calls("node-b")}
        assert ("globex", "live-1") in held_by_b and ("acme", "live-1") not in held_by_b

        for live in [held, globex, *(o for o in outcomes if isinstance(o, LiveCall))]:
            await live.end(CallEnd.STOP)
        stored = await a.services.store.get_call("acme", "live-1")
        assert stored is not None and (stored.status, stored.end_reason) == ("completed", "stop")
        other = await a.services.store.get_call("globex", "live-1")
        assert other is not None and other.status == "completed"


# -- leases: a server that stopped is taken over once ---------------------------------------------------


async def test_a_server_whose_lease_ran_out_is_taken_over_by_exactly_one_other(store_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with (
        local_services(tmp_path / "a", store_url, node="node-a") as a,
        local_services(tmp_path / "b", store_url, node="node-b") as b,
        local_services(tmp_path / "c", store_url, node="node-c") as c,
    ):
        assert not await a.services.store.renew_lease("node-a", "http://a", now + timedelta(seconds=15))  # (new)
        assert await a.services.store.renew_lease("node-a", "http://a", now + timedelta(seconds=15))
        await b.services.store.renew_lease("node-b", "http://b", now + timedelta(seconds=15))
        await c.services.store.renew_lease("node-c", "http://c", now + timedelta(seconds=15))
        await a.hold_a_call("on-a")
        assert await b.services.store.live_owner("acme", "on-a") == ("node-a", "http://a")
        assert await b.services.store.take_over("node-b", now) == []  # (a's lease holds)

        a.services.calls.live.pop("acme", "on-a")  # server a dies: it renews nothing, ends nothing
        later = now + timedelta(seconds=16)
        await b.services.store.renew_lease("node-b", "http://b", later + timedelta(seconds=15))  # (b, c renew)
        await c.services.store.renew_lease("node-c", "http://c", later + timedelta(seconds=15))
        taken = await asyncio.gather(
            b.services.store.take_over("node-b", later), c.services.store.take_over("node-c", later)
        )
        assert sorted(taken) == [[], ["node-a"]]
        winner = b if taken[0] else c
        await winner.services.calls.take_over(["node-a"])
        stored = await b.services.store.get_call("acme", "on-a")
        assert stored is not None and (stored.status, stored.end_reason) == ("interrupted", "node_lost")
        assert await b.services.store.live_owner("acme", "on-a") is None
        assert not await a.services.store.renew_lease("node-a", "http://a", later)  # it had lost its lease


# -- event ids across servers ------------------------------------------------------------------------


async def test_event_ids_of_two_servers_on_one_database_never_overlap(store_url: str) -> None:
    async with _journal(store_url, "node-a") as a, _journal(store_url, "node-b") as b:
        seen: list[pb.Event] = []
        subscription = a.subscribe("acme")

        async def collect() -> None:
            async for event in subscription:
                seen.append(event)

        collector = asyncio.create_task(collect())
        # A burst on server A: more events than its claimed block holds, before its writer can claim more; the
        # ids after its block are server B's, claimed at B's start.
        burst = [a.append(_final("a1", f"a {i}")) for i in range(1500)]
        from_b = [b.append(_final("b1", f"b {i}")) for i in range(10)]
        await asyncio.gather(*(a.committed(e) for e in burst), *(b.committed(e) for e in from_b))
        ids = [e.id for e in burst + from_b]
        assert len(set(ids)) == len(ids), "no id handed to two events"
        assert [e.id for e in burst] == sorted(e.id for e in burst), "A's events keep their order"
        assert burst[-1].id > from_b[-1].id, "A's ids past its block were renumbered past B's block"
        assert sorted(await _stored_ids(a.store)) == sorted(ids)
        async with asyncio.timeout(5):
            while len(seen) < len(burst):
                await asyncio.sleep(0.01)
        assert seen == burst, "A's subscribers got each event once, with the id it is stored under"
        collector.cancel()


_APPENDER = """
import asyncio, json, sys
from media_server.bus import InMemoryEventBus
from media_server.events import new_event
from media_server.store.journal import Journal
from media_server.store.store import Store
from media_server.v1 import events_pb2 as pb

async def main(url, name, rounds, size):
    store = Store(url)
    journal = Journal(store, InMemoryEventBus(), name)
    await journal.start()
    ids = []
    for r in range(rounds):
        events = [
            journal.append(new_event(name, "acme", transcript=pb.Transcript(text=f"{r} {i}", is_final=True)))
            for i in range(size)
        ]
        await journal.committed(events[-1])
        ids += [e.id for e in events]
    await journal.close()
    await store.close()
    print(json.dumps(ids))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def test_two_processes_sharing_a_database_never_get_the_same_event_ids(store_url: str) -> None:
    async with _opened(store_url):  # (the schema, before both start)
        pass
    rounds, size = 4, 700  # each round past half a block: a claim per round, racing the other process's

    async def run(name: str) -> list[int]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _APPENDER,
            store_url,
            name,
            str(rounds),
            str(size),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()[-3000:]
        ids: list[int] = json.loads(out.decode().splitlines()[-1])
        return ids

    first, second = await asyncio.gather(run("p1"), run("p2"))
    assert len(first) == len(second) == rounds * size
    assert not set(first) & set(second), "the two processes' ids overlap"
    assert first == sorted(first) and second == sorted(second)
    async with _opened(store_url) as store:
        assert sorted(await _stored_ids(store)) == sorted(first + second), "every event stored once"


# -- migrations --------------------------------------------------------------------------------------


def _database_at_0004(conn: Connection) -> None:
    """A database as the previous release left it: schema 0004, one ended call with its rows, its event, the
    event id counter."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "0004")
    tables = MetaData()
    tables.reflect(conn)
    started = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    conn.execute(
        insert(tables.tables["calls"]).values(
            id="old",
            team="acme",
            source="twilio",
            status="completed",
            end_reason="stop",
            started_at=started,
            ended_at=started + timedelta(minutes=2),
            node="node-old",
            metadata={"crm": "42"},
            speakers=[{"speaker": "rep", "talk_time": 1.5, "word_count": 3}],
            metrics={"talkRatio": 1.0},
            disposition="won",
            keywords="|pricing|",
        )
    )
    conn.execute(
        insert(tables.tables["participants"]),
        [
            {"call_id": "old", "role": r, "consent": "granted", "transcribed": True}
            | {"external_id": "", "name": f"old {r}", "phone": "", "email": ""}
            for r in ("rep", "customer")
        ],
    )
    conn.execute(
        insert(tables.tables["channels"]),
        [{"call_id": "old", "index": 0, "speaker": "mixed", "sample_rate": 8000, "transcribed": True}],
    )
    conn.execute(
        insert(tables.tables["segments"]),
        [
            {"call_id": "old", "channel": 0, "speaker": s, "text": t, "start": i, "end": i + 1.0}
            | {"confidence": 0.9, "words": []}
            for i, (s, t) in enumerate([("rep", "Old pricing talk."), ("customer", "Sounds good.")])
        ],
    )
    logged = _final("old", "Sounds good.")
    logged.id = 7
    conn.execute(
        insert(tables.tables["events"]).values(
            id=7, team="acme", call_id="old", type="transcript", channel=1, payload=logged.SerializeToString()
        )
    )
    conn.execute(insert(tables.tables["counters"]).values(name="event_id", value=1007))


async def test_servers_starting_at_once_on_one_postgresql_database_migrate_one_after_the_other(
    postgres_url: str,
) -> None:
    stores = [Store(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].save_call(_call("acme", "c1", "a", "b"))
        assert [c.id for c in (await stores[2].list_calls("acme"))[0]] == ["c1"]
    finally:
        for store in stores:
            await store.close()


async def test_a_database_of_the_previous_schema_is_upgraded_in_place_with_its_calls(store_url: str) -> None:
    engine = create_async_engine(store_url)
    async with engine.begin() as conn:
        await conn.run_sync(_database_at_0004)
    await engine.dispose()

    async with _opened(store_url) as store:
        async with store.engine.connect() as conn:
            scripts = Config()
            scripts.set_main_option("script_location", str(MIGRATIONS))
            newest = ScriptDirectory.from_config(scripts).get_current_head()
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == newest
        old = await store.get_call("acme", "old")
        assert old is not None
        assert (old.status, old.disposition, old.keywords, old.metadata) == (
            "completed",
            "won",
            ["pricing"],
            {"crm": "42"},
        )
        assert [p.name for p in old.participants] == ["old rep", "old customer"]
        assert [(c.index, c.speaker) for c in old.channels] == [(0, "mixed")]
        assert [s.text for s in old.segments] == ["Old pricing talk.", "Sounds good."]
        assert [c.id for c in (await store.list_calls("acme", where=CallFilter(text="pricing")))[0]] == ["old"]
        events, _ = await store.events_after("acme", "old", 0, 10_000, 10)
        assert [(e.id, e.transcript.text) for e in events] == [(7, "Sounds good.")]

        # Now keyed by team: another team may use the id; this team may not.
        await store.save_call(_call("globex", "old", "x", "y"))
        with pytest.raises(CallExists):
            await store.save_call(_call("acme", "old", "x", "y"))
        # Deleting the call takes its rows with it (the rebuilt tables still cascade).
        assert await store.delete_call("acme", "old")
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM segments WHERE team = 'acme'"))).scalar() == 0

    async with _journal(store_url) as journal:  # event ids go on after those the old server handed out
        event = journal.append(_final("new", "after the upgrade"))
        await journal.committed(event)
        assert event.id > 1007


# -- two servers on PostgreSQL -----------------------------------------------------------------------


@pytest.mark.e2e
async def test_two_servers_on_one_postgresql_database_share_calls_and_each_team_s_ids(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {"MEDIA_SERVER_DATABASE_URL": postgres_url, "MEDIA_SERVER_EVENTS__REPLAY_MAX": "1000"}
    node_a = start_server(tmp_path / "a", env)
    node_b = None
    try:
        node_b = start_server(tmp_path / "b", env)
        acme, globex = node_a.keys["admin"], node_a.keys["other"]  # (keys live in the shared database)
        speech = program(tel8k()[:2], gap_s=0.8, lead_s=0.3)
        recording = Recording([speech.pcm], speech.sample_rate)
        call_id = "CA" + uuid.uuid4().hex
        consent = {"repConsent": "granted", "customerConsent": "granted"}

        async def stream(server_ws: str, key: str) -> tuple[int | None, str]:
            result = await stream_call(recording, server_ws, "twilio", key, call_id=call_id, metadata=consent, speed=4)
            return result.close_code, result.close_reason

        assert (await stream(node_a.ws_url, acme))[0] == 1000
        assert (await stream(node_b.ws_url, globex))[0] == 1000, "another team's call of the same id"
        code, reason = await stream(node_b.ws_url, acme)
        assert code == 1008 and "already exists" in reason, (code, reason)

        with node_b.http(acme) as http:  # read back on the other server
            mine = http.get(f"/v1/calls/{call_id}").json()
        with node_a.http(globex) as http:
            theirs = http.get(f"/v1/calls/{call_id}").json()
            listed = [c["id"] for c in http.get("/v1/calls").json()["calls"]]
        assert (mine["status"], theirs["status"]) == ("completed", "completed")
        assert mine["transcript"] and theirs["transcript"]
        assert listed == [call_id]
        with node_a.http(acme) as http:
            assert http.get(f"/v1/calls/{call_id}").json()["transcript"] == mine["transcript"], "untouched"
    finally:
        stop_server(node_a)
        if node_b is not None:
            stop_server(node_b)
    async with _opened(postgres_url) as store:
        async with store.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(EventRow).where(EventRow.id > 0))
        assert count and len(set(await _stored_ids(store))) == count


def _ready(server_url: str) -> tuple[int, dict[str, object]]:
    import httpx

    response = httpx.get(f"{server_url}/health/ready", timeout=5)
    return response.status_code, response.json()


def test_readiness_is_false_while_the_shared_database_does_not_answer(tmp_path: Path) -> None:
    """A load balancer stops sending calls to a node whose PostgreSQL is gone, and sends them again once it is
    back (``/health/ready`` 503 "database unreachable", then 200); liveness stays up throughout."""
    import time

    import httpx

    try:
        database = ThrowawayPostgres.start()
    except (RuntimeError, OSError) as exc:
        _missing(f"no PostgreSQL server could be started: {exc}")
        return
    try:
        server = start_server(tmp_path / "data", {"MEDIA_SERVER_DATABASE_URL": database.url})
        try:
            assert _ready(server.url)[0] == 200
            database.pause()
            deadline = time.monotonic() + 15
            while (answer := _ready(server.url))[0] == 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert answer == (503, {"ready": False, "reason": "database unreachable"})
            assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200, "alive, only not ready"
            database.resume()
            deadline = time.monotonic() + 15
            while (answer := _ready(server.url))[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert answer[0] == 200, answer
        finally:
            stop_server(server)
    finally:
        database.stop()
