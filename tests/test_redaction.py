"""PII redaction of transcripts: cards, CVVs, expiry dates, SSNs, phone numbers and emails, written as Whisper
writes them (digits, words, mixed), ordinary numbers left alone, interims hidden early, timed words merged."""

from __future__ import annotations

import re
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.calls.call import Call, CallServices, ChannelSpec
from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, Role
from media_server.config import ConsentPolicy
from media_server.insights.redaction import (
    REDACTION_TYPES,
    AudioSpan,
    Redaction,
    RedactionPolicy,
    Redactor,
    context_after,
)
from media_server.store.journal import Journal
from media_server.teams.config import REDACTION_TYPES as CONFIG_REDACTION_TYPES
from media_server.teams.config import TeamConfig
from media_server.v1 import events_pb2 as pb
from models.asr.engine import Word
from models.asr.scheduler import DecodeScheduler
from models.streaming import SpeechEvent, SpeechEventType, StreamingConfig
from models.vad import SileroVAD

REDACTOR = Redactor()
DIGIT_WORDS = "zero one two three four five six seven eight nine".split()


def redact(text: str, *, interim: bool = False, previous: str = "") -> str:
    return REDACTOR.redact_text(text, interim=interim, previous=previous).text


def luhn(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if k % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn(body + d))


def spoken(digits: str, zero: str = "oh") -> str:
    return " ".join(zero if d == "0" else DIGIT_WORDS[int(d)] for d in digits)


def timed(text: str, start: float = 10.0, step: float = 0.5) -> list[Word]:
    return [Word(w, start + i * step, start + i * step + 0.4, 1.0) for i, w in enumerate(text.split())]


# -- cards ----------------------------------------------------------------------------------------------------------

CARDS = [
    ("My card number is 4111 1111 1111 1111.", "My card number is [CARD]."),
    ("It's 4111-1111-1111-1111, and I'd like to pay today.", "It's [CARD], and I'd like to pay today."),
    ("Sure, the number is 5555555555554444.", "Sure, the number is [CARD]."),
    ("It's an Amex, 3782 822463 10005.", "It's an Amex, [CARD]."),
    ("Okay so it's 3714 496353 98431", "Okay so it's [CARD]"),
    ("Discover 6011 1111 1111 1117 is the one I use", "Discover [CARD] is the one I use"),
    ("4222222222222 is the old thirteen digit one", "[CARD] is the old thirteen digit one"),
    ("diners club 3056 930902 5904", "diners club [CARD]"),
    ("the JCB is 3530 1113 3330 0000 thanks", "the JCB is [CARD] thanks"),
    ("the long number is " + spoken("4111111111111111"), "the long number is [CARD]"),
    ("Okay, four one one one, one one one one, one one one one, one one one one.", "Okay, [CARD]."),
    (
        "Four, zero, one, two, eight, eight, eight, eight, eight, eight, eight, eight, one, eight, eight, one.",
        "[CARD].",
    ),
    ("Forty one eleven, eleven eleven, eleven eleven, eleven eleven.", "[CARD]."),
    (
        "double five double five, double five double five, double five double five, double four double four",
        "[CARD]",
    ),
    ("five one oh five, one oh five one, oh five one oh, five one oh oh", "[CARD]"),
    ("It is 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 thanks", "It is [CARD] thanks"),
    ("It's 4111 1111 one one one one 1111.", "It's [CARD]."),
    ("Visa, uh, 4012 8888 8888 1881", "Visa, uh, [CARD]"),
    ("it's 4012... 8888... 8888... 1881", "it's [CARD]"),
    ("Oh, 4111 1111 1111 1111, got it.", "Oh, [CARD], got it."),
    ("sorry I said that wrong 4111 1111 1111 1111 okay", "sorry I said that wrong [CARD] okay"),
    # the recogniser slipped on a digit: no Luhn, but said as a card number
    ("My credit card is 4111 1111 1111 1112.", "My credit card is [CARD]."),
    ("it's 4111 1111 1111 1112 on the Visa", "it's [CARD] on the Visa"),
]


@pytest.mark.parametrize(("said", "expected"), CARDS)
def test_card_numbers_as_digits_words_or_both(said: str, expected: str) -> None:
    assert redact(said) == expected


def test_card_numbers_of_every_length_that_pass_luhn() -> None:
    for length in range(13, 20):
        number = with_check_digit("4" + "7" * (length - 2))
        assert redact(f"it's {number} okay") == "it's [CARD] okay"
        assert redact(f"it's {spoken(number)} okay") == "it's [CARD] okay"
        grouped = " ".join(number[k : k + 4] for k in range(0, length, 4))
        assert redact(f"it's {grouped} okay") == "it's [CARD] okay"


def test_a_card_number_said_among_other_digits_is_still_found() -> None:
    said = "the ticket is 12 and the card 4111111111111111 7 times"
    assert redact(said) == "the ticket is 12 and the card [CARD] 7 times"
    assert redact("ref 1234 5678 4111 1111 1111 1111") == "ref 1234 5678 [CARD]"


@pytest.mark.parametrize(
    "said",
    [
        "The tracking number is 1234 5678 9012 3456.",
        "Order 9876 5432 1098 7654 shipped on Monday.",
        "the confirmation is 1234567812345678",
        "Our ARR is $4,500,000 and growing.",
        "We have 4111 users on the platform.",
        "my card is 4111, right?",  # four digits not said last: the first six and the last four may be shown
        "card ending in 1111",
    ],
)
def test_long_numbers_that_are_not_card_numbers_are_left_alone(said: str) -> None:
    assert redact(said) == said


