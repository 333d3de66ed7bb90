"""PII redaction of live transcripts: card numbers, CVVs, expiry dates, SSNs, phone numbers and email addresses.

Pure and fast (a few microseconds for a segment with no digit, number word or "at"; 100-200 µs for one with
numbers): it runs on every interim and final before anything leaves the server. ``Redactor.redact_text`` hides
entities in a transcript's text; ``Redactor.redact_words`` does the same to its timed words, turning each entity
into one placeholder word that spans the entity's words, and gives the audio spans to silence.

How numbers are read. The recogniser writes them as digits ("4111 1111 1111 1111", "4111-1111-...",
"(555) 123-4567") or as words, digit by digit or in groups ("four one one one", "double four", "triple oh", "oh" for
zero, "forty one eleven", "eight hundred", "twenty twenty seven", "two thousand twenty seven"), or mixed
("4 1 1 1 one one"). Numbers joined only by spaces, hyphens, commas, slashes, parentheses, a dot inside a number
("555.123.4567"), an ellipsis, the words dash, hyphen or slash, or fillers (uh, um) form one *run* of digits. A
full stop, question mark, colon or any other word ends a run. Detectors look at token-aligned windows of a run, so
a card number is found when other digits are said right before or after it.

*Context* is a phrase at most 8 words (card, SSN, phone) or 6 words (expiry, CVV) before the digits, or at most 4
words after them. The rules, in the order they claim digits:

1. email: written (``john.smith@acme.com``) or spoken ("john dot smith at acme dot com", "jane underscore doe at
   mail dot acme dot io"): a local part, "at" or "@", then a domain whose last label is a known top-level domain.
2. phone with a plus: "+" or "plus", then 10-15 digits (E.164).
3. card: 13-19 digits passing the Luhn check, anywhere, context or not. Windows aligned with the run and 16- or
   15-digit windows are preferred, and a window not starting with 0 to one that does.
4. expiry by month name, in expiry context: "valid through September 2027", "expires Sept of twenty seven".
5. ssn by shape: 3-2-4 digit groups set off by hyphens or spaces ("123-45-6789"), with a valid area, group and
   serial, without context.
6. by context, each remaining part of a run becomes the type of the nearest context phrase among the types it can
   be (ties: expiry, CVV, SSN, card, phone; 3 digits are a CVV before an expiry):

   - expiry ("expiry", "expires", "exp", "expiration", "valid through/thru/until", "good thru"): digits reading as
     MMYY, MYY, MMYYYY or MYYYY ("09/27", "oh nine twenty seven", "9/2027");
   - cvv ("CVV", "CVC", "CID", "security code", "three digit code", ...): 3 or 4 digits;
   - ssn ("social", "social security", "SSN", "tax ID"): 9 digits; 4 after "last four"; 3 or more after the phrase
     (the start of one: the rest may come in the next segment);
   - card ("card", "credit", "debit", "Visa", "Mastercard", "Amex", "long number"; or "number" / "digits" said
     after a CVV or expiry phrase): 6 or more digits after the phrase (the start of a card number, or one the
     recogniser slipped on, failing the Luhn check; also digits right before a Luhn-checked window, and more than
     19), 12-19 before it;
   - phone ("call", "phone", "cell", "mobile", "reach", "text", ...): 10-15 digits.

   Digits said in the same run right after a card number count as expiry and CVV context, weaker than any phrase
   ("4111 ... 1111, oh nine twenty seven, one two three"); both in one breath are split ("09/27 123").
7. phone without context: 10 digits not starting with 0 or 1 (a US number), or 11 starting with 1 ("1 800 555
   0199"). Runs marked as amounts ("$", "dollars", "percent", "thousand") are left to the card rules only.

Detection does not depend on the policy; the policy only chooses which detected entities are hidden, so that with
cards not redacted a card number is still not taken for a phone number.

The digits a text *ends* with (only punctuation, fillers or "double" after them) may go on in the next interim or
final: a pause or the utterance length limit may cut a final in the middle of a number, and finals are never changed
once sent. So, in interims and finals alike:

- in card context, with no phrase of another kind nearer (expiry, CVV, SSN, phone, or ``not_card``: "order",
  "ticket", "fee", "limit", "price", ...), they are ``[CARD]`` from the first digit. Not: a time ("9:30"), an amount
  ("$4,111", "40 dollars", "4,111") unless "number" or "digits" is said just before, a number after "at", "in",
  "since", "by", ... ("by card at 9"), a year (1900-2099), a number starting with 0, a lone "one" ("the blue one"),
  and 4 digits or fewer after "last four" or "ending in" (the last four of a card may be shown);
- right after a card number, as more of it (up to 19 digits in all).

An interim also hides the digits it ends with in expiry context (up to 6 digits, or a month name alone) as
``[EXPIRY]``, in CVV context (up to 4) as ``[CVV]``, in phone context (6 or more) as ``[PHONE]``, and without any
context 12 or more as ``[CARD]`` (they may be growing into a card number), each by the nearest phrase. Interims err
on hiding; the final, decoded once more, is judged by the rules above.

Pass what the same speaker said before as ``previous`` (``context_after`` keeps it: the last finals, unredacted, up
to 200 characters): its context counts, and it is joined to the text without the full stop that ended the last
final, so a number read out across finals is one run ("my card number is 4556 7375." then "8689 9855 expiring").

Not caught: numbers split by a full stop or by a word ("four one one one. One one one one", "four one one one and
one one one one"); non-ASCII digits; card numbers of fewer than 13 digits outside card context; phone numbers of
fewer than 10 digits (a local "555-0199"); spoken numbers in an email's local part ("john seventy two at ...");
spelled-out letters ("j o h n at ..."); street addresses, names, dates of birth, bank account and routing numbers.
Over-redaction happens near context phrases: "my card's limit went up 250,000" is an amount and is left alone, but
"card 123456" is hidden, and so is a number said last after a card word ("How many cards? 2.").
"""

