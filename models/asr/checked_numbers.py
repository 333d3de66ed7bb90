"""Card numbers mended by their check digit: a digit heard as a word that sounds like it ("for", "to", "won",
"ate", "oh") inside a run of digits is read as that digit when, and only when, the run then holds a card number
(13-19 digits) that passes the Luhn check and does not without it.

Whisper writes a spoken "four" as "for" now and then, also in the middle of a card number read out digit by
digit ("3714 for 9635 3984 31"). A card number carries its own error check: one digit changed or left out fails it,
so a homophone read as a digit that makes the whole number pass is, nine times in ten, what was said (and a run
of 13 or more digits joined by such words is a number being read out). Nothing else is touched: "3 for 5", "2 to
4", a price or a phone number stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from itertools import combinations

from models.asr.engine import Hypothesis

SOUNDS_LIKE = {"for": "4", "fore": "4", "to": "2", "too": "2", "won": "1", "ate": "8", "oh": "0"}
CARD_DIGITS = range(13, 20)
MAX_GUESSES = 3  # homophones read as digits in one number, at most

_CORE = re.compile(r"^(\W*)(.*?)(\W*)$")
_DIGITS = re.compile(r"^\d+(?:[-./]\d+)*$")
_GAP = re.compile(r"[\W_]*")  # what may lie between two words in a text: spaces, punctuation


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mend(tokens: Sequence[str]) -> list[str]:
    """``tokens`` (words as the recogniser wrote them, punctuation attached) with the homophones of digits inside
    a Luhn-checked card number written as the digits."""
    out = list(tokens)
    parts: list[tuple[str, str, str]] = []
    numbers: list[str | None] = []  # the digits of a number token
    sounds: list[str | None] = []  # the digit a homophone sounds like
    for token in tokens:
        m = _CORE.match(token)
        lead, core, trail = m.groups() if m else ("", token, "")
        parts.append((lead, core, trail))
        numbers.append(re.sub(r"\D", "", core) if _DIGITS.match(core) else None)
        sounds.append(SOUNDS_LIKE.get(core.lower()))
    i = 0
    while i < len(tokens):
        if numbers[i] is None and sounds[i] is None:
            i += 1
            continue
        j = i  # a run of numbers and homophones, not across a full stop or question mark
        while j < len(tokens) and (numbers[j] is not None or sounds[j] is not None):
            j += 1
            if _ends_sentence(tokens[j - 1]):
                break
        guesses = [k for k in range(i, j) if sounds[k] is not None]
        if guesses and len(guesses) < j - i and not _card_in(numbers, i, j):
            for chosen in _choices(guesses):
                spelled = [numbers[k] if k not in chosen else sounds[k] for k in range(len(tokens))]
                if _card_in(spelled, i, j, must=chosen):
                    for k in chosen:
                        lead, core, trail = parts[k]
                        out[k] = lead + (sounds[k] or core) + trail
                    break
        i = j
    return out


def _choices(guesses: list[int]) -> list[set[int]]:
    """Sets of homophones to read as digits, fewest first."""
    return [set(c) for size in range(1, min(MAX_GUESSES, len(guesses)) + 1) for c in combinations(guesses, size)]


def _ends_sentence(token: str) -> bool:
    return token.rstrip("\"')").endswith((".", "?", "!"))


def _card_in(digits: Sequence[str | None], i: int, j: int, must: set[int] | None = None) -> bool:
    """Do whole tokens of ``digits[i:j]`` (None: not a number) spell a card number that passes the Luhn check
    (and holds every token of ``must``)?"""
    for a in range(i, j):
        spelled = ""
        for b in range(a, j):
            piece = digits[b]
            if piece is None:
                break
            spelled += piece
            if len(spelled) > CARD_DIGITS.stop - 1:
                break
            if len(spelled) in CARD_DIGITS and (not must or must <= set(range(a, b + 1))) and luhn(spelled):
                return True
    return False


def mend_hypothesis(hypothesis: Hypothesis) -> Hypothesis:
    """``mend`` applied to a hypothesis' words and its text alike, so that the two always spell the same. Whisper's
    words may split a text token ("539-1488-0343-6467." as "539", "-1488", ...): each word is found in the text in
    order, with only spaces and punctuation between it and the one before; where one is not, nothing is changed."""
    said = [w.word for w in hypothesis.words]
    if not any(_core(word) in SOUNDS_LIKE for word in said):
        return hypothesis
    mended = mend(said)
    if mended == said:
        return hypothesis
    text, spans, pos = hypothesis.text, [], 0
    for word in said:
        found = text.find(word, pos)
        if found < 0 or not _GAP.fullmatch(text, pos, found):
            return hypothesis
        spans.append((found, found + len(word)))
        pos = found + len(word)
    for (a, b), old, new in reversed(list(zip(spans, said, mended, strict=True))):
        if old != new:
            text = text[:a] + new + text[b:]
    words = tuple(w if w.word == m else replace(w, word=m) for w, m in zip(hypothesis.words, mended, strict=True))
    return replace(hypothesis, text=text, words=words)


def _core(token: str) -> str:
    m = _CORE.match(token)
    return (m.group(2) if m else token).lower()