def test_non_luhn_numbers_in_those_examples_really_fail_luhn() -> None:
    for number in ("1234567890123456", "9876543210987654", "1234567812345678", "4111111111111112"):
        assert not luhn(number)


# -- CVV and expiry -------------------------------------------------------------------------------------------------

CVVS = [
    ("The CVV is 123.", "The CVV is [CVV]."),
    ("CVC 4321", "CVC [CVV]"),
    ("the security code is four five six", "the security code is [CVV]"),
    ("and the three digit code on the back is 789", "and the three digit code on the back is [CVV]"),
    ("123 is the CVV", "[CVV] is the CVV"),
    ("the c v v, uh, is one two three", "the c v v, uh, is [CVV]"),
    ("C.V.V. 987", "C.V.V. [CVV]"),
    ("the cvv, uh, is 1234", "the cvv, uh, is [CVV]"),
]

EXPIRIES = [
    ("It expires 09/27.", "It expires [EXPIRY]."),
    ("expiry oh nine twenty seven", "expiry [EXPIRY]"),
    ("valid through September 2027", "valid through [EXPIRY]"),
    ("The expiration date is 12/2026.", "The expiration date is [EXPIRY]."),
    ("exp 0128", "exp [EXPIRY]"),
    ("it's good thru March of twenty eight", "it's good thru [EXPIRY]"),
    ("the expiration is September twenty twenty seven", "the expiration is [EXPIRY]"),
    ("expires nine twenty seven", "expires [EXPIRY]"),
    ("expires oh nine slash two seven", "expires [EXPIRY]"),
    ("valid thru Sept of 27", "valid thru [EXPIRY]"),
    ("it expires in December two thousand twenty nine", "it expires in [EXPIRY]"),
]


@pytest.mark.parametrize(("said", "expected"), CVVS + EXPIRIES)
def test_cvv_and_expiry_in_context(said: str, expected: str) -> None:
    assert redact(said) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (
            "My card number is 4111 1111 1111 1111, expiry 09/27 and the CVV is 123.",
            "My card number is [CARD], expiry [EXPIRY] and the CVV is [CVV].",
        ),
        ("Valid thru 9/2027, CVV 321.", "Valid thru [EXPIRY], CVV [CVV]."),
        ("exp 12/26 cvc 987", "exp [EXPIRY] cvc [CVV]"),
        ("the cvv and expiry are 123 0927", "the cvv and expiry are [CVV] [EXPIRY]"),
        ("expiry and cvv: 0927 123", "expiry and cvv: [EXPIRY] [CVV]"),
        # right after the card number, in the same breath
        ("4111 1111 1111 1111 0927 123", "[CARD] [EXPIRY] [CVV]"),
        ("4111 1111 1111 1111, 123", "[CARD], [CVV]"),
        (
            "My card is four one one one, one one one one, one one one one, one one one one, oh nine twenty seven,"
            " one two three.",
            "My card is [CARD], [EXPIRY], [CVV].",
        ),
    ],
)
def test_a_whole_card_read_out(said: str, expected: str) -> None:
    assert redact(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "We need 123 licenses.",
        "the promo code is 2024",
        "the code is 123",
        "The contract expires in September.",
        "We start on 09/27.",
        "The trial expires in 30 days.",
        "The offer expires in 2026.",
        "September 27, 2027 works for the kickoff.",
        "my card expires soon",
    ],
)
def test_short_numbers_and_dates_without_context_are_left_alone(said: str) -> None:
    assert redact(said) == said


# -- SSN ------------------------------------------------------------------------------------------------------------

SSNS = [
    ("My social is 123-45-6789.", "My social is [SSN]."),
    ("SSN 123 45 6789", "SSN [SSN]"),
    (
        "my social security number is one two three, four five, six seven eight nine",
        "my social security number is [SSN]",
    ),
    ("It's 078-05-1120.", "It's [SSN]."),  # the shape alone
    ("my social is 078051120", "my social is [SSN]"),
    ("S.S.N. is 219-09-9999", "S.S.N. is [SSN]"),
    ("the last four of my social are 6789", "the last four of my social are [SSN]"),
    ("social security, uh, five three six dash nine eight dash one two three four", "social security, uh, [SSN]"),
    ("and my social, it's nine eight seven six five four three two one", "and my social, it's [SSN]"),
]


@pytest.mark.parametrize(("said", "expected"), SSNS)
def test_social_security_numbers(said: str, expected: str) -> None:
    assert redact(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "the part number is 123 45 678",
        "It's 666-12-3456.",  # no SSN has area 666; without context it is not one
        "our social media budget is 250000",
        "we hired 123 people in 45 days",
        "my card's limit went up 250,000",
    ],
)
def test_numbers_that_are_not_ssns(said: str) -> None:
    assert redact(said) == said


# -- phone ----------------------------------------------------------------------------------------------------------

