"""Conversation intelligence end to end: a scripted sales call (two flite voices, tests/sales_call.py) through a
real server; tracker hits and cues arrive live, in order and once; the stored metrics match the script."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from tests.conftest import EventLog, Server, collect_events, create_key
from tests.sales_call import SalesCall, sales_call
from tests.synth import require_flite

pytestmark = pytest.mark.e2e

SPEED = 2.0
BATTLECARD = "Zorvexa has no dialer integration and charges per seat for recordings."
CONFIG = {
    "trackers": [
        {"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]},
        {"name": "pricing", "category": "pricing", "phrases": ["price", "pricing", "discount"]},
        {"name": "security review", "category": "objections", "phrases": ["security team", "security review"]},
        {"name": "next steps", "category": "next_steps", "phrases": ["next step", "follow up"]},
    ],
    "battlecards": [{"tracker": "Zorvexa", "text": BATTLECARD}],
    "thresholds": {"monologue_s": 20, "words_per_minute": 300, "talk_ratio_window_s": 60},
    "dispositions": [{"tracker": "next steps", "disposition": "follow_up"}],
}


@pytest.fixture(scope="module")
def sales_keys(server: Server) -> dict[str, str]:
    require_flite()
    keys = {role: create_key(server.data_dir, "sales", role) for role in ("admin", "ingest")}
    with server.http(keys["admin"]) as http:
        assert http.put("/v1/team/config", json=CONFIG).status_code == 200
    return keys


async def run_call(
    server: Server, keys: dict[str, str], recording: Recording, speaker: str = "customer"
) -> tuple[StreamResult, EventLog]:
    call_id = "CA" + uuid.uuid4().hex
    url = f"{server.ws_url}/v1/calls/{call_id}/events?token={keys['admin']}"
    events = asyncio.create_task(collect_events(url, timeout=240))
    await asyncio.sleep(0.2)
    metadata = {"repName": "Dana", "repConsent": "granted", "customerConsent": "granted"}
    result = await stream_call(
        recording, server.ws_url, "l16", keys["ingest"], call_id, metadata, speed=SPEED, speaker=speaker
    )
    return result, await events


def stored(server: Server, keys: dict[str, str], call_id: str) -> dict[str, Any]:
    with server.http(keys["admin"]) as http:
        response = http.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    call: dict[str, Any] = response.json()
    return call


async def test_a_sales_call_gets_its_hits_cues_and_metrics(server: Server, sales_keys: dict[str, str]) -> None:
    script: SalesCall = sales_call()
    result, log = await run_call(server, sales_keys, script.stereo())
    hits = [e["keywordHit"] for e in log.of_type("keyword_hit")]
    cues = [e["cue"] for e in log.of_type("cue")]
    for t in log.transcripts(final=True):
        print(f"{t['speaker']:>8} {t['start']:6.1f} {t['text']}")
    print("hits:", [(h["keyword"], h["text"], round(h["start"], 1)) for h in hits])
    print("cues:", [(c["kind"], round(c["time"], 1), c["message"]) for c in cues])

    # Tracker hits: each phrase where it was said, by whom it was said, once, in the order of the call.
    found = {(h["keyword"], h["speaker"]) for h in hits}
    assert {
        ("Zorvexa", "customer"),
        ("pricing", "customer"),
        ("security review", "customer"),
        ("next steps", "rep"),
    } <= found
    assert len({(h["keyword"], h["channel"], h["segment"], h["charStart"]) for h in hits}) == len(hits)
    zorvexa = next(h for h in hits if h["keyword"] == "Zorvexa")
    turn = script.turn("customer", "Zorvexa")
    assert turn.start - 0.5 <= zorvexa["start"] <= zorvexa["end"] <= turn.end + 0.5
    assert zorvexa["category"] == "competitors"

    # Cues: the competitor's battlecard, the long monologue, the interruption, the talk ratio; each once.
    kinds = [c["kind"] for c in cues]
    assert {"competitor", "monologue", "interruption", "talk_ratio"} <= set(kinds), kinds
    assert len(kinds) == len(set(kinds)), f"a cue was repeated: {kinds}"
    assert [c["time"] for c in cues] == sorted(c["time"] for c in cues)
    competitor = next(c for c in cues if c["kind"] == "competitor")
    assert BATTLECARD in competitor["message"] and competitor["detail"]["competitor"] == "Zorvexa"
    monologue = next(c for c in cues if c["kind"] == "monologue")
    long_turn = script.turn("rep", "walk you through")
    assert long_turn.start + 20 <= monologue["time"] <= long_turn.end + 1.0
    interruption = next(c for c in cues if c["kind"] == "interruption")
    assert abs(interruption["time"] - script.turn("rep", "review today").start) < 1.0
    # Live: each cue reached the subscriber soon after the audio that triggered it had been sent.
    arrivals = {e["cue"]["kind"]: t for e, t in zip(log.events, log.arrivals, strict=True) if e["type"] == "cue"}
    delays = {k: arrivals[k] - result.sent_at(next(c["time"] for c in cues if c["kind"] == k)) for k in arrivals}
    print(
        "cue delay after the triggering audio was sent (s, at 2x speed):", {k: round(v, 2) for k, v in delays.items()}
    )

    # Stored metrics match the script within the recogniser's timing tolerance.
    call = stored(server, sales_keys, result.call_id)
    m = call["metrics"]
    expected_ratio = script.talk("rep") / (script.talk("rep") + script.talk("customer"))
    assert abs(m["talkRatio"] - expected_ratio) < 0.08, (m["talkRatio"], expected_ratio)
    assert abs(m["longestMonologue"] - (long_turn.end - long_turn.start)) < 3.0, m["longestMonologue"]
    assert m["questions"]["rep"] >= 2 and m["questions"]["customer"] >= 1, m["questions"]
    assert m["interruptions"].get("rep", 0) >= 1, m["interruptions"]
    assert m["trackerHits"]["Zorvexa"] == 1 and m["trackerHits"]["next steps"] >= 1
    assert 0.0 <= m["patience"] < 2.0
    assert call["disposition"] == "follow_up" and m["disposition"] == "follow_up"
    assert set(call["keywords"]) >= {"Zorvexa", "pricing", "next steps"}
    ended = log.of_type("call_ended")[0]["callEnded"]
    assert ended["metrics"]["talkRatio"] == m["talkRatio"]

    # The card number never left the server: not in an interim, not in a final, not in the database.
    texts = [t["text"] for t in log.transcripts()] + [t["stableText"] for t in log.transcripts()]
    texts += [w["word"] for t in log.transcripts() for w in t["words"]]
    texts += [s["text"] for s in call["transcript"]] + [w["word"] for s in call["transcript"] for w in s["words"]]
    leaks = [t for t in texts if longest_digit_run(t) >= 6]
    assert not leaks, leaks
    # Hidden from its first digit: no transcript that says "card" shows a digit, as digits or words.
    card_texts = [t["text"] for t in log.transcripts() if "card" in t["text"].lower()]
    digit = re.compile(r"\d|\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b", re.IGNORECASE)
    assert card_texts and not [t for t in card_texts if digit.search(t)], card_texts
    card_finals = [t["text"] for t in log.transcripts(final=True) if "card" in t["text"].lower()]
    assert any("[CARD]" in t for t in card_finals), card_finals
    assert any("[CARD]" in s["text"] for s in call["transcript"])

    # A disposition set afterwards, and the rep's activity as a CRM export reads it.
    with server.http(sales_keys["admin"]) as http:
        url = f"/v1/calls/{result.call_id}/disposition"
        response = http.put(url, json={"disposition": "meeting_booked"})
        assert response.status_code == 200 and response.json()["live"] is False
        assert http.get(f"/v1/calls/{result.call_id}").json()["disposition"] == "meeting_booked"
        assert http.put(url, json={"disposition": ""}).status_code == 400
        assert http.put("/v1/calls/no-such-call/disposition", json={"disposition": "x"}).status_code == 404
        activity = http.get("/v1/reps/activity").json()
    dana = next(a for a in activity["reps"] if a["rep"] == "Dana")
    assert dana["calls"] >= 1 and dana["dispositions"]["meeting_booked"] >= 1
    assert dana["trackerHits"]["Zorvexa"] >= 1 and dana["averageTalkRatio"] is not None


DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "for": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "to": "2",
    "too": "2",
}


def longest_digit_run(text: str) -> int:
    """The most digits said in a row, as digits or as words ("four two 42" is 4)."""
    best = run = 0
    for token in re.findall(r"[a-z]+|\d+", text.lower()):
        digits = token if token.isdigit() else DIGIT_WORDS.get(token, "")
        run = run + len(digits) if digits else 0
        best = max(best, run)
    return best


async def test_a_mono_mix_of_the_call_is_separated_into_its_two_voices(
    server: Server, sales_keys: dict[str, str]
) -> None:
    script = sales_call()
    result, log = await run_call(server, sales_keys, script.mono(), speaker="mixed")
    live_labels = {t["speakerLabel"] for t in log.transcripts(final=True)}
    assert live_labels <= {"speaker 1", "speaker 2"} and "speaker 1" in live_labels, live_labels
    call = stored(server, sales_keys, result.call_id)
    # Every stored word against who said it in the script (the turn its middle falls in; overlaps skipped).
    pairs = []
    for segment in call["transcript"]:
        assert segment["speaker"] in ("speaker 1", "speaker 2"), segment["speaker"]
        for w in segment["words"]:
            middle = (w["start"] + w["end"]) / 2
            said_by = {t.speaker for t in script.turns if t.start - 0.2 <= middle <= t.end + 0.2}
            if len(said_by) == 1:
                pairs.append((segment["speaker"], said_by.pop()))
    first = script.turns[0].speaker  # who spoke first is "speaker 1"
    other = "customer" if first == "rep" else "rep"
    mapping = {"speaker 1": first, "speaker 2": other}
    agreement = sum(mapping[label] == truth for label, truth in pairs) / len(pairs)
    print(f"mono diarization: {agreement:.1%} of {len(pairs)} words labelled with the voice that said them")
    assert agreement >= 0.85
    talk = {s["speaker"]: s["talkTime"] for s in call["speakers"]}
    assert set(talk) == {"speaker 1", "speaker 2"}
