"""Rep activity: counts, times, averages, tracker hits and dispositions per rep, from stored calls and from the
anonymised daily aggregates that ``/v1/reps/activity`` reads (the real REST routers under uvicorn over a real
store, SQLite and PostgreSQL): written as calls end, following a later disposition, unchanged when the calls are
deleted or purged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from media_server.api import calls as calls_api
from media_server.auth.keys import Role
from media_server.insights.activity import activity_of_calls
from media_server.store.aggregates import day_of
from media_server.store.records import CallRecord, ParticipantRecord
from media_server.teams.config import Retention, TeamConfig
from media_server.teams.retention import Purger
from tests.local_services import local_http


def call(rep_id: str, minutes: float, metrics: dict, disposition: str = "") -> CallRecord:  # type: ignore[type-arg]
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    return CallRecord(
        id=f"c-{rep_id}-{minutes}",
        team="acme",
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=start,
        ended_at=start + timedelta(minutes=minutes),
        participants=[ParticipantRecord("rep", "granted", True, id=rep_id, name=rep_id.title())],
        metrics=metrics,
        disposition=disposition,
    )


def test_activity_per_rep() -> None:
    calls = [
        call(
            "dana",
            10,
            {
                "talkTime": {"rep": 300},
                "talkRatio": 0.6,
                "longestMonologue": 50,
                "patience": 0.8,
                "questions": {"rep": 5},
                "trackerHits": {"Zorvexa": 2},
                "cues": {"talk_ratio": 1, "monologue": 1},
            },
            "meeting_booked",
        ),
        call(
            "dana",
            20,
            {
                "talkTime": {"rep": 500},
                "talkRatio": 0.4,
                "longestMonologue": 70,
                "patience": None,
                "questions": {"rep": 3},
                "trackerHits": {"Zorvexa": 1, "discount": 1},
                "cues": {"talk_ratio": 1},
            },
            "meeting_booked",
        ),
        call("sam", 5, {"talkTime": {"rep": 100}, "talkRatio": None, "longestMonologue": 20, "questions": {}}),
    ]
    dana, sam = [a.to_json() for a in activity_of_calls(calls)]
    assert dana == {
        "rep": "dana",
        "calls": 2,
        "callTime": 1800.0,
        "talkTime": 800.0,
        "averageDuration": 900.0,
        "averageTalkRatio": 0.5,
        "averageLongestMonologue": 60.0,
        "averagePatience": 0.8,
        "questionsAsked": 8,
        "questionsPerCall": 4.0,
        "trackerHits": {"Zorvexa": 3, "discount": 1},
        "dispositions": {"meeting_booked": 2},
        "cues": {"monologue": 1, "talk_ratio": 2},
    }
    assert (sam["rep"], sam["calls"], sam["averageTalkRatio"], sam["dispositions"]) == ("sam", 1, None, {})


DANA = {
    "talkTime": {"rep": 300},
    "talkRatio": 0.6,
    "longestMonologue": 50,
    "patience": 0.8,
    "questions": {"rep": 5},
    "trackerHits": {"Zorvexa": 2},
}


async def test_the_daily_figures_are_kept_when_calls_go_and_follow_a_later_disposition(
    tmp_path: Path, store_url: str
) -> None:
    async with local_http(tmp_path, [calls_api.router, calls_api.reps_router], store_url) as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "ops")
        first = call("dana", 10, DANA, "meeting_booked")
        second = call("dana", 20, {**DANA, "talkRatio": 0.4}, "")
        second.id = "c-dana-second"
        for record in (first, second, call("sam", 5, {"talkTime": {"rep": 100}})):
            await store.save_call(record)
        window = "from=2026-11-20&to=2026-11-20"
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
            before = (await http.get(f"/v1/reps/activity?{window}")).json()
            assert before["timeZone"] == "UTC" and before["team"]["calls"] == 3
            dana = before["reps"][0]
            assert (dana["rep"], dana["calls"], dana["averageTalkRatio"], dana["dispositions"]) == (
                "dana",
                2,
                0.5,
                {"meeting_booked": 1},
            )
            assert dana["trackerHits"] == {"Zorvexa": 4} and dana["questionsAsked"] == 10

            # A disposition set after the call: its day's figures follow.
            answer = await http.put(f"/v1/calls/{second.id}/disposition", json={"disposition": "meeting_booked"})
            assert answer.status_code == 200
            answer = await http.put(f"/v1/calls/{first.id}/disposition", json={"disposition": "no_decision"})
            assert answer.status_code == 200
            later = (await http.get(f"/v1/reps/activity?{window}")).json()
            assert later["reps"][0]["dispositions"] == {"meeting_booked": 1, "no_decision": 1}

            # The calls go (deleted, purged by a retention): the figures stay.
            assert (await http.delete(f"/v1/calls/{first.id}")).status_code == 204
            await local.services.teams.set_config("acme", TeamConfig(retention=Retention(calls_days=1)), "test")
            assert (await Purger(store, clock=lambda: datetime(2027, 1, 1, tzinfo=UTC)).run_once())["acme"][
                "calls"
            ] == 2
            assert await store.get_call("acme", second.id) is None
            gone = (await http.get(f"/v1/reps/activity?{window}")).json()
            assert gone["reps"] == later["reps"] and gone["team"] == later["team"]


def test_a_call_counts_for_the_day_it_started_in_the_team_s_time_zone() -> None:
    late_evening = datetime(2026, 11, 20, 3, 30, tzinfo=UTC)  # 19:30 the day before in Los Angeles
    assert day_of(late_evening) == "2026-11-20"
    assert day_of(late_evening, "America/Los_Angeles") == "2026-11-19"
    assert day_of(late_evening, "Asia/Tokyo") == "2026-11-20"


async def test_days_and_weeks_for_charts_and_a_rep_key_sees_only_its_own_rep(tmp_path: Path, store_url: str) -> None:
    async with local_http(tmp_path, [calls_api.router, calls_api.reps_router], store_url) as local:
        store = local.services.store
        _, manager = await store.create_key("acme", Role.MANAGER, "lead")
        _, dana_key = await store.create_key("acme", Role.REP, "dana")  # a rep key's label names its rep
        _, nameless = await store.create_key("acme", Role.REP)
        records = [
            call("dana", 10, DANA, "meeting_booked"),
            call("sam", 5, {**DANA, "talkRatio": 0.8, "cues": {"monologue": 1}}, "no_decision"),
        ]
        later = call("dana", 20, {**DANA, "talkRatio": 0.4, "cues": {"talk_ratio": 2}}, "meeting_booked")
        later.id, later.started_at = "c-dana-later", datetime(2026, 11, 24, 9, tzinfo=UTC)  # the next week (Tuesday)
        later.ended_at = later.started_at + timedelta(minutes=20)
        for record in [*records, later]:
            await store.save_call(record)
        window = "from=2026-11-19&to=2026-11-25"
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base) as http:

            async def get(key: str) -> dict:  # type: ignore[type-arg]
                answer = await http.get(f"/v1/reps/activity?{window}", headers={"Authorization": f"Bearer {key}"})
                assert answer.status_code == 200, answer.text
                result: dict = answer.json()  # type: ignore[type-arg]
                return result

            team = await get(manager)
            assert team["scope"] == "team" and [r["rep"] for r in team["reps"]] == ["dana", "sam"]
            days = {d["day"]: d for d in team["days"]}
            assert list(days) == [f"2026-11-{n}" for n in range(19, 26)]  # every day, the empty ones too
            assert {d: v["calls"] for d, v in days.items() if v["calls"]} == {"2026-11-20": 2, "2026-11-24": 1}
            assert days["2026-11-20"]["dispositions"] == {"meeting_booked": 1, "no_decision": 1}
            assert days["2026-11-24"]["cues"] == {"talk_ratio": 2} and days["2026-11-24"]["trackerHits"] == {
                "Zorvexa": 2
            }
            assert [w["week"] for w in team["weeks"]] == ["2026-11-16", "2026-11-23"]  # Mondays
            ratios = [{r["rep"]: r["averageTalkRatio"] for r in w["reps"]} for w in team["weeks"]]
            assert ratios == [{"dana": 0.6, "sam": 0.8}, {"dana": 0.4}]

            # A rep key: its own rep's figures only, the team's totals included; nothing of another rep.
            own = await get(dana_key)
            assert (own["scope"], own["rep"], [r["rep"] for r in own["reps"]]) == ("rep", "dana", ["dana"])
            assert own["team"]["calls"] == 2 and own["team"]["dispositions"] == {"meeting_booked": 2}
            assert sum(d["calls"] for d in own["days"]) == 2
            assert all(r["rep"] == "dana" for w in own["weeks"] for r in w["reps"])
            assert "sam" not in json.dumps(own) and "no_decision" not in json.dumps(own)
            none = await get(nameless)
            assert none["scope"] == "rep" and none["reps"] == [] and none["team"]["calls"] == 0