PHONES = [
    ("Call me at 555-123-4567.", "Call me at [PHONE]."),
    ("my cell is (415) 555-2671", "my cell is [PHONE]"),
    ("It's 415.555.2671", "It's [PHONE]"),
    ("+1 415 555 2671", "[PHONE]"),
    ("our London office is +44 20 7946 0958", "our London office is [PHONE]"),
    ("you can reach me on 1-800-555-0199", "you can reach me on [PHONE]"),
    ("my number is four one five, five five five, two six seven one", "my number is [PHONE]"),
    ("text me at 2125550199", "text me at [PHONE]"),
    ("it's eight hundred, five five five, oh one nine nine", "it's [PHONE]"),
    ("plus four four two oh seven nine four six oh nine five eight", "[PHONE]"),
    ("call five five five one two three four five six seven", "call [PHONE]"),
    ("my card was declined, can you call me at 555 123 4567", "my card was declined, can you call me at [PHONE]"),
    ("it's one eight hundred five five five oh one nine nine", "it's [PHONE]"),
]


@pytest.mark.parametrize(("said", "expected"), PHONES)
def test_phone_numbers(said: str, expected: str) -> None:
    assert redact(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "I'll call you at nine.",
        "Call me at 9:30 tomorrow.",
        "We have 1200 seats and about 3400 users.",
        "The budget is $2,125,550,199.",
        "invoice 1234567890",
        "call me back in 5 minutes",
        "we grew 300 percent",
        "call 1-800-FLOWERS",
    ],
)
def test_numbers_that_are_not_phone_numbers(said: str) -> None:
    assert redact(said) == said


# -- email ----------------------------------------------------------------------------------------------------------

EMAILS = [
    ("my email is john.smith@acme.com.", "my email is [EMAIL]."),
    ("email me at john dot smith at acme dot com", "email me at [EMAIL]"),
    ("it's jane underscore doe at mail dot acme dot io", "it's [EMAIL]"),
    ("send it to sales at acme.co.uk please", "send it to [EMAIL] please"),
    ("J.Smith@Acme-Corp.com", "[EMAIL]"),
    ("it's mike dash jones at acme dash corp dot com", "it's [EMAIL]"),
    ("Reach me at JOHN DOT SMITH AT ACME DOT COM.", "Reach me at [EMAIL]."),
    ("John.Smith@Acme.com, or j dot smith at gmail dot com", "[EMAIL], or [EMAIL]"),
    ("my address is bob42@example.org", "my address is [EMAIL]"),
]


@pytest.mark.parametrize(("said", "expected"), EMAILS)
def test_email_addresses_written_or_spoken(said: str, expected: str) -> None:
    assert redact(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "visit us at acme dot com",
        "let's meet at the office",
        "we're at acme dot com now",
        "I'm at home",
        "at 5 dot 30 we start",
    ],
)
def test_text_that_is_not_an_email(said: str) -> None:
    assert redact(said) == said


# -- ordinary talk --------------------------------------------------------------------------------------------------

ORDINARY = [
    "It costs twenty five thousand dollars per year.",
    "The deal is worth 1.2 million.",
    "We have 16 reps across 4 teams.",
    "It was 2019 when we signed, and in 2023 we renewed.",
    "Let's talk on September 27, 2027.",
    "one on one is the number one reason",
    "three to five users, maybe twenty",
    "room 1203 at 10:30",
    "version 10.2.3 is out",
    "our zip code is 94105",
    "So what are the next steps on pricing for the enterprise tier?",
    "we looked at two hundred and fifty accounts in Q3 2024",
    "nineteen ninety nine was a good year",
]


@pytest.mark.parametrize("said", ORDINARY)
def test_ordinary_numbers_are_left_alone(said: str) -> None:
    assert redact(said) == said
    assert redact(said, interim=True) == said


def test_spans_are_offsets_in_the_original_text() -> None:
    text = "card 4111 1111 1111 1111 or call 555-123-4567"
    result = REDACTOR.redact_text(text)
    assert result.spans == [Redaction("card", 5, 24), Redaction("phone", 33, 45)]
    assert [text[s.start : s.end] for s in result.spans] == ["4111 1111 1111 1111", "555-123-4567"]
    assert result.spans[0].placeholder == "[CARD]"


# -- interims -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("my card is four one one one one one", "my card is [CARD]"),
        ("my credit card number is 4111 11", "my credit card number is [CARD]"),
        ("card number, uh, 4111 1111 1111", "card number, uh, [CARD]"),
        ("so my Visa is five five five five, five five", "so my Visa is [CARD]"),
        ("my card is four one one one one one one one one one", "my card is [CARD]"),  # not a phone
        ("it's four one one one one one one one one one one one", "it's [CARD]"),  # 12 digits, still going
        ("and the CVV is one", "and the CVV is [CVV]"),
        ("it expires oh nine", "it expires [EXPIRY]"),
        ("valid through September", "valid through [EXPIRY]"),
        ("my social is one two three", "my social is [SSN]"),
        ("call me at five five five one two three", "call me at [PHONE]"),
    ],
)
def test_interims_hide_numbers_half_said(said: str, expected: str) -> None:
    assert redact(said, interim=True) == expected


def test_what_an_interim_hides_at_its_end_a_final_judges_whole() -> None:
    assert redact("and the CVV is one", interim=False) == "and the CVV is one"
    assert redact("it expires oh nine", interim=False) == "it expires oh nine"
    assert redact("valid through September", interim=False) == "valid through September"
    said = "it's four one one one one one one one one one one one"
    assert redact(said, interim=False) == said


def shown_digits(text: str) -> str:
    """The digits a text shows, written or said ("4111 one oh" shows 411110)."""
    words = re.findall(r"[0-9]+|[a-z]+", text.lower())
    return "".join(
        w if w.isdigit() else "0" if w == "oh" else str(DIGIT_WORDS.index(w))
        for w in words
        if w.isdigit() or w == "oh" or w in DIGIT_WORDS
    )


