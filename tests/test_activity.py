"""Rep activity over stored calls: counts, times, averages, tracker hits and dispositions per rep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from media_server.insights.activity import activity
from media_server.store.records import CallRecord, ParticipantRecord


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
            },
            "meeting_booked",
        ),
        call("sam", 5, {"talkTime": {"rep": 100}, "talkRatio": None, "longestMonologue": 20, "questions": {}}),
    ]
    dana, sam = [a.to_json() for a in activity(calls)]
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
    }
    assert (sam["rep"], sam["calls"], sam["averageTalkRatio"], sam["dispositions"]) == ("sam", 1, None, {})