from __future__ import annotations

import copy
import dataclasses
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar, cast

REDACTION_TYPES = ("card", "cvv", "expiry", "ssn", "phone", "email")
_ALL = frozenset(REDACTION_TYPES)


@dataclass(frozen=True)
class RedactionPolicy:
    """Which entity types a team redacts; by default all of them. Unknown names are refused."""

    types: AbstractSet[str] = _ALL

    def __post_init__(self) -> None:
        if isinstance(self.types, str):
            raise ValueError(f"redaction types must be a set of names, e.g. {{{self.types!r}}}, not a string")
        unknown = sorted(set(self.types) - _ALL)
        if unknown:
            raise ValueError(f"unknown redaction types {unknown}; valid: {', '.join(REDACTION_TYPES)}")
        object.__setattr__(self, "types", frozenset(self.types))

    @classmethod
    def of(cls, names: Iterable[str]) -> RedactionPolicy:
        """From a list of type names, such as a team configuration's ``redaction``."""
        if isinstance(names, str):
            raise ValueError(f"redaction types must be a list of names, e.g. [{names!r}], not a string")
        return cls(frozenset(names))

    @classmethod
    def none(cls) -> RedactionPolicy:
        return cls(frozenset())

    def __contains__(self, kind: str) -> bool:
        return kind in self.types


@dataclass(frozen=True)
class Redaction:
    type: str  # one of REDACTION_TYPES
    start: int  # character offsets in the original text
    end: int

    @property
    def placeholder(self) -> str:
        return placeholder(self.type)


@dataclass(frozen=True)
class RedactionResult:
    text: str
    spans: list[Redaction]


@dataclass(frozen=True)
class AudioSpan:
    """Call time of redacted words, to silence in stored audio."""

    type: str
    start: float
    end: float