def test_no_interim_of_a_card_number_being_read_shows_any_of_its_digits() -> None:
    for number in ("4111111111111111", "5555555555554444", "378282246310005"):
        for said in (spoken(number), " ".join(number[k : k + 4] for k in range(0, len(number), 4)), number):
            prefix = "my credit card number is "
            words = said.split()
            for k in range(1, len(words) + 1):
                interim = prefix + " ".join(words[:k])
                out = redact(interim, interim=True)
                assert shown_digits(out) == "", (interim, out)


def test_a_number_cut_in_two_by_a_pause_is_judged_with_what_came_before() -> None:
    first = "my card is four one one one one one one one"
    assert redact(first) == "my card is [CARD]"
    assert redact("one one one one one one one one.", previous=first) == "[CARD]."
    assert redact("one one one one one one one one.") == "one one one one one one one one."
    assert redact("123", previous="and the CVV is") == "[CVV]"
    assert redact("thanks, that's all", previous=first) == "thanks, that's all"
    words = REDACTOR.redact_words(timed("one one one one one one one one."), previous=first)
    assert [w.word for w in words.words] == ["[CARD]."]
    assert words.spans == [AudioSpan("card", 10.0, 13.9)]


# -- a card number read out: hidden from its first digit, across finals ------------------------------------------

NUMBER = "4556737586899855"  # passes the Luhn check
# How Whisper writes the number being read out, in interims and finals.
NUMBER_AS = [
    "4556 7375 8689 9855",
    "4556-7375-8689-9855",
    NUMBER,
    spoken(NUMBER),
    "45 56 73 75 86 89 98 55",
    " ".join(NUMBER),
    "four five five six, 7375, eight six eight nine, 9855",
    "forty five fifty six, seventy three seventy five, eighty six eighty nine, ninety eight fifty five",
]
# Card context, said before the number: in the same utterance or in the previous final (the second item).
CARD_CONTEXT = [
    ("my credit card number is", ""),
    ("The number is", "Let me get my card."),
    ("ok the number is", "let me get my card..."),
    ("and the long number is", ""),
    ("the expiry is 06/27 and the number is", ""),
    ("It's a Visa,", ""),
]


def said_before(*finals: str) -> str:
    """The ``previous`` a call passes after these finals of one channel."""
    context = ""
    for final in finals:
        context = context_after(context, final)
    return context


@pytest.mark.parametrize(("before", "previous"), CARD_CONTEXT)
@pytest.mark.parametrize("number", NUMBER_AS)
def test_a_card_number_in_card_context_is_hidden_from_its_first_digit(number: str, before: str, previous: str) -> None:
    """Every interim while it is read out, and a final cut anywhere in it, show none of its digits."""
    words = number.split()
    for k in range(1, len(words) + 1):
        said = f"{before} {' '.join(words[:k])}"
        for interim in (True, False):
            out = redact(said, interim=interim, previous=previous)
            assert shown_digits(out) == "", (said, interim, out)
            assert "[CARD]" in out


@pytest.mark.parametrize(
    ("said", "previous", "expected"),
    [
        ("The number is 4111.", "Let me get my card.", "The number is [CARD]."),
        ("my card number is 4", "", "my card number is [CARD]"),
        ("my card number is four", "", "my card number is [CARD]"),
        ("my card number is 4-1-1-1", "", "my card number is [CARD]"),
        ("my card number is 41 11", "", "my card number is [CARD]"),
        ("my card number is $4,111", "", "my card number is [CARD]"),  # Whisper took it for an amount
        ("my card number is 4,111,", "", "my card number is [CARD],"),
        ("my card number is four five double", "", "my card number is [CARD] double"),
        ("it's on my Mastercard, uh, 5", "", "it's on my Mastercard, uh, [CARD]"),
        ("the card PIN is 1234.", "", "the card PIN is [CARD]."),
    ],
)
def test_the_start_of_a_card_number(said: str, previous: str, expected: str) -> None:
    assert redact(said, interim=True, previous=previous) == expected
    assert redact(said, interim=False, previous=previous) == expected


@pytest.mark.parametrize(
    ("said", "previous"),
    [
        # no card context
        ("The number is 4111.", ""),
        ("The number is 4111.", "Thanks for holding."),
        ("order 55512", ""),
        ("Your order number is 55512.", ""),
        ("it's $4,111", ""),
        ("that's 4111 a month", ""),
        ("we need 4111", ""),
        ("at 9:30", ""),
        ("my card", "the number is 4111"),  # context after the digits, in the next final, is too late
        # card context, but these are not card numbers
        ("order 55512", "let me get my card"),
        ("the card was charged $4,111", ""),
        ("the card fee is 40.", ""),
        ("my card's limit is 5000", ""),
        ("It costs 40 dollars on the card.", ""),
        ("I'll pay by card at 9.", ""),
        ("I'll pay by card at 9:30.", ""),
        ("I've had this card since 2019.", ""),
        ("my card is from 2019", ""),
        ("Which card? The blue one.", ""),
        ("Let me get my card, oh", ""),
        ("my card is 4111, is that right?", ""),  # four digits not said last: the first six may be shown
        ("card ending in 1111", ""),
        ("the card ends with 4444.", ""),
        ("the last four digits of my card are 1111", ""),
        ("my card was declined, can you call me at 555", ""),
    ],
)
def test_numbers_that_are_not_the_start_of_a_card_number(said: str, previous: str) -> None:
    assert redact(said, interim=True, previous=previous) == said
    assert redact(said, interim=False, previous=previous) == said


