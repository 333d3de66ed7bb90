"""The scripted calls of benchmarks/conversations.py and the number normalisation of benchmarks/conversation_wer.py."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conversation_scripts import FEST_KAL, FLITE_RMS, SCRIPTS, Line, Script
from benchmarks.conversation_wer import Segment, normalise, score
from benchmarks.conversations import (
    MAX_PAUSE_S,
    build,
    longest_pause,
    luhn_valid,
    numbers_of,
    reference_words,
    sentences,
    spoken,
)
from models.audio import int16_to_float32


def test_every_card_is_luhn_valid_and_every_call_has_the_required_parts() -> None:
    cards = [n for s in SCRIPTS for n in numbers_of(s) if n.kind == "card"]
    assert len(cards) >= 4 and all(luhn_valid(n.digits) for n in cards)
    assert not luhn_valid("4556737586899856")
    lines = [line for s in SCRIPTS for line in s.lines]
    assert all(any(line.tight for line in s.lines) for s in SCRIPTS), "a long turn without pauses in every call"
    assert any(line.during is not None for line in lines), "backchannels"
    assert any(line.gap < 0 for line in lines), "interruptions"
    assert all(-1.0 <= line.gap <= 0.8 for line in lines)
    for line in lines:
        said, words = spoken(line.text)
        assert not re.search(r"\d", said), "the synthesiser is given words, never digits"
        assert [w for w, _ in words] == reference_words(said)


def test_spoken_numbers_are_read_in_groups_and_tagged() -> None:
    said, words = spoken("My line is {phone:312 555 0147}.")
    assert said == "My line is three one two, five five five, zero one four seven."
    tagged = [w for w, tag in words if tag == "phone:3125550147"]
    assert tagged == ["three", "one", "two", "five", "five", "five", "zero", "one", "four", "seven"]
    assert sentences("One. Two? Three!") == ["One.", "Two?", "Three!"]


@pytest.mark.parametrize(
    ("whisper", "spoken_as"),
    [
        ("My card number is 4556 737-586899855", "my card number is four five five six seven three seven five"),
        ("Call me at (212) 555-0198.", "call me at two one two five five five zero one nine eight"),
        ("It is $49 per seat or $1,200 a year.", "it is forty nine dollars per seat or one thousand two hundred"),
        ("We signed on March 3, 2024.", "we signed on march third twenty twenty four"),
        ("On the 22nd at 3:30, 20% off.", "on the twenty second at three thirty twenty percent off"),
        ("OK, alright Mr. Patel, 214 deals.", "okay all right mister patel two hundred fourteen deals"),
        ("a 14-day trial", "a fourteen day trial"),
    ],
)
def test_numbers_as_whisper_writes_them_are_normalised_to_words(whisper: str, spoken_as: str) -> None:
    assert " ".join(normalise(whisper)).startswith(spoken_as)


def _require_synthesisers() -> None:
    if shutil.which("flite") and shutil.which("text2wave"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("flite and festival are not installed (make system-deps installs them)")
    pytest.skip("flite and festival are not installed: run `make system-deps`")


def test_a_call_is_laid_out_as_scripted_and_cached(tmp_path: Path) -> None:
    _require_synthesisers()
    script = Script(
        "tiny",
        FLITE_RMS,
        FEST_KAL,
        (
            Line("rep", "Hello, this is Sam from Zorvexa. We met at the fair. I promised to call you back today."),
            Line("customer", "Right.", during=0.5),
            Line("customer", "Yes. My card is {card:4556 7375 8689 9855}.", 0.4),
            Line("rep", "Thank you.", -0.3),
            Line("rep", "That is all. One more thing. Have a good day, and talk soon.", 0.3, tight=True),
        ),
    )
    (call,) = build(tmp_path, [script])
    rep, customer, mixed = (call.channels[n] for n in ("rep", "customer", "mixed"))
    assert rep.sample_rate == customer.sample_rate == 8000
    assert rep.audio.size == customer.audio.size == mixed.audio.size
    assert [t.speaker for t in mixed.turns] == ["rep", "customer", "customer", "rep", "rep"]
    first, aside, card, thanks, last = mixed.turns
    assert first.start < aside.start < first.end, "the backchannel overlaps the turn it answers"
    assert thanks.start < card.end and thanks.start == pytest.approx(card.end - 0.3, abs=0.01)
    assert last.start == pytest.approx(thanks.end + 0.3, abs=0.01)
    for turn in mixed.turns:
        assert all(turn.start - 0.01 <= w.start < w.end <= turn.end + 0.01 for w in turn.words)
    tight = int16_to_float32(rep.audio[round(last.start * 8000) : round(last.end * 8000)])
    assert longest_pause(tight, 8000) <= MAX_PAUSE_S + 0.02
    assert [n.tag for n in call.numbers] == ["card:4556737586899855"]
    assert len([w for w in customer.words if w.number]) == 16
    (again,) = build(tmp_path, [script])  # read back from the cache
    assert np.array_equal(again.channels["mixed"].audio, mixed.audio) and again.channels["rep"].turns == rep.turns
    perfect = score(mixed.words, [Segment(0.0, call.duration, " ".join(w.word for w in mixed.words))])
    assert perfect.errors == 0 and perfect.numbers["card:4556737586899855"][:2] == (16, 16)