class WordLike(Protocol):
    @property
    def word(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


W = TypeVar("W", bound=WordLike | Mapping[str, Any])


@dataclass(frozen=True)
class RedactedWords(Generic[W]):
    """The words with each entity merged into one placeholder word, and what was redacted."""

    words: list[W]
    spans: list[AudioSpan]  # in order of time, one per entity
    text: str  # the words joined by single spaces: equal to ``redact_text`` of the joined original words
    redactions: list[Redaction] = field(default_factory=list)  # character spans in the joined original words


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


class Redactor:
    def __init__(self, policy: RedactionPolicy | None = None) -> None:
        self.policy = policy or RedactionPolicy()

    def find(self, text: str, *, interim: bool = False, previous: str = "") -> list[Redaction]:
        """The entities of ``text`` the policy redacts, in order, without overlaps. ``previous``: what the same
        speaker said just before (the last final), whose context and digits count, so that a card number cut in two
        by a pause is still found; only spans in ``text`` are returned."""
        if not self.policy.types:
            return []
        offset = 0
        if previous:
            tail = _tail(previous)
            text = f"{tail} {text}"
            offset = len(tail) + 1
        out: list[Redaction] = []
        at = offset
        for hit in _Scan(text, interim).run():
            start = max(hit.start, at)
            if start >= hit.end:
                continue
            at = hit.end
            if hit.type in self.policy.types:
                out.append(Redaction(hit.type, start - offset, hit.end - offset))
        return out

    def redact_text(self, text: str, *, interim: bool = False, previous: str = "") -> RedactionResult:
        spans = self.find(text, interim=interim, previous=previous)
        if not spans:
            return RedactionResult(text, [])
        out: list[str] = []
        at = 0
        for span in spans:
            out += (text[at : span.start], span.placeholder)
            at = span.end
        out.append(text[at:])
        return RedactionResult("".join(out), spans)

    def redact_words(self, words: Sequence[W], *, interim: bool = False, previous: str = "") -> RedactedWords[W]:
        """Words (objects with ``word``, ``start``, ``end``, or mappings with those keys) joined by single spaces
        and redacted as text. The words an entity touches become one word (dataclasses are ``replace``d, mappings
        copied, other fields kept from the first word): its text is the placeholder with whatever of the first and
        last words lay outside the entity ("[CARD]." keeps the full stop), its time from the first word's start to
        the last word's end."""
        texts = [_field(w, "word") for w in words]
        offsets: list[int] = []
        at = 0
        for t in texts:
            offsets.append(at)
            at += len(t) + 1
        joined = " ".join(texts)
        spans = self.find(joined, interim=interim, previous=previous)
        if not spans:
            return RedactedWords(list(words), [], joined, [])
        ends = [o + len(t) for o, t in zip(offsets, texts, strict=True)]
        # the words an entity touches: from the first that ends after its start to the last that starts before its end
        touched = [(bisect_left(ends, s.start + 1), bisect_left(offsets, s.end) - 1) for s in spans]
        clusters: list[list[int]] = []  # [first word, last word, first span, last span]
        for k, (i, j) in enumerate(touched):
            if clusters and i <= clusters[-1][1]:
                clusters[-1][1] = max(clusters[-1][1], j)
                clusters[-1][3] = k
            else:
                clusters.append([i, j, k, k])
        out: list[W] = []
        audio: list[AudioSpan] = []
        cursor = 0
        for i, j, k0, k1 in clusters:
            out.extend(words[cursor:i])
            first, last = words[i], words[j]
            t0, t1 = float(_field(first, "start")), float(_field(last, "end"))
            at = offsets[i]
            pieces: list[str] = []
            for k in range(k0, k1 + 1):
                span, (a, b) = spans[k], touched[k]
                pieces += (joined[at : span.start], span.placeholder)
                at = span.end
                audio.append(AudioSpan(span.type, float(_field(words[a], "start")), float(_field(words[b], "end"))))
            pieces.append(joined[at : ends[j]])
            out.append(_with(first, "".join(pieces), t0, t1))
            cursor = j + 1
        out.extend(words[cursor:])
        audio.sort(key=lambda a: (a.start, a.end))
        return RedactedWords(out, audio, " ".join(_field(w, "word") for w in out), spans)


def context_after(previous: str, final: str) -> str:
    """What to pass as ``previous`` once the same speaker has said ``final``: their recent finals, unredacted, as
    one text (so that context said a few finals back still counts, and a number read out across several finals
    is one run). Keep it in memory only: it holds what redaction hides."""
    final = final.strip()
    if not final:
        return previous
    return _clip(f"{_tail(previous)} {final}" if previous else final)


def other_party_context(text: str) -> str:
    """What the other party said last, as context for this speaker: its words without its numbers. "What's the
    card number?" makes the digits read out next card digits from the first one; the other party's own digits
    never join this speaker's run."""
    kept = [t for t in _TOKEN.findall(text) if not t.isdigit() and t.lower() not in _NUMBER_WORDS]
    return _clip(" ".join(kept))


def _clip(text: str) -> str:
    """The last ``_PREVIOUS_CHARS`` of a text, from a word's start."""
    if len(text) <= _PREVIOUS_CHARS:
        return text
    tail = text[-_PREVIOUS_CHARS:]
    return tail[next((k for k, ch in enumerate(tail) if ch.isspace()), 0) :].lstrip()


def _tail(previous: str) -> str:
    """The context before a text: the end of what was said before, without the full stop (or comma, question mark,
    ellipsis) the recogniser ends a final with: the pause that cut a final is not the end of a number."""
    return _clip(previous).rstrip().rstrip(_FINAL_PUNCT).rstrip()


def _field(w: WordLike | Mapping[str, Any], key: str) -> Any:
    return w[key] if isinstance(w, Mapping) else getattr(w, key)


def _with(w: W, text: str, start: float, end: float) -> W:
    if isinstance(w, Mapping):
        return cast(W, {**w, "word": text, "start": start, "end": end})
    if dataclasses.is_dataclass(w) and not isinstance(w, type):
        return cast(W, dataclasses.replace(w, word=text, start=start, end=end))
    clone = copy.copy(w)
    for key, value in (("word", text), ("start", start), ("end", end)):
        setattr(clone, key, value)
    return clone


# -- detection ------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[0-9]+|[^\W\d_]+(?:['’][^\W\d_]+)*|\S")
_PUNCT, _WORD, _DIGITS = 0, 1, 2

_UNITS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "nought": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_ZEROS = frozenset({"zero", "oh", "o", "nought"})
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_REPEAT = {"double": 2, "triple": 3}
_NUMBER_WORDS = frozenset({*_UNITS, *_TEENS, *_TENS, *_REPEAT, "hundred", "thousand"})
_CUES = _NUMBER_WORDS | {"at", "dot"}  # without a digit, "@" or one of these words a text has nothing to redact
_LETTERS = re.compile(r"[a-z]+")

_SEPARATOR_CHARS = frozenset("-–—,/()")  # between the numbers of a run
_GROUP_WORDS = frozenset({"dash", "hyphen", "slash"})
_FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "hmm", "mm"})
_CURRENCY = frozenset("$£€¥")
_AMOUNT_AFTER = frozenset({"dollars", "dollar", "bucks", "percent", "%", "cents", "euros", "pounds", "k", "grand"})
_AMOUNT_AFTER |= {"million", "billion", "thousand", "seats", "users", "licenses", "units"}
_MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}

_TLDS = frozenset(
    "com net org edu gov mil io co us uk ca au de fr es nl ie in ai app dev biz info me tv ly cc xyz tech".split()
)
# Words before a spoken "at" that are not the local part of an address ("visit us at acme dot com").
_LOCAL_STOP = frozenset(
    "me us is it's its it him her them you your my our we i i'm we're they're you're he's she's they "
    "email e-mail mail address reach contact write ping message send sent forward cc copy at to that's "
    "that this the a an and or of on in be was were are am been here there look visit find online live "
    "based located out go check up site website page link back directly anytime available".split()
)
_DOMAIN_STOP = frozenset("the a an my your our their this that".split())
_LOCAL_JOINERS = frozenset({"dot", "underscore", "dash", "hyphen", "period", "point"})
_LOCAL_JOIN_CHARS = frozenset("._-+")


def _ctx(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + pattern + r")(?![a-z0-9])")