@pytest.mark.parametrize(
    ("said", "interim", "expected"),
    [
        ("my card expires 06/27", False, "my card expires [EXPIRY]"),
        ("my card expires 06", True, "my card expires [EXPIRY]"),
        ("my card expires oh six", True, "my card expires [EXPIRY]"),
        ("my card expires in 2026.", False, "my card expires in 2026."),
        ("the CVV on my card is 123", False, "the CVV on my card is [CVV]"),
        ("the card's CVV is 1", True, "the card's CVV is [CVV]"),
        ("the CVV number is 12", True, "the CVV number is [CVV]"),
        ("the last four of my social are 6789", False, "the last four of my social are [SSN]"),
    ],
)
def test_expiry_cvv_and_last_four_keep_their_rules_in_card_context(said: str, interim: bool, expected: str) -> None:
    assert redact(said, interim=interim) == expected


@pytest.mark.parametrize(
    ("first", "second", "first_out", "second_out"),
    [
        (  # a pause after two groups
            "my card number is 4556 7375.",
            "8689 9855 expiring in June.",
            "my card number is [CARD].",
            "[CARD] expiring in June.",
        ),
        (  # the last group alone: the run goes on across the finals, Luhn-valid as a whole
            "my card number is 4556 7375 8689.",
            "9855, expiring in June.",
            "my card number is [CARD].",
            "[CARD], expiring in June.",
        ),
        (  # the card phrase in the first, every digit in the second
            "let me get my card... ok the number is",
            "4556 7375 8689 9855",
            "let me get my card... ok the number is",
            "[CARD]",
        ),
        (  # in words, cut after the first digit
            "my card number is four.",
            "five five six seven three seven five eight six eight nine nine eight five five.",
            "my card number is [CARD].",
            "[CARD].",
        ),
        (  # a slip (not Luhn-valid): the card context of the first final still counts
            "it's on my Visa, 4556 7375",
            "8689 9856",
            "it's on my Visa, [CARD]",
            "[CARD]",
        ),
        (  # then the expiry and the CVV in the same breath
            "my card number is 4556 7375 8689",
            "9855 0627 123",
            "my card number is [CARD]",
            "[CARD] [EXPIRY] [CVV]",
        ),
    ],
)
def test_a_card_number_split_across_two_finals(first: str, second: str, first_out: str, second_out: str) -> None:
    """Finals are never changed once sent: the first half is hidden on its own, the second with the first as
    context; each interim of the second final too."""
    assert redact(first) == first_out
    assert redact(second, previous=said_before(first)) == second_out
    words = second.split()
    for k in range(1, len(words) + 1):
        interim = " ".join(words[:k])
        out = redact(interim, interim=True, previous=said_before(first))
        assert not shown_digits(out) or shown_digits(out) in ("0627123", "0627", "06271", "062712"), (interim, out)
    timed_out = REDACTOR.redact_words(timed(second), previous=said_before(first))
    assert timed_out.text == second_out


def test_a_long_turn_cut_mid_number_by_the_utterance_limit() -> None:
    """The recogniser cuts run-on speech into finals of at most about 15 s, wherever it is; the next window's final
    starts in the middle of the number, after context said two finals back."""
    finals = [
        "Yes, I'd like to pay the whole balance today with my credit card, if that's all right with you.",
        "Sure, it's a Visa, and the number is 4556.",
        "7375 8689",
        "9855, and that's it.",
    ]
    outs = [redact(final, previous=said_before(*finals[:k])) for k, final in enumerate(finals)]
    assert outs == [finals[0], "Sure, it's a Visa, and the number is [CARD].", "[CARD]", "[CARD], and that's it."]


def test_context_after_keeps_the_recent_finals_unredacted_and_short() -> None:
    assert said_before("my card number is 4556 7375.") == "my card number is 4556 7375."
    assert said_before("my card number is 4556 7375.", "8689") == "my card number is 4556 7375 8689"
    assert said_before("let me get my card.", "", "  ") == "let me get my card."
    finals = [f"sentence number {k} of a long call." for k in range(100)]
    long = said_before(*finals)
    assert len(long) <= 200 and long.endswith("99 of a long call.")
    assert f" {long}" in " " + " ".join(f.rstrip(".") for f in finals[:-1]) + " " + finals[-1]  # from a word's start


