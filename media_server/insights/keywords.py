"""Keyword spotting on final transcripts: where a tracked phrase was said, with its time span.

Phrases are matched on whole words, case- and punctuation-insensitively ("Acme's" does not match "acme",
"ACME," does). A phrase of several words must be said as consecutive words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.asr.engine import Word

_STRIP = re.compile(r"[^\w']+")


def normalize(word: str) -> str:
    return _STRIP.sub("", word.lower()).strip("'")


@dataclass(frozen=True)
class Hit:
    keyword: str  # as the phrase list spells it
    category: str
    start: float
    end: float


@dataclass(frozen=True)
class _Phrase:
    keyword: str
    category: str
    tokens: tuple[str, ...]


class KeywordSpotter:
    def __init__(self, phrases: Iterable[tuple[str, str]]) -> None:
        """``phrases``: (phrase, category) pairs; blank phrases are ignored, duplicates kept once."""
        seen: dict[tuple[str, ...], _Phrase] = {}
        for phrase, category in phrases:
            tokens = tuple(t for t in (normalize(w) for w in phrase.split()) if t)
            if tokens and tokens not in seen:
                seen[tokens] = _Phrase(phrase.strip(), category, tokens)
        self._phrases = list(seen.values())

    def __bool__(self) -> bool:
        return bool(self._phrases)

    def find(self, text: str, words: Sequence[Word], start: float, end: float) -> list[Hit]:
        """Every occurrence in a final segment, in order of time. Without word timings the segment's span is used."""
        timed = [w for w in words if normalize(w.word)]
        if timed:
            tokens = [normalize(w.word) for w in timed]
        else:
            tokens = [t for t in (normalize(w) for w in text.split()) if t]
        hits: list[tuple[int, Hit]] = []
        for phrase in self._phrases:
            n = len(phrase.tokens)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i : i + n]) == phrase.tokens:
                    span = (timed[i].start, timed[i + n - 1].end) if timed else (start, end)
                    hits.append((i, Hit(phrase.keyword, phrase.category, *span)))
        return [hit for _, hit in sorted(hits, key=lambda pair: (pair[1].start, pair[0]))]
