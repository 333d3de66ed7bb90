"""Trackers: a team's phrases found in final transcripts whatever their inflection ("discounts" is a hit of
"discount", "following up" of "follow up"), and the named entities said (people, organisations, money, dates).

Matching is spaCy's ``PhraseMatcher`` on lemmas, plus a lower-case pass for words the lemmatizer leaves
alone, plus a fuzzy pass for one-word names (``FUZZY_MIN_LENGTH`` letters or more): the recogniser spells
names it does not know approximately ("Zorvex" for "Zorvexa"), so a word at least ``FUZZY_RATIO`` similar
(rapidfuzz's ratio) is a hit too. Hits carry their character span in the segment's text and, through the
words' timings, their time in the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from media_server.teams.config import TeamConfig
from models.asr.engine import Word

FUZZY_MIN_LENGTH = 5
FUZZY_RATIO = 85.0


@dataclass(frozen=True)
class Match:
    kind: str  # "tracker" or "entity"
    name: str  # the tracker's name, or the entity's label (PERSON, ORG, MONEY, DATE)
    category: str  # the tracker's category, or "entity"
    text: str  # as said
    char_start: int
    char_end: int
    start: float  # call time of the words
    end: float


class TrackerMatcher:
    def __init__(self, nlp: Language, config: TeamConfig) -> None:
        self.nlp = nlp
        self.entities = set(config.entities)
        self._trackers = {t.name: t for t in config.trackers}
        self._lemma = PhraseMatcher(nlp.vocab, attr="LEMMA")
        self._lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._names: list[tuple[str, str]] = []  # (tracker, one-word phrase in lower case) matched fuzzily
        for tracker in config.trackers:
            for phrase in tracker.phrases:
                if " " not in phrase.strip() and len(phrase.strip()) >= FUZZY_MIN_LENGTH:
                    self._names.append((tracker.name, phrase.strip().lower()))
            docs = list(nlp.pipe(tracker.phrases))
            self._lemma.add(tracker.name, docs)
            self._lower.add(tracker.name, docs)

    def __bool__(self) -> bool:
        return bool(self._trackers) or bool(self.entities)

    def find(self, text: str, words: Sequence[Word], start: float, end: float) -> list[Match]:
        """Tracker hits then entities of one final segment, each in order of position; blocking (~8 ms)."""
        doc = self.nlp(text)
        spans = _word_spans(text, words)
        out: list[Match] = []
        seen: set[tuple[str, int, int]] = set()
        for matcher in (self._lemma, self._lower):
            for match_id, s, e in matcher(doc):
                name = self.nlp.vocab.strings[match_id]
                span = doc[s:e]
                if (name, span.start_char, span.end_char) in seen:
                    continue
                seen.add((name, span.start_char, span.end_char))
                t0, t1 = _times(spans, span.start_char, span.end_char, start, end)
                out.append(
                    Match(
                        "tracker",
                        name,
                        self._trackers[name].category,
                        span.text,
                        span.start_char,
                        span.end_char,
                        t0,
                        t1,
                    )
                )
        taken = {(m.char_start, m.char_end) for m in out}
        for token in doc:
            if not token.is_alpha or len(token.text) < FUZZY_MIN_LENGTH - 1:
                continue
            first, last = token.idx, token.idx + len(token.text)
            if (first, last) in taken:
                continue
            for name, phrase in self._names:
                if fuzz.ratio(token.lower_, phrase) >= FUZZY_RATIO:
                    t0, t1 = _times(spans, first, last, start, end)
                    category = self._trackers[name].category
                    out.append(Match("tracker", name, category, token.text, first, last, t0, t1))
                    taken.add((first, last))
                    break
        out.sort(key=lambda m: m.char_start)
        ents = []
        for ent in _entities(doc):
            if ent.label_ in self.entities:
                t0, t1 = _times(spans, ent.start_char, ent.end_char, start, end)
                ents.append(Match("entity", ent.label_, "entity", ent.text, ent.start_char, ent.end_char, t0, t1))
        return out + ents


def _entities(doc: Doc) -> list:  # type: ignore[type-arg]
    return list(doc.ents)


def _word_spans(text: str, words: Sequence[Word]) -> list[tuple[int, int, float, float]]:
    """Where each timed word is in the text (the recogniser's words, with their spaces and punctuation)."""
    out = []
    cursor = 0
    lowered = text.lower()
    for w in words:
        token = w.word.strip().lower()
        if not token:
            continue
        at = lowered.find(token, cursor)
        if at < 0:
            continue
        out.append((at, at + len(token), w.start, w.end))
        cursor = at + len(token)
    return out


def _times(
    spans: list[tuple[int, int, float, float]], char_start: int, char_end: int, start: float, end: float
) -> tuple[float, float]:
    hit = [(s, e) for a, b, s, e in spans if a < char_end and b > char_start]
    if not hit:
        return start, end
    return hit[0][0], hit[-1][1]