@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.sampled_from(CARD_CONTEXT),
    st.sampled_from([" expiring in June.", ", thanks.", "", " and that's it"]),
)
def test_a_card_number_read_out_and_cut_anywhere_shows_no_digit(
    data: st.DataObject, context: tuple[str, str], after: str
) -> None:
    """Any card number, as digits, words or both, grouped any way: no interim shows a digit of it, and cut into two
    finals anywhere, neither final does."""
    number = data.draw(card_numbers(leads="3456"))
    before, previous = context
    words = number.split()
    cut = data.draw(st.integers(1, len(words)))
    first = f"{before} {' '.join(words[:cut])}"
    second = " ".join(words[cut:]) + after
    assert shown_digits(redact(first, interim=True, previous=previous)) == "", first
    first_out = redact(first, previous=previous)
    assert shown_digits(first_out) == "", (first, first_out)
    context_then = said_before(previous, first) if previous else said_before(first)
    if second.strip():
        second_out = redact(second, previous=context_then)
        assert shown_digits(second_out) == "", (first, second, second_out)
        interim_out = redact(" ".join(words[cut:]), interim=True, previous=context_then)
        assert shown_digits(interim_out) == "", (first, second, interim_out)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 99_999),
    st.integers(0, 9_999_999),
    st.integers(1, 12),
    st.integers(0, 59),
    st.sampled_from(["", "Let me get my card."]),
)
def test_prices_times_and_order_numbers_stay_visible(
    order: int, cents: int, hour: int, minute: int, previous: str
) -> None:
    """With or without card context before: amounts, times and order numbers of at most 5 digits."""
    price = f"${cents // 100:,}.{cents % 100:02d}" if cents % 3 else f"${cents // 100:,}"
    for said in (
        f"Your order number is {order}.",
        f"order {order}",
        f"That comes to {price}.",
        f"the card was charged {price}",
        f"I'll call you at {hour}:{minute:02d}.",
        f"It'll be {cents // 100:,} dollars.",
    ):
        for interim in (True, False):
            assert redact(said, interim=interim, previous=previous) == said


class _Published:
    """A journal that keeps what a call publishes (no store: these tests look at the events only)."""

    node = "test"

    def __init__(self) -> None:
        self.events: list[pb.Event] = []

    def append(self, event: pb.Event, *writes: object) -> pb.Event:
        self.events.append(event)
        return event


