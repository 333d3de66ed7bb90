"""Keyword spotting on final segments: whole words, any case and punctuation, phrases in order, with times."""

from __future__ import annotations

from media_server.insights.keywords import KeywordSpotter
from models.asr.engine import Word


def words(text: str, start: float = 0.0, step: float = 0.5) -> list[Word]:
    return [Word(w, start + i * step, start + i * step + 0.4, 1.0) for i, w in enumerate(text.split())]


def test_phrases_are_found_with_their_times_whatever_the_case_and_punctuation() -> None:
    spotter = KeywordSpotter([("Acme", "keyterm"), ("next steps", "keyterm"), ("pricing", "keyterm")])
    text = "Versus ACME, what are the next steps on Pricing?"
    hits = spotter.find(text, words(text, start=10.0), 10.0, 14.0)
    assert [(h.keyword, h.start, h.end) for h in hits] == [
        ("Acme", 10.5, 10.9),
        ("next steps", 12.5, 13.4),
        ("pricing", 14.0, 14.4),
    ]


def test_only_whole_words_and_consecutive_phrases_match() -> None:
    spotter = KeywordSpotter([("acme", "keyterm"), ("next steps", "keyterm")])
    text = "acmecorp said next we take steps"
    assert spotter.find(text, words(text), 0, 3) == []


def test_without_word_timings_the_segment_span_is_used_and_repeats_are_each_hit() -> None:
    spotter = KeywordSpotter([("discount", "keyterm")])
    hits = spotter.find("a discount, another Discount", [], 3.0, 5.0)
    assert [(h.keyword, h.start, h.end) for h in hits] == [("discount", 3.0, 5.0)] * 2


def test_blank_and_duplicate_phrases_are_ignored() -> None:
    spotter = KeywordSpotter([("", "keyterm"), ("  ", "keyterm"), ("Acme", "keyterm"), ("acme", "keyterm")])
    assert spotter
    assert len(spotter.find("acme", [], 0, 1)) == 1
    assert not KeywordSpotter([])