_CONTEXT: dict[str, re.Pattern[str]] = {
    "card": _ctx(r"cards?|card ?holder|credit|debit|visa|master ?card|amex|american express|discover card|long number"),
    "cvv": _ctx(
        r"c\.? ?v\.? ?[vc]\.?2?|cid|csc|cvn|security (?:code|number|digits)|verification (?:code|number|value)"
        r"|(?<!last )(?:three|four|3|4)[- ]digits?(?: code| number)?|code on the back"
    ),
    "expiry": _ctx(
        r"exp|expiry|expires?|expired|expiring|expiration|valid (?:through|thru|until|till|to)"
        r"|good (?:through|thru|until|till)|valid date|end date"
    ),
    "ssn": _ctx(
        r"social(?: security)?(?! media| network| selling| proof| channel)"
        r"|ssn|s\.? ?s\.? ?n\.?|tax ?id|taxpayer id|itin"
    ),
    "last4": _ctx(r"last (?:four|4)(?: digits)?"),
    "shown": _ctx(r"last (?:four|4)(?: digits)?|end(?:s|ing) (?:in|with)"),  # the last four of a card may be shown
    "number": _ctx(r"numbers?|digits"),
    # another number's name, or an amount's: nearer than the card phrase, digits said last are not a card number
    "not_card": _ctx(
        r"order|invoice|ticket|tracking|confirmation|reference|ref|case|zip|postal|room|extension|version"
        r"|fees?|limit|balance|price|costs?|charged|total|points|rate"
    ),
    "phone": _ctx(
        r"phone|telephone|cell|cellphone|mobile|call|calling|callback|text|texting|fax|reach|ring|dial|whatsapp"
        r"|landline|extension|contact number|phone number"
    ),
}
_BEFORE = {"card": 8, "ssn": 8, "last4": 4, "shown": 8, "number": 3, "not_card": 8, "phone": 8, "cvv": 6, "expiry": 6}
_AFTER = 4
_PREVIOUS_CHARS = 200  # of the text before: a card number said in words, its context and a short final between
_FINAL_PUNCT = ".,;!?…"
# Words after which a number is a time, a date or a quantity ("by card at 9", "since 2019"), not a card number.
_NOT_CARD_LEAD = frozenset("at in on by since until till from about around after before".split())
_FAR = 99  # the distance of the context that digits right after a card number give (expiry, CVV)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}(?![\w-])", re.IGNORECASE)


@dataclass(slots=True)
class _Token:
    start: int
    end: int
    kind: int
    norm: str  # lower case
    space_after: bool


@dataclass(slots=True)
class _Element:
    """One number of a run: a digit token or a spoken number (one or more words)."""

    digits: str
    first: int  # token indices, inclusive
    last: int
    boundary_before: bool  # an explicit separator (or, between written numbers, a space) before it
    spoken: bool


@dataclass(slots=True)
class _Run:
    elements: list[_Element]
    plus: int | None = None  # the token index of a leading "+" or "plus"
    paren: int | None = None  # the token index of a leading "("
    amount: bool = False
    currency: int | None = None  # the token index of a leading "$"
    time: bool = False  # right after "9:" (the minutes of a time)
    trailing: bool = False  # nothing but punctuation after it: the interim may still be saying it
    start: int | None = None  # where its first hit starts when a word before belongs to it (a month)
    prefix: list[int] = field(default_factory=list)  # digits before each element
    owner: list[str | None] = field(default_factory=list)  # the type each element was claimed for

    def digits(self, i: int, j: int) -> str:
        return "".join(e.digits for e in self.elements[i:j])

    def size(self, i: int, j: int) -> int:
        return self.prefix[j] - self.prefix[i]

    def free(self, i: int, j: int) -> bool:
        return all(o is None for o in self.owner[i:j])

    def segments(self) -> list[tuple[int, int]]:
        """Maximal ranges of unclaimed elements."""
        out = []
        i, n = 0, len(self.elements)
        while i < n:
            if self.owner[i] is not None:
                i += 1
                continue
            j = i
            while j < n and self.owner[j] is None:
                j += 1
            out.append((i, j))
            i = j
        return out

    def groups(self, i: int, j: int) -> list[int]:
        """Digits per group: elements split at explicit boundaries (spoken digits with no separator are one group)."""
        sizes: list[int] = []
        for k in range(i, j):
            e = self.elements[k]
            if k == i or e.boundary_before:
                sizes.append(len(e.digits))
            else:
                sizes[-1] += len(e.digits)
        return sizes


def _thousands(text: str, toks: list[_Token], elements: list[_Element]) -> bool:
    """Written like a quantity: "250,000", "1,250,000" (groups of three after commas)."""
    if len(elements) < 2 or any(e.spoken for e in elements) or len(elements[0].digits) > 3:
        return False
    for prev, e in pairwise(elements):
        if len(e.digits) != 3 or text[toks[prev.last].end : toks[e.first].start] != ",":
            return False
    return True


def _nearest(before: int | None, after: int | None) -> int | None:
    if before is None:
        return after
    if after is None:
        return before
    return min(before, after)