def _stereo_call(call_id: str, bus: _Published) -> Call:
    """A rep + customer call with consent, fed events directly (no audio, so no VAD or scheduler)."""
    no_vad, no_scheduler = cast(SileroVAD, None), cast(DecodeScheduler, None)
    services = CallServices(cast(Journal, bus), no_vad, no_scheduler, StreamingConfig(), ConsentPolicy.ALL_PARTY)
    granted = Consent.GRANTED
    metadata = CallMetadata(
        rep=ParticipantInfo(Role.REP, consent=granted), customer=ParticipantInfo(Role.CUSTOMER, consent=granted)
    )
    channels = [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    return Call(call_id, "acme", "test", metadata, channels, services)


async def test_a_call_hides_a_card_number_read_out_across_finals_of_one_channel() -> None:
    """At the call level (``Transcript._redacted``): the customer's previous finals are the context of their next
    interims and finals, the rep's channel has its own; transcripts, words, stable text and stored segments."""
    bus = _Published()
    call = _stereo_call("CA-redaction", bus)
    at = 0.0

    async def say(channel: int, text: str, kind: SpeechEventType, segment: int, stable: str = "") -> pb.Transcript:
        nonlocal at
        words = tuple(Word(w, at + i * 0.3, at + i * 0.3 + 0.25, 0.9) for i, w in enumerate(text.split()))
        end = words[-1].end
        if kind is SpeechEventType.FINAL:
            at = end + 0.5
        event = SpeechEvent(kind, segment, words[0].start, end, text, words, stable, speech_final=False)
        await call._on_speech(call.channels[channel], event)
        return next(e.transcript for e in reversed(bus.events) if e.type == "transcript")

    interim, final = SpeechEventType.INTERIM, SpeechEventType.FINAL
    assert (await say(1, "Let me get my card.", final, 1)).text == "Let me get my card."
    # The rep's channel has a context of its own: the customer's card phrase does not make the rep's digits one run
    # with theirs, and an order number stays visible.
    rep = await say(0, "Your order number is 55512.", final, 1)
    assert rep.text == "Your order number is 55512."
    shown = [
        await say(1, "Okay, the number is 4556", interim, 2, stable="Okay, the number is 4556"),
        await say(1, "Okay, the number is 4556 7375.", final, 2),  # cut by the utterance length limit
        await say(1, "8689", interim, 3, stable="8689"),
        await say(1, "8689 9855, expiring in June.", final, 3),
    ]
    assert [t.text for t in shown] == [
        "Okay, the number is [CARD]",
        "Okay, the number is [CARD].",
        "[CARD]",
        "[CARD], expiring in June.",
    ]
    assert shown[0].stable_text == "Okay, the number is [CARD]" and shown[2].stable_text == "[CARD]"
    assert [w.word for w in shown[3].words] == ["[CARD],", "expiring", "in", "June."]
    stored = [s.text for s in call.transcript.segments(1)]
    assert stored == ["Let me get my card.", "Okay, the number is [CARD].", "[CARD], expiring in June."]
    assert not any(shown_digits(w.word) for s in call.transcript.segments(1) for w in s.words)


async def test_the_rep_asking_for_the_card_number_hides_the_first_digits_the_customer_reads() -> None:
    """The card context is often the other party's question: "Can I have the card number?" on the rep's channel,
    then the customer's digits on theirs, hidden from the first one; the rep's own numbers never join the run."""
    bus = _Published()
    call = _stereo_call("CA-asked", bus)

    async def say(channel: int, text: str, kind: SpeechEventType, at: float) -> str:
        words = tuple(Word(w, at + i * 0.3, at + i * 0.3 + 0.25, 0.9) for i, w in enumerate(text.split()))
        event = SpeechEvent(kind, 1, words[0].start, words[-1].end, text, words, "", speech_final=False)
        await call._on_speech(call.channels[channel], event)
        return next(e.transcript.text for e in reversed(bus.events) if e.type == "transcript")

    interim, final = SpeechEventType.INTERIM, SpeechEventType.FINAL
    assert await say(0, "That is 49 dollars a seat. Can I have the card number?", final, 0.0) == (
        "That is 49 dollars a seat. Can I have the card number?"
    )
    assert await say(1, "Sure, 4556", interim, 4.0) == "Sure, [CARD]"
    assert await say(1, "Sure, 4556 7375", interim, 4.0) == "Sure, [CARD]"
    # Long after the question, a customer's number is their own business again.
    assert await say(1, "We have 12 reps.", final, 40.0) == "We have 12 reps."


# -- timed words ----------------------------------------------------------------------------------------------------


def test_an_entity_becomes_one_word_spanning_its_words() -> None:
    text = "My card number is 4111 1111 1111 1111. Expiry oh nine twenty seven, and the CVV is one two three."
    words = timed(text, start=0.0)
    result = REDACTOR.redact_words(words)
    assert [w.word for w in result.words] == [
        "My",
        "card",
        "number",
        "is",
        "[CARD].",
        "Expiry",
        "[EXPIRY],",
        "and",
        "the",
        "CVV",
        "is",
        "[CVV].",
    ]
    assert result.words[4] == Word("[CARD].", 2.0, 3.9, 1.0)
    assert result.words[6] == Word("[EXPIRY],", 4.5, 6.4, 1.0)
    assert result.spans == [AudioSpan("card", 2.0, 3.9), AudioSpan("expiry", 4.5, 6.4), AudioSpan("cvv", 8.5, 9.9)]
    assert result.words[0] is words[0]  # words outside entities are kept as they are
    assert result.text == REDACTOR.redact_text(text).text


def test_two_entities_in_one_word_share_it() -> None:
    result = REDACTOR.redact_words(timed("it's 4111111111111111/123 ok", start=0.0))
    assert [w.word for w in result.words] == ["it's", "[CARD]/[CVV]", "ok"]
    assert result.spans == [AudioSpan("card", 0.5, 0.9), AudioSpan("cvv", 0.5, 0.9)]


ALL_SAID = [said for said, _ in CARDS + CVVS + EXPIRIES + SSNS + PHONES + EMAILS] + ORDINARY


@pytest.mark.parametrize("interim", [False, True])
def test_redacted_words_agree_with_the_redacted_text(interim: bool) -> None:
    for said in ALL_SAID:
        text = " ".join(said.split())
        words = timed(text)
        result = REDACTOR.redact_words(words, interim=interim)
        assert result.text == REDACTOR.redact_text(text, interim=interim).text, said
        assert " ".join(w.word for w in result.words) == result.text
        placeholders = [w for w in result.words if "[" in w.word and w not in words]
        assert len(placeholders) == len(result.spans) or len(placeholders) < len(result.spans)
        for span in result.spans:  # each redacted span of audio is one placeholder word's time
            assert any(w.start <= span.start and span.end <= w.end for w in placeholders), said


def test_words_as_dicts_keep_their_other_fields() -> None:
    words = [
        {"word": w.word, "start": w.start, "end": w.end, "confidence": 0.5 + i / 100}
        for i, w in enumerate(timed("call me at 555 123 4567 thanks", start=0.0))
    ]
    result = REDACTOR.redact_words(words)
    assert result.words == [
        words[0],
        words[1],
        words[2],
        {"word": "[PHONE]", "start": 1.5, "end": 2.9, "confidence": 0.53},
        words[6],
    ]
    assert words[3]["word"] == "555"  # the input is not changed


def test_words_of_the_recogniser_and_plain_objects() -> None:
    engine_words = [Word(w.word, w.start, w.end, 0.9) for w in timed("SSN 123 45 6789", start=1.0)]
    result = REDACTOR.redact_words(engine_words)
    assert result.words == [engine_words[0], Word("[SSN]", 1.5, 2.9, 0.9)]

    class Plain:
        def __init__(self, word: str, start: float, end: float) -> None:
            self.word, self.start, self.end = word, start, end

    plain = [Plain(w.word, w.start, w.end) for w in timed("email me at bob@acme.com", start=0.0)]
    merged = REDACTOR.redact_words(plain).words
    assert [(w.word, w.start, w.end) for w in merged][-1] == ("[EMAIL]", 1.5, 1.9)
    assert plain[-1].word == "bob@acme.com"


def test_no_words_and_nothing_to_redact() -> None:
    assert REDACTOR.redact_words([]).words == []
    words = timed("nothing to see here")
    result = REDACTOR.redact_words(words)
    assert result.words == words
    assert result.spans == []


# -- policy ---------------------------------------------------------------------------------------------------------

EVERYTHING = "card 4111 1111 1111 1111, expiry 09/27, CVV 123. SSN 123-45-6789. call 555-123-4567. email bob@acme.com"
EVERYTHING_REDACTED = {
    "card": "card [CARD], expiry",
    "expiry": "expiry [EXPIRY], CVV",
    "cvv": "CVV [CVV].",
    "ssn": "SSN [SSN].",
    "phone": "call [PHONE].",
    "email": "email [EMAIL]",
}
EVERYTHING_SAID = {
    "card": "card 4111 1111 1111 1111, expiry",
    "expiry": "expiry 09/27, CVV",
    "cvv": "CVV 123.",
    "ssn": "SSN 123-45-6789.",
    "phone": "call 555-123-4567.",
    "email": "email bob@acme.com",
}


def test_by_default_every_type_is_redacted() -> None:
    assert RedactionPolicy().types == frozenset(REDACTION_TYPES)
    out = redact(EVERYTHING)
    for kind in REDACTION_TYPES:
        assert EVERYTHING_REDACTED[kind] in out


@pytest.mark.parametrize("kind", REDACTION_TYPES)
def test_a_type_turned_off_is_left_and_the_others_still_redacted(kind: str) -> None:
    redactor = Redactor(RedactionPolicy(frozenset(REDACTION_TYPES) - {kind}))
    out = redactor.redact_text(EVERYTHING).text
    assert EVERYTHING_SAID[kind] in out
    for other in set(REDACTION_TYPES) - {kind}:
        assert EVERYTHING_REDACTED[other] in out


@pytest.mark.parametrize("kind", REDACTION_TYPES)
def test_a_type_alone(kind: str) -> None:
    out = Redactor(RedactionPolicy({kind})).redact_text(EVERYTHING).text
    assert EVERYTHING_REDACTED[kind] in out
    for other in set(REDACTION_TYPES) - {kind}:
        assert EVERYTHING_SAID[other] in out


def test_a_card_number_not_redacted_is_not_taken_for_a_phone_number() -> None:
    phones_only = Redactor(RedactionPolicy({"phone"}))
    said = "my card is four one one one one one one one one one one one one one one one, call me at 555 123 4567"
    assert phones_only.redact_text(said).text == (
        "my card is four one one one one one one one one one one one one one one one, call me at [PHONE]"
    )


def test_nothing_redacted() -> None:
    assert Redactor(RedactionPolicy.none()).redact_text(EVERYTHING).text == EVERYTHING
    assert Redactor(RedactionPolicy.none()).redact_words(timed(EVERYTHING)).spans == []


def test_policy_from_a_team_configuration() -> None:
    assert CONFIG_REDACTION_TYPES == REDACTION_TYPES
    assert RedactionPolicy.of(TeamConfig().redaction) == RedactionPolicy()
    assert RedactionPolicy.of(["email", "phone", "email"]).types == {"email", "phone"}
    assert "email" in RedactionPolicy.of(["email"])


def test_unknown_types_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown redaction types \['iban', 'passport'\]; valid: card, cvv, expiry"):
        RedactionPolicy({"card", "passport", "iban"})
    with pytest.raises(ValueError, match=r"unknown redaction types \['CARD'\]; valid: card, cvv, expiry, ssn, phone"):
        RedactionPolicy.of(["CARD"])
    with pytest.raises(ValueError, match="not a string"):
        RedactionPolicy.of("card")
    with pytest.raises(ValueError, match="not a string"):
        RedactionPolicy("card")  # type: ignore[arg-type]


# -- properties -----------------------------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"[0-9]+(?:[ -]+[0-9]+)*")


def leaked_card(text: str) -> str | None:
    """A run of digits (spaces and hyphens between) that is 13-19 digits long and passes the Luhn check."""
    for m in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"[^0-9]", "", m[0])
        if 13 <= len(digits) <= 19 and luhn(digits):
            return m[0]
    return None


