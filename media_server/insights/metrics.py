"""Call metrics from the final segments of a call, as the sales-analytics products define them
(README, "Conversation intelligence").

Turns: the segments in order of start time, consecutive ones of the same speaker merged. A rep's
*monologue* goes on while the customer only interjects (a segment shorter than ``interjection_s``); a
customer's *story* likewise. *Interactivity* is speaker switches per minute of call; *patience* the mean
pause between the customer's last word and the rep's answer (overlaps count as no pause); a *question* is
a segment sentence ending in "?" (where the recogniser punctuates: :func:`questions_in`); an *interruption* a
turn that starts more than ``overlap_s`` before the other speaker's turn ended.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.asr.engine import Word

REP, CUSTOMER = "rep", "customer"
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Said:
    """One final segment: who, when (call seconds), what (and its words' timings, where the recogniser gave them)."""

    speaker: str
    start: float
    end: float
    text: str
    words: Sequence[Word] = ()


@dataclass
class CallMetrics:
    talk_time: dict[str, float] = field(default_factory=dict)
    talk_ratio: float | None = None  # the rep's share of rep + customer talk time
    longest_monologue: float = 0.0  # seconds, the rep
    longest_customer_story: float = 0.0
    interactivity: float = 0.0  # speaker switches per minute
    patience: float | None = None  # mean seconds before the rep answers
    questions: dict[str, int] = field(default_factory=dict)
    words_per_minute: dict[str, float] = field(default_factory=dict)
    interruptions: dict[str, int] = field(default_factory=dict)  # by the speaker who cut in
    filler_rate: dict[str, float] = field(default_factory=dict)  # share of words that are fillers
    tracker_hits: dict[str, int] = field(default_factory=dict)
    disposition: str = ""
    cues: dict[str, int] = field(default_factory=dict)  # coaching cues given during the call, by kind

    def to_json(self) -> dict[str, Any]:
        return {
            "talkTime": self.talk_time,
            "talkRatio": self.talk_ratio,
            "longestMonologue": self.longest_monologue,
            "longestCustomerStory": self.longest_customer_story,
            "interactivity": self.interactivity,
            "patience": self.patience,
            "questions": self.questions,
            "wordsPerMinute": self.words_per_minute,
            "interruptions": self.interruptions,
            "fillerRate": self.filler_rate,
            "trackerHits": self.tracker_hits,
            "disposition": self.disposition,
            "cues": self.cues,
        }


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def count_fillers(text: str, fillers: Iterable[str]) -> int:
    """Filler words and phrases ("um", "you know") said in ``text``, each occurrence once."""
    words = words_of(text)
    count = 0
    for filler in fillers:
        phrase = words_of(filler)
        n = len(phrase)
        if n:
            count += sum(1 for i in range(len(words) - n + 1) if words[i : i + n] == phrase)
    return count


_AUX = r"(?:is|are|was|were|do|does|did|can|could|would|will|should|shall|may|might|have|has|had)"
_SUBJECT = r"(?:you|we|i|they|he|she|it|there|that|this|your|our|their)"
_QUESTION = re.compile(
    rf"\b(?:(?:how|what|why|when|where|who|which|whose)\s+{_AUX}\b|{_AUX}n?'?t?\s+{_SUBJECT}\b)", re.IGNORECASE
)
_DOES = re.compile(r"\b(?:[Dd]oes|[Dd]id)\s+(?:[A-Z]\w+|the|that|this)\b")  # "does Tuesday work for you"


_PUNCTUATED = re.compile(r"[.!?;:]|,(?!\d)")  # (not the comma of "4,111")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
# "Had he married ..., he might": an inverted condition, not a question (as "were it", "should you need").
_CONDITION = re.compile(r"(?:had|were|should)\b", re.IGNORECASE)


def punctuated(text: str) -> bool:
    """Whether a recogniser punctuated this text (a full stop, comma, question mark...)."""
    return bool(_PUNCTUATED.search(text))


def questions_in(text: str, punctuates: bool | None = None) -> int:
    """Questions in a segment. Where the recogniser punctuates (``punctuates``: it did in this call; None: judged
    from ``text`` alone), its sentences that end in a question mark, those ending in a full stop that open as a
    question does ("Does Tuesday work for you.": Whisper leaves out a question mark now and then), and those it left
    unfinished (a final cut at a pause) with a question clause in them ("..., by email does Tuesday work for you"),
    unless they open as an inverted condition ("Had he married a more amiable woman, he might...": none, also
    unfinished). Where it leaves punctuation out, the clauses that open like a question ("how is", "can you", "does
    that")."""
    if punctuates is None:
        punctuates = punctuated(text)
    if not punctuates:
        return len(_QUESTION.findall(text)) + len(_DOES.findall(text))
    count = 0
    for sentence in _SENTENCE.findall(text):
        said = sentence.strip()
        if not said or (_CONDITION.match(said) and not said.endswith("?")):
            continue
        if said.endswith("?"):
            count += 1
        elif said[-1] in ".!":  # a statement, unless it opens as a question
            count += bool(_QUESTION.match(said) or _DOES.match(said))
        else:  # left unfinished (a final cut at a pause): "..., by email does Tuesday work for you"
            count += bool(_QUESTION.search(said) or _DOES.search(said))
    return count


def longest_stretch(segments: Sequence[Said], speaker: str, interjection_s: float = 1.0) -> float:
    """The longest time ``speaker`` held the floor, others' interjections shorter than ``interjection_s`` allowed."""
    best, start, end = 0.0, None, 0.0
    for s in sorted(segments, key=lambda s: s.start):
        if s.speaker == speaker:
            if start is None:
                start = s.start
            end = max(end, s.end)
            best = max(best, end - start)
        elif s.end - s.start >= interjection_s:
            start = None
    return round(best, 3)


def compute(
    segments: Sequence[Said],
    duration: float,
    fillers: Iterable[str] = (),
    tracker_hits: dict[str, int] | None = None,
    overlap_s: float = 0.3,
    interjection_s: float = 1.0,
    customer_heard: bool = True,
) -> CallMetrics:
    """``customer_heard``: the customer had a transcribed channel of their own; without it no talk ratio."""
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    m = CallMetrics(tracker_hits=dict(tracker_hits or {}))
    fillers = list(fillers)
    words: dict[str, int] = {}
    filler_words: dict[str, int] = {}
    punctuates = any(punctuated(s.text) for s in ordered)  # (the call's recogniser: one final may lack it)
    for s in ordered:
        m.talk_time[s.speaker] = m.talk_time.get(s.speaker, 0.0) + max(0.0, s.end - s.start)
        m.questions[s.speaker] = m.questions.get(s.speaker, 0) + questions_in(s.text, punctuates)
        words[s.speaker] = words.get(s.speaker, 0) + len(words_of(s.text))
        filler_words[s.speaker] = filler_words.get(s.speaker, 0) + count_fillers(s.text, fillers)
    spoken = m.talk_time.get(REP, 0.0) + m.talk_time.get(CUSTOMER, 0.0)
    if spoken > 0 and REP in m.talk_time and customer_heard:
        m.talk_ratio = round(m.talk_time.get(REP, 0.0) / spoken, 3)
    for speaker, talk in m.talk_time.items():
        m.words_per_minute[speaker] = round(60 * words[speaker] / talk, 1) if talk > 0 else 0.0
        m.filler_rate[speaker] = round(filler_words[speaker] / words[speaker], 3) if words[speaker] else 0.0
    m.talk_time = {k: round(v, 3) for k, v in m.talk_time.items()}
    m.longest_monologue = longest_stretch(ordered, REP, interjection_s)
    m.longest_customer_story = longest_stretch(ordered, CUSTOMER, interjection_s)

    turns: list[Said] = []  # consecutive segments of one speaker merged
    for s in ordered:
        if turns and turns[-1].speaker == s.speaker:
            last = turns[-1]
            turns[-1] = Said(last.speaker, last.start, max(last.end, s.end), last.text + " " + s.text)
        else:
            turns.append(s)
    switches = len(turns) - 1 if turns else 0
    m.interactivity = round(switches / (duration / 60), 2) if duration > 0 else 0.0
    pauses = []
    for before, after in itertools.pairwise(turns):
        if after.start < before.end - overlap_s:
            m.interruptions[after.speaker] = m.interruptions.get(after.speaker, 0) + 1
        if before.speaker == CUSTOMER and after.speaker == REP:
            pauses.append(max(0.0, after.start - before.end))
    m.patience = round(sum(pauses) / len(pauses), 3) if pauses else None
    return m
