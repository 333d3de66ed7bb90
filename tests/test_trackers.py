"""Trackers on the real spaCy pipeline: inflections, product names, entities, and times from word timings."""

from __future__ import annotations

import pytest
from spacy.language import Language

from media_server.insights.nlp import load_pipeline
from media_server.insights.trackers import TrackerMatcher
from media_server.teams.config import TeamConfig
from models.asr.engine import Word

CONFIG = TeamConfig.model_validate(
    {
        "trackers": [
            {"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]},
            {"name": "discount", "category": "pricing", "phrases": ["discount", "price"]},
            {"name": "next steps", "category": "next_steps", "phrases": ["next step", "follow up"]},
        ],
    }
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    return load_pipeline(None)


def timed(text: str, start: float = 0.0) -> list[Word]:
    return [Word(" " + w, start + 0.4 * i, start + 0.4 * i + 0.3, 1.0) for i, w in enumerate(text.split())]


def test_phrases_match_whatever_their_inflection_with_times(nlp: Language) -> None:
    text = "Zorvexa offered discounts, so prices dropped; let us agree the next steps and follow up."
    hits = [m for m in TrackerMatcher(nlp, CONFIG).find(text, timed(text, 10.0), 10.0, 16.0) if m.kind == "tracker"]
    assert [(m.name, m.category, m.text) for m in hits] == [
        ("Zorvexa", "competitors", "Zorvexa"),
        ("discount", "pricing", "discounts"),
        ("discount", "pricing", "prices"),
        ("next steps", "next_steps", "next steps"),
        ("next steps", "next_steps", "follow up"),
    ]
    assert (hits[0].start, hits[0].end) == (10.0, 10.3)
    assert (hits[1].start, hits[1].end) == pytest.approx((10.8, 11.1))  # "discounts," is the third word
    assert text[hits[2].char_start : hits[2].char_end] == "prices"


def test_entities_are_reported_as_configured(nlp: Language) -> None:
    text = "John Smith from Acme Corp said five thousand dollars by next Tuesday."
    matcher = TrackerMatcher(nlp, CONFIG)
    entities = {(m.name, m.text) for m in matcher.find(text, [], 0.0, 4.0) if m.kind == "entity"}
    assert {("PERSON", "John Smith"), ("ORG", "Acme Corp"), ("DATE", "next Tuesday")} <= entities
    assert any(label == "MONEY" for label, _ in entities)
    only_people = TrackerMatcher(nlp, TeamConfig(entities=["PERSON"]))
    assert {m.name for m in only_people.find(text, [], 0.0, 4.0)} == {"PERSON"}
    assert not TrackerMatcher(nlp, TeamConfig(entities=[]))


def test_names_the_recogniser_misspells_are_found_fuzzily(nlp: Language) -> None:
    text = "We are also looking at Zorvex, and Norvix too."
    hits = [(m.name, m.text) for m in TrackerMatcher(nlp, CONFIG).find(text, [], 0.0, 3.0) if m.kind == "tracker"]
    assert hits == [("Zorvexa", "Zorvex")]  # one letter off is the name; two letters off is another word


def test_nothing_tracked_is_nothing_found(nlp: Language) -> None:
    assert TrackerMatcher(nlp, CONFIG).find("We talked about the weather.", [], 0.0, 2.0) == []


def test_the_pipeline_runs_without_loading_torch_where_torch_is_installed() -> None:
    """spaCy's thinc imports torch whenever it can (~180 MB of a server's memory, never used by the pipeline):
    the server imports spaCy with torch hidden, and torch stays importable for whoever needs it (this virtual
    environment has torch, as the Makefile's does)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import media_server.app\n"
        "from media_server.insights.nlp import load_pipeline\n"
        "doc = load_pipeline(None)('Zorvexa offered a discount on Tuesday.')\n"
        "assert [e.text for e in doc.ents], 'the pipeline works'\n"
        "assert 'torch' not in sys.modules, 'torch was loaded'\n"
        "import torch\n"
        "print(torch.__version__)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