def _luhn(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if k & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _valid_ssn(d: str) -> bool:
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def _expiry(d: str) -> bool:
    """MMYY, MYY, MMYYYY or MYYYY, months 1-12, four-digit years 20xx."""
    n = len(d)
    if n == 4:
        return 1 <= int(d[:2]) <= 12
    if n == 3:
        return d[0] != "0"
    if n == 6:
        return 1 <= int(d[:2]) <= 12 and d[2:4] == "20"
    if n == 5:
        return d[0] != "0" and d[1:3] == "20"
    return False


class _Scan:
    """One pass over one text."""

    def __init__(self, text: str, interim: bool) -> None:
        self.text = text
        self.interim = interim
        self.hits: list[Redaction] = []

    def run(self) -> list[Redaction]:
        text = self.text
        lower = text.lower()
        if len(lower) != len(text):  # a few characters lower to two ("İ"): keep offsets those of the text
            lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        if not any(c in lower for c in "0123456789@"):
            said = _LETTERS.findall(lower)
            if _CUES.isdisjoint(said) and (not self.interim or _MONTHS.keys().isdisjoint(said)):
                return []
        self.lower = lower
        toks: list[_Token] = []
        end_of_text = len(text)
        for m in _TOKEN.finditer(lower):
            token, start, end = m[0], m.start(), m.end()
            first = token[0]
            kind = _DIGITS if "0" <= first <= "9" else _WORD if first.isalpha() else _PUNCT
            toks.append(_Token(start, end, kind, token, end == end_of_text or lower[end].isspace()))
        self.tokens = toks
        if not toks:
            return []
        self.starts = [t.start for t in toks]
        self.claimed = [False] * len(toks)
        words = [0]
        for t in toks:
            words.append(words[-1] + (t.kind != _PUNCT))
        self.words = words  # words[i]: words before token i
        self._emails()
        self.context = {kind: self._context(p) for kind, p in _CONTEXT.items()}
        runs = self._runs()
        for r in runs:
            self._plus_phone(r)
            self._luhn_cards(r)
        self._month_expiries(runs)
        for r in runs:
            self._shaped_ssn(r)
            self._by_context(r)
            self._phones(r)
            self._trailing(r)
            self._emit(r)
        self.hits.sort(key=lambda h: h.start)
        return self.hits

    # -- emails -----------------------------------------------------------------------------------------------

    def _emails(self) -> None:
        toks = self.tokens
        for m in _EMAIL.finditer(self.text):
            first = bisect_right(self.starts, m.start()) - 1  # the tokens it overlaps
            if first < 0 or toks[first].end <= m.start():
                first += 1
            last = bisect_left(self.starts, m.end()) - 1
            for k in range(first, last + 1):
                self.claimed[k] = True
            self.hits.append(Redaction("email", m.start(), m.end()))
        if "at" not in self.lower and "@" not in self.lower:
            return
        for k, t in enumerate(toks):
            if (t.norm == "at" or t.norm == "@") and not self.claimed[k]:
                end = self._domain(k + 1)
                local = None if end is None else self._local(k - 1)
                if local is not None and end is not None:
                    self._claim("email", local, end)

    def _label(self, i: int) -> bool:
        return 0 <= i < len(self.tokens) and self.tokens[i].kind != _PUNCT and not self.claimed[i]

    def _dot(self, i: int) -> bool:
        t = self.tokens[i]
        return t.norm in ("dot", "period", "point") or (t.norm == "." and not t.space_after)

    def _domain(self, i: int) -> int | None:
        """The last token of a domain starting at ``i`` ("acme dot com", "acme.co.uk"), if it ends in a known TLD."""
        toks = self.tokens
        if not self._label(i) or toks[i].norm in _DOMAIN_STOP:
            return None
        last, dots, j = i, 0, i + 1
        while j + 1 < len(toks):
            if self._dot(j) and self._label(j + 1):
                dots += 1
            elif not (toks[j].norm in ("-", "dash", "hyphen") and self._label(j + 1)):
                break
            last = j + 1
            j += 2
        if dots and toks[last].norm in _TLDS:
            return last
        return None

    def _local(self, i: int) -> int | None:
        """The first token of a local part ending at ``i`` ("john dot smith", "jane_doe")."""
        toks = self.tokens
        if not self._label(i) or toks[i].norm in _LOCAL_STOP:
            return None
        first = i
        while first - 2 >= 0:
            joiner = toks[first - 1]
            joined = joiner.norm in _LOCAL_JOINERS or (joiner.norm in _LOCAL_JOIN_CHARS and not joiner.space_after)
            if joined and self._label(first - 2) and toks[first - 2].norm not in _LOCAL_STOP:
                first -= 2
            else:
                break
        return first

    # -- runs of digits ----------------------------------------------------------------------------------------

    def _spoken(self, i: int) -> tuple[str, int] | None:
        """The digits of the spoken number starting at token ``i``, and the index after it."""
        toks = self.tokens
        n = len(toks)
        w = toks[i].norm

        def nxt(j: int) -> int:  # the next word, across one hyphen ("twenty-seven")
            if j < n and toks[j].norm == "-" and j + 1 < n:
                return j + 1
            return j

        def below_hundred(j: int) -> tuple[int, int] | None:
            if j >= n:
                return None
            v = toks[j].norm
            if v in _TEENS:
                return _TEENS[v], j + 1
            if v in _TENS:
                k = nxt(j + 1)
                if k < n and toks[k].norm in _UNITS and toks[k].norm not in _ZEROS:
                    return _TENS[v] + _UNITS[toks[k].norm], k + 1
                return _TENS[v], j + 1
            if v in _UNITS and v not in _ZEROS:
                return _UNITS[v], j + 1
            return None

        def hundreds(j: int) -> tuple[int, int] | None:
            head = below_hundred(j)
            if head is None:
                if j < n and toks[j].norm == "hundred":  # "a hundred"
                    value, k = 100, j + 1
                else:
                    return None
            else:
                value, k = head
                if k < n and toks[k].norm == "hundred":
                    value, k = value * 100, k + 1
                else:
                    return value, k
            if k < n and toks[k].norm == "and" and below_hundred(k + 1) is not None:
                k += 1
            elif k < n and toks[k].norm in _UNITS and k + 1 < n and toks[k + 1].norm in _NUMBER_WORDS:
                return value, k  # "eight hundred five five five": digits said one by one go on
            rest = below_hundred(k)
            if rest is not None:
                value, k = value + rest[0], rest[1]
            return value, k

        if w in _REPEAT:
            k = nxt(i + 1)
            if k < n and toks[k].norm in _UNITS:
                return str(_UNITS[toks[k].norm]) * _REPEAT[w], k + 1
            return None
        if w in _ZEROS:
            return "0", i + 1
        got = hundreds(i)
        if got is None:
            return None
        value, k = got
        if k < n and toks[k].norm == "thousand" and value < 1000:
            value, k = value * 1000, k + 1
            if k < n and toks[k].norm == "and" and below_hundred(k + 1) is not None:
                k += 1
            rest = hundreds(k)
            if rest is not None and rest[0] < 1000:
                value, k = value + rest[0], rest[1]
        return str(value), k

    def _runs(self) -> list[_Run]:
        toks, claimed = self.tokens, self.claimed
        n = len(toks)
        runs: list[_Run] = []
        current: _Run | None = None
        boundary = False
        i = 0
        while i < n:
            t = toks[i]
            element: _Element | None = None
            if not claimed[i]:
                if t.kind == _DIGITS:
                    element = _Element(t.norm, i, i, True, False)
                    nxt = i + 1
                elif t.kind == _WORD and t.norm in _NUMBER_WORDS:
                    got = self._spoken(i)
                    if got is not None:
                        digits, nxt = got
                        element = _Element(digits, i, nxt - 1, boundary, True)
            if element is not None:
                if current is None:
                    current = _Run([element])
                    self._lead(current, i)
                else:
                    prev = current.elements[-1]
                    element.boundary_before = boundary or (not prev.spoken and not element.spoken)
                    current.elements.append(element)
                boundary = False
                i = nxt
                continue
            if current is not None and not claimed[i]:
                if t.kind == _PUNCT and (t.norm in _SEPARATOR_CHARS or self._inner_dot(i)):
                    boundary = True
                    i += 1
                    continue
                if t.norm in _GROUP_WORDS:
                    boundary = True
                    i += 1
                    continue
                if t.norm in _FILLERS:
                    i += 1
                    continue
            if current is not None:
                runs.append(self._close(current))
                current = None
            boundary = False
            i += 1
        if current is not None:
            runs.append(self._close(current))
        return runs

    def _inner_dot(self, i: int) -> bool:
        """A dot inside a number ("555.123.4567") or an ellipsis, not a full stop."""
        toks = self.tokens
        if toks[i].norm != ".":
            return False
        if not toks[i].space_after:
            return True
        return i > 0 and toks[i - 1].norm == "." and toks[i - 1].end == toks[i].start

    def _lead(self, run: _Run, i: int) -> None:
        toks = self.tokens
        j = i - 1
        if j >= 0 and toks[j].norm == "(" and not self.claimed[j]:
            run.paren = j
            j -= 1
        if j >= 0 and toks[j].norm in ("+", "plus") and not self.claimed[j]:
            run.plus = j
        if j >= 0 and toks[j].norm in _CURRENCY:
            run.amount = True
            run.currency = j
        if i >= 2 and toks[i - 1].norm == ":" and toks[i - 2].kind == _DIGITS and toks[i - 2].end == toks[i - 1].start:
            run.time = True

    def _close(self, run: _Run) -> _Run:
        toks = self.tokens
        last = run.elements[-1].last
        k = last + 1
        run.trailing = all(t.kind == _PUNCT or t.norm in _FILLERS or t.norm in _REPEAT for t in toks[k:])
        if k < len(toks) and (toks[k].norm in _AMOUNT_AFTER or (toks[k].norm == "%")):
            run.amount = True
        if _thousands(self.text, toks, run.elements):
            run.amount = True
        prefix = [0]
        for e in run.elements:
            prefix.append(prefix[-1] + len(e.digits))
        run.prefix = prefix
        run.owner = [None] * len(run.elements)
        return run

    # -- context -----------------------------------------------------------------------------------------------

    def _context(self, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        out = []
        for m in pattern.finditer(self.lower):
            first = bisect_left(self.starts, m.start())
            last = bisect_left(self.starts, m.end()) - 1
            if first <= last:
                out.append((first, last))
        return out

    def _near(self, kind: str, run: _Run, i: int, j: int) -> tuple[int | None, int | None]:
        """How many words lie between elements i..j-1 and the nearest context phrase of ``kind`` before them, and
        after them, where one is near enough."""
        first, last = run.elements[i].first, run.elements[j - 1].last
        words = self.words
        before: int | None = None
        after: int | None = None
        for a, b in self.context[kind]:
            if b < first:
                gap = words[first] - words[b + 1]
                if gap <= _BEFORE[kind] and (before is None or gap < before):
                    before = gap
            elif a > last:
                gap = words[a] - words[last + 1]
                if gap <= _AFTER and (after is None or gap < after):
                    after = gap
        return before, after

    def _near_token(self, kind: str, m: int) -> bool:
        words = self.words
        return any(b < m and words[m] - words[b + 1] <= _BEFORE[kind] for _, b in self.context[kind])

    # -- detectors ---------------------------------------------------------------------------------------------

    def _claim(self, kind: str, first: int, last: int) -> None:
        for k in range(first, last + 1):
            self.claimed[k] = True
        self.hits.append(Redaction(kind, self.tokens[first].start, self.tokens[last].end))

    def _own(self, run: _Run, kind: str, i: int, j: int) -> None:
        for k in range(i, j):
            run.owner[k] = kind

    def _plus_phone(self, run: _Run) -> None:
        if run.plus is None:
            return
        for j in range(len(run.elements), 0, -1):
            if 10 <= run.size(0, j) <= 15:
                self._own(run, "phone", 0, j)
                return

    def _luhn_cards(self, run: _Run) -> None:
        n = len(run.elements)
        if run.prefix[-1] < 13:
            return
        while True:
            best: tuple[tuple[bool, int, bool, int], int, int] | None = None
            for i in range(n):
                if run.owner[i] is not None:
                    continue
                for j in range(i + 1, n + 1):
                    if run.owner[j - 1] is not None:
                        break
                    size = run.size(i, j)
                    if size > 19:
                        break
                    if size < 13:
                        continue
                    d = run.digits(i, j)
                    if not _luhn(d):
                        continue
                    aligned = (i == 0 or run.owner[i - 1] is not None) + (j == n or run.owner[j] is not None)
                    score = (d[0] != "0", aligned, size in (15, 16), size)
                    if best is None or score > best[0]:
                        best = (score, i, j)
            if best is None:
                return
            self._own(run, "card", best[1], best[2])

    def _month_expiries(self, runs: list[_Run]) -> None:
        """ "valid through September 2027": the month word and the year after it."""
        by_first = {r.elements[0].first: r for r in runs}
        toks = self.tokens
        for m, t in enumerate(toks):
            if t.norm not in _MONTHS or self.claimed[m] or not self._near_token("expiry", m):
                continue
            k = m + 1
            while k < len(toks) and toks[k].norm in ("of", ","):
                k += 1
            run = by_first.get(k)
            if run is not None:
                for j in (2, 1):
                    if j <= len(run.elements) and run.free(0, j):
                        d = run.digits(0, j)
                        if len(d) == 2 or (len(d) == 4 and d[:2] == "20"):
                            self._own(run, "expiry", 0, j)
                            self.claimed[m] = True
                            run.start = t.start  # the hit of the year starts at the month
                            break
            elif self.interim and all(x.kind == _PUNCT for x in toks[m + 1 :]):
                self._claim("expiry", m, m)

    def _shaped_ssn(self, run: _Run) -> None:
        """3-2-4 digit groups with a valid area, group and serial are an SSN without any context."""
        if run.amount or run.prefix[-1] < 9:
            return
        n = len(run.elements)
        for i in range(n):
            for j in range(i + 1, n + 1):
                size = run.size(i, j)
                if size > 9:
                    break
                if size == 9 and run.free(i, j) and run.groups(i, j) == [3, 2, 4] and _valid_ssn(run.digits(i, j)):
                    if not self._read_as_card(run, i, j):
                        self._own(run, "ssn", i, j)

    def _by_context(self, run: _Run) -> None:
        """Each unclaimed part of a run becomes the type whose context phrase is nearest among those it can be."""
        for i, j in run.segments():
            size = run.size(i, j)
            tail = i > 0 and run.owner[i - 1] == "card"
            k_before = self._card_before(run, i)
            if run.amount and not tail and (k_before is None or self._near("number", run, i, j)[0] is None):
                continue  # an amount, unless read out as the card's number ("my card number is $4,111")
            if size > 19:
                if k_before is not None:  # a card number and more (or the recogniser said some digits twice)
                    self._own(run, "card", i, j)
                continue
            if k_before is not None and j < len(run.elements) and run.owner[j] == "card":
                # Digits said right before a card number, after the card phrase, are its start: the Luhn check
                # passed on a window of a number the recogniser slipped on.
                k = j
                while k < len(run.elements) and run.owner[k] == "card":
                    k += 1
                if run.size(i, k) <= 19 and not self._nearer_than_card(run, i, j, k_before):
                    self._own(run, "card", i, j)
                    continue
            d = run.digits(i, j)
            e_before, e_after = self._near("expiry", run, i, j)
            c_before, c_after = self._near("cvv", run, i, j)
            e, c = _nearest(e_before, e_after), _nearest(c_before, c_after)
            if tail:  # said in the same breath right after a card number: an expiry or a CVV, weaker than a phrase
                e = _FAR if e is None else e
                c = _FAR if c is None else c
            choices: list[tuple[int, int, str]] = []  # distance, tie order, type
            if e is not None and _expiry(d):
                choices.append((e, 0 if size > 3 else 2, "expiry"))
            if c is not None and 3 <= size <= 4:
                choices.append((c, 1, "cvv"))
            s_before, s_after = self._near("ssn", run, i, j)
            s = _nearest(s_before, s_after)
            if s is not None:
                if size == 9 or (size == 4 and self._near("last4", run, i, j)[0] is not None):
                    choices.append((s, 3, "ssn"))
                elif size >= 3 and s_before is not None:  # the start of an SSN
                    choices.append((s_before, 3, "ssn"))
            k_after = self._near("card", run, i, j)[1]
            if k_before is not None and size >= 6 and not tail:  # the start of a card number, or one with a slip
                choices.append((k_before, 4, "card"))
            elif k_after is not None and size >= 12:
                choices.append((k_after, 4, "card"))
            p = _nearest(*self._near("phone", run, i, j))
            if p is not None and 10 <= size <= 15:
                choices.append((p, 5, "phone"))
            if choices:
                _, _, kind = min(choices)
                self._own(run, kind, i, j)
            elif e is not None and c is not None:  # both in one breath: "09/27 123", "123 0927"
                self._split_expiry_cvv(run, i, j)
            if tail and k_before is not None and size >= 6 and run.owner[i] is None:
                self._own(run, "card", i, j)  # after a card number neither an expiry nor a CVV: more of the card

    def _split_expiry_cvv(self, run: _Run, i: int, j: int) -> None:
        """Splits a run into an expiry and a CVV, either way round; MMYY(YY) is a stronger expiry than MYY(YY)."""
        best: tuple[tuple[bool, bool], int, bool] | None = None
        for k in range(i + 1, j):
            head, rest = run.digits(i, k), run.digits(k, j)
            for expiry_first, expiry in ((True, head), (False, rest)):
                cvv = rest if expiry_first else head
                if _expiry(expiry) and 3 <= len(cvv) <= 4:
                    score = (len(expiry) in (4, 6), expiry_first)
                    if best is None or score > best[0]:
                        best = (score, k, expiry_first)
        if best is not None:
            _, k, expiry_first = best
            self._own(run, "expiry" if expiry_first else "cvv", i, k)
            self._own(run, "cvv" if expiry_first else "expiry", k, j)

    def _phones(self, run: _Run) -> None:
        """US numbers without context: 10 digits not starting with 0 or 1, or 11 starting with 1."""
        if run.amount:
            return
        for i, j in run.segments():
            candidates = [(i, j)]
            if run.size(i, j) > 11:  # a phone number set off by separators among other digits
                bounds = [k for k in range(i, j + 1) if k in (i, j) or run.elements[k].boundary_before]
                candidates += [(a, b) for a in bounds for b in bounds if a < b and (a, b) != (i, j)]
                candidates.sort(key=lambda ab: (-run.size(*ab), ab[0]))
            for a, b in candidates:
                if run.free(a, b):
                    d = run.digits(a, b)
                    if (len(d) == 10 and d[0] not in "01") or (len(d) == 11 and d[0] == "1" and d[1] not in "01"):
                        self._own(run, "phone", a, b)

    def _card_before(self, run: _Run, i: int) -> int | None:
        """How many words before element ``i`` card context is, if any: a card phrase at most 8 words before, or
        "number" / "digits" at most 3 words before after a CVV or expiry phrase at most 8 words before, with a word
        between ("the expiry is 09/27 and the number is ..."; in "the CVV number" the number is the CVV)."""
        words, first = self.words, run.elements[i].first
        reach = _BEFORE["card"]
        best: int | None = None
        for _, b in self.context["card"]:
            if b < first:
                gap = words[first] - words[b + 1]
                if gap <= reach and (best is None or gap < best):
                    best = gap
        for a, b in self.context["number"]:
            if b >= first:
                continue
            gap = words[first] - words[b + 1]
            if gap > _BEFORE["number"] or (best is not None and gap >= best):
                continue
            for kind in ("cvv", "expiry"):
                if any(
                    end < a and words[a] > words[end + 1] and words[first] - words[end + 1] <= reach
                    for _, end in self.context[kind]
                ):
                    best = gap
                    break
        return best

    def _read_as_card(self, run: _Run, i: int, j: int) -> bool:
        """Said after a card phrase (nearer than an SSN's) in a run that goes on before or after: part of the card
        number being read out, whatever its shape."""
        if i == 0 and j == len(run.elements):
            return False
        card = self._card_before(run, 0)
        ssn = self._near("ssn", run, i, j)[0]
        return card is not None and (ssn is None or card < ssn)

    def _nearer_than_card(self, run: _Run, i: int, j: int, card: int) -> bool:
        """Whether the phrase of another number (expiry, CVV, SSN, phone, an order number, an amount) is nearer before
        elements i..j-1 than the card context: the digits are that."""
        for kind in ("expiry", "cvv", "ssn", "phone", "not_card"):
            other = self._near(kind, run, i, j)[0]
            if other is not None and other < card:
                return True
        return False

    def _card_start(self, run: _Run, j: int) -> int | None:
        """How many words before them the card context is of digits that start a run and may be the start of a card
        number (elements 0..j-1: said last, they may go on), or None."""
        card = self._card_before(run, 0)
        if card is None:
            return None
        if self._nearer_than_card(run, 0, j, card):
            return None
        toks, head = self.tokens, run.elements[0]
        digits = run.digits(0, j)
        if digits[0] == "0":  # no card number starts with 0 ("oh" is mostly "oh")
            return None
        if j == 1 and head.spoken and head.first == head.last and toks[head.first].norm == "one":
            return None  # "the blue one", "which one"
        if run.time or (run.amount and self._near("number", run, 0, j)[0] is None):
            return None
        if len(digits) <= 4 and (self._near("shown", run, 0, j)[0] is not None or 1900 <= int(digits) <= 2099):
            return None  # the last four digits of a card may be shown; a year
        if head.first > 0 and toks[head.first - 1].norm in _NOT_CARD_LEAD:
            return None
        return card

    def _trailing(self, run: _Run) -> None:
        """The digits a text ends with may go on in the next interim, or in the next final: a pause or the utterance
        length limit may cut a final in the middle of a number, and finals are never changed once sent."""
        segments = run.segments()
        if not segments or not run.trailing:
            return
        i, j = segments[-1]
        if j != len(run.elements):
            return
        size = run.size(i, j)
        choices: list[tuple[int, int, str]] = []  # distance, tie order, type
        if i == 0:
            card = self._card_start(run, j)
        else:  # right after a card number: more of it, if it can be (a Luhn check passes on a prefix one time in 10)
            k = i
            while k > 0 and run.owner[k - 1] == "card":
                k -= 1
            card = 0 if k < i and run.size(k, j) <= 19 else None
        if card is not None:
            choices.append((card, 4, "card"))
        if self.interim:
            e, c, p = (self._near(kind, run, i, j)[0] for kind in ("expiry", "cvv", "phone"))
            if e is not None and size <= 6:
                choices.append((e, 0, "expiry"))
            if c is not None and size <= 4:
                choices.append((c, 1, "cvv"))
            if p is not None and size >= 6:
                choices.append((p, 5, "phone"))
            if not choices and size >= 12:  # no context: it may be growing into a card number
                choices.append((_FAR, 4, "card"))
        if choices:
            self._own(run, min(choices)[2], i, j)

    def _emit(self, run: _Run) -> None:
        """One hit per maximal range of elements claimed for the same type."""
        owner, elements, toks = run.owner, run.elements, self.tokens
        k, n = 0, len(elements)
        while k < n:
            kind = owner[k]
            if kind is None:
                k += 1
                continue
            m = k
            while m + 1 < n and owner[m + 1] == kind:
                m += 1
            first = elements[k].first
            if k == 0 and kind == "phone":
                first = min(x for x in (run.plus, run.paren, first) if x is not None)
            elif k == 0 and kind == "card" and run.currency is not None:  # "my card number is $4,111"
                first = run.currency
            start = toks[first].start
            if k == 0 and kind == "expiry" and run.start is not None:
                start = run.start
            self.hits.append(Redaction(kind, start, toks[elements[m].last].end))
            k = m + 1
