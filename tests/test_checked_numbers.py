"""A digit Whisper wrote as a word that sounds like it ("for") inside a card number is read back as the digit
where, and only where, the card number's Luhn check says so (models/asr/checked_numbers.py)."""

from __future__ import annotations

from models.asr.checked_numbers import luhn, mend, mend_hypothesis
from models.asr.engine import Hypothesis, Word


def said(text: str) -> list[str]:
    return mend(text.split())


def test_a_four_heard_as_for_inside_a_card_number_is_a_four_again() -> None:
    # 3714 4963 5398 431 (Amex test number) read out; tiny.en wrote the second "four" as "for".
    assert said("It is 3714 for 96353 98431, expiring") == ["It", "is", "3714", "4", "96353", "98431,", "expiring"]
    # the first digit heard as "for", right after the card word
    assert said("use the company card for 539-1488-0343-6467.")[-2:] == ["4", "539-1488-0343-6467."]
    assert luhn("4539148803436467") and luhn("371449635398431")


def test_homophones_elsewhere_stay_words() -> None:
    for text in (
        "I paid 3 for 5 dollars",  # too few digits to be a card number
        "4111 1111 1111 1111 for you",  # the number checks already: "for" is a word
        "call 415 555 0123 for 2 minutes",  # a phone number and a duration
        "order 12345 for 678",  # no card number comes out of it
        "from 9 to 5 on Mondays",
    ):
        assert said(text) == text.split(), text


def test_nothing_is_mended_across_a_full_stop() -> None:
    # "4539 1488 0343 646." then "For 7 days" must not join into one number
    text = "4539 1488 0343 646. For 7 days"
    assert said(text) == text.split()


def test_a_hypothesis_keeps_its_word_times_and_spacing() -> None:
    words = tuple(Word(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate("card for 539-1488-0343-6467.".split()))
    out = mend_hypothesis(Hypothesis("card for 539-1488-0343-6467.", words))
    assert out.text == "card 4 539-1488-0343-6467."
    assert [w.word for w in out.words] == ["card", "4", "539-1488-0343-6467."]
    assert [(w.start, w.end) for w in out.words] == [(w.start, w.end) for w in words]
    plain = Hypothesis("Thanks for calling.", tuple(Word(w, 0, 0, 1) for w in "Thanks for calling.".split()))
    assert mend_hypothesis(plain) is plain
    # Whisper's words split a grouped number at its hyphens ("-" joins the word after it): mended all the same,
    # text and words alike (a card number read with "for" came through unmended in the conversations benchmark)
    split = ["card", "for", "539", "-1488", "-0343", "-6467."]
    grouped = mend_hypothesis(Hypothesis("card for 539-1488-0343-6467.", tuple(Word(w, 0, 0, 1) for w in split)))
    assert grouped.text == "card 4 539-1488-0343-6467."
    assert [w.word for w in grouped.words] == ["card", "4", "539", "-1488", "-0343", "-6467."]
    # words that are not the text's, in order with only spaces and punctuation between: left as they are
    odd = Hypothesis(
        "card number for 539-1488-0343-6467.", tuple(Word(w, 0, 0, 1) for w in ["card", "for", "539-1488-0343-6467."])
    )
    assert mend_hypothesis(odd) is odd
