"""Coaching cues: each rule fires when its threshold is crossed, once, and again only after it cleared."""

from __future__ import annotations

from media_server.insights.cues import CueEngine
from media_server.insights.metrics import Said
from media_server.teams.config import TeamConfig

CONFIG = TeamConfig.model_validate(
    {
        "trackers": [{"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]}],
        "battlecards": [{"tracker": "Zorvexa", "text": "Zorvexa has no dialer integration."}],
        "thresholds": {"monologue_s": 30, "cooldown_s": 20, "talk_ratio_min_talk_s": 20},
    }
)
WORDS_10 = "one two three four five six seven eight nine ten."


def kinds(cues: list) -> list[str]:  # type: ignore[type-arg]
    return [c.kind for c in cues]


def test_a_long_monologue_fires_once_until_the_customer_speaks() -> None:
    engine = CueEngine(CONFIG)
    fired = []
    for i in range(6):  # the rep talks 0-60 s in 10 s finals
        fired += kinds(engine.said(Said("rep", 10.0 * i, 10.0 * i + 9.5, WORDS_10)))
    assert fired.count("monologue") == 1
    assert fired.count("talk_ratio") == 1  # 100 % of the talk, once
    engine.said(Said("customer", 61.0, 66.0, "I see, tell me more about pricing."))
    again = []
    for i in range(4):
        again += kinds(engine.said(Said("rep", 67.0 + 10 * i, 76.0 + 10 * i, WORDS_10)))
    assert again.count("monologue") == 1  # a new monologue after the customer spoke


def test_a_short_interjection_does_not_end_a_monologue() -> None:
    engine = CueEngine(CONFIG)
    engine.said(Said("rep", 0.0, 20.0, WORDS_10))
    engine.said(Said("customer", 20.2, 20.6, "Right."))
    assert "monologue" in kinds(engine.said(Said("rep", 21.0, 35.0, WORDS_10)))


def test_pace_fillers_and_interruptions() -> None:
    engine = CueEngine(CONFIG)
    fast = " ".join(["word"] * 30) + "."
    assert "pace" in kinds(engine.said(Said("rep", 0.0, 6.0, fast)))  # 300 words a minute
    engine = CueEngine(CONFIG)
    filler = "um so um we um like um the um product um is um good um right um you know " * 3
    assert "filler" in kinds(engine.said(Said("rep", 0.0, 30.0, filler)))
    engine = CueEngine(CONFIG)
    engine.said(Said("customer", 0.0, 5.0, "We have been looking at options for a while now."))
    assert "interruption" in kinds(engine.said(Said("rep", 4.0, 8.0, "Sure, sure, let me show you.")))
    assert "interruption" not in kinds(engine.said(Said("rep", 9.0, 10.0, "Anyway.")))
    # The customer's final can arrive after the rep's that cut into it.
    engine = CueEngine(CONFIG)
    assert engine.said(Said("rep", 4.0, 6.0, "Sure, sure.")) == []
    assert "interruption" in kinds(engine.said(Said("customer", 0.0, 5.0, "We have been looking at options.")))


def test_a_competitor_brings_its_battlecard_and_is_debounced() -> None:
    engine = CueEngine(CONFIG)
    (cue,) = engine.tracked("Zorvexa", "competitors", "customer", 12.0)
    assert cue.kind == "competitor" and "Zorvexa has no dialer integration." in cue.message
    assert cue.detail["battlecard"] == "Zorvexa has no dialer integration."
    assert engine.tracked("Zorvexa", "competitors", "customer", 20.0) == []  # within the cooldown
    assert len(engine.tracked("Zorvexa", "competitors", "rep", 40.0)) == 1
    assert engine.tracked("discount", "pricing", "customer", 50.0) == []


def test_silence_and_no_question_come_from_the_clock() -> None:
    engine = CueEngine(CONFIG)
    engine.said(Said("rep", 0.0, 5.0, "Hello there."))
    assert engine.tick(10.0, speaking=False) == []
    (silence,) = engine.tick(15.5, speaking=False)
    assert silence.kind == "silence"
    assert engine.tick(16.5, speaking=False) == []  # once per silence
    engine.said(Said("rep", 17.0, 18.0, "Are you there?"))
    assert [c.kind for c in engine.tick(170.0, speaking=True)] == []
    assert [c.kind for c in engine.tick(200.0, speaking=True)] == ["no_question"]  # 180 s after the question