@st.composite
def card_numbers(draw: st.DrawFn, leads: str = "0123456789") -> str:
    length = draw(st.integers(13, 19))
    body = draw(st.sampled_from(leads)) + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    number = with_check_digit(body)
    pieces: list[str] = []
    k = 0
    while k < len(number):
        size = draw(st.integers(1, 5))
        chunk = number[k : k + size]
        pieces.append(spoken(chunk, draw(st.sampled_from(["oh", "zero"]))) if draw(st.booleans()) else chunk)
        k += size
    separators = st.sampled_from([" ", "-", ", ", " - ", "... ", " uh "])
    return "".join(p + (draw(separators) if i < len(pieces) - 1 else "") for i, p in enumerate(pieces))


FRAGMENTS = st.one_of(
    card_numbers(),
    st.text("0123456789", min_size=1, max_size=20),
    st.sampled_from([*DIGIT_WORDS, "oh", "double", "triple", "twenty", "hundred", "thousand", "eleven", "forty"]),
    st.sampled_from(["card", "credit card", "cvv", "expires", "social", "SSN", "call", "+", "plus", "$", "dollars"]),
    st.sampled_from(["at", "dot", "@", "acme", "com", "john", "September", "last four", "my", "is", "the"]),
    st.sampled_from([".", ",", "-", "/", "(", ")", ":", "...", "?", " ", "  "]),
    st.text(max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(FRAGMENTS, max_size=25), st.lists(st.sampled_from([" ", "", "-", ", "]), min_size=25, max_size=25))
def test_never_raises_and_never_leaves_a_card_number(fragments: list[str], joins: list[str]) -> None:
    text = "".join(f + j for f, j in zip(fragments, joins, strict=False))
    for interim in (False, True):
        out = REDACTOR.redact_text(text, interim=interim)
        assert leaked_card(out.text) is None, (text, out.text)
        previous = REDACTOR.redact_text(text, interim=interim, previous=text)
        assert leaked_card(previous.text) is None
    words = [Word(w, i * 0.1, i * 0.1 + 0.05, 1.0) for i, w in enumerate(text.split())]
    joined = " ".join(w.word for w in words)
    assert REDACTOR.redact_words(words).text == REDACTOR.redact_text(joined).text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_at_all(text: str) -> None:
    out = REDACTOR.redact_text(text, interim=True)
    assert leaked_card(out.text) is None
    at = 0
    for span in out.spans:
        assert at <= span.start < span.end <= len(text)
        at = span.end
