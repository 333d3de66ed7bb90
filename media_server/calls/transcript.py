"""What a call's recognisers heard, as every later stage sees it: redacted, labelled by speaker, kept as segments.

The ``Transcript`` turns a channel's recogniser results (``models.streaming.SpeechEvent``) into ``Heard``: the text,
words and stable text with the call's redaction applied, and each word's speaker on a diarized (mixed) channel.
Its finals are kept as ``Segment``s, cut where the speaker changes, for the stored call. A word is the recogniser's
``Word`` everywhere; its speaker label travels beside it. Nothing here knows a wire or storage format (``views.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import groupby

from media_server.calls.speakers import ChannelSpeakers, label_of
from media_server.insights.metrics import Said
from media_server.insights.redaction import Redactor, context_after, other_party_context
from models.asr.engine import Word
from models.diarization.online import Segment as DiarizedSegment
from models.streaming import SpeechEvent, SpeechEventType

OTHER_PARTY_CONTEXT_S = 15.0  # the other party's last final is redaction context for this long after it ended


@dataclass(frozen=True)
class Heard:
    """One interim or final result of a channel, redacted: what subscribers see, what the call keeps and what
    the insights hear."""

    channel: int
    speaker: str  # the channel's: "rep", "customer" or "mixed"
    final: bool
    text: str
    stable_text: str
    words: tuple[Word, ...]
    labels: tuple[str, ...]  # each word's speaker on a diarized channel; "" where none is known
    start: float  # the recogniser's span of the utterance
    end: float
    segment: int
    confidence: float
    stability: float
    speech_final: bool

    @property
    def label(self) -> str:
        """The speaker most of its words are labelled with; "" on a channel that is not diarized."""
        return max(set(self.labels), key=self.labels.count) if any(self.labels) else ""

    @property
    def span(self) -> tuple[float, float]:
        """From its first word to its last (the utterance's span without word timings)."""
        return (self.words[0].start, self.words[-1].end) if self.words else (self.start, self.end)

    def said(self) -> Said:
        """A final as the insights take it."""
        return Said(self.label or self.speaker, *self.span, self.text, self.words)


@dataclass(frozen=True)
class Segment:
    """A final, or the part of one that one speaker said, as the call keeps it until it is stored."""

    channel: int
    speaker: str  # its words' diarized label, else the channel's speaker
    text: str
    start: float
    end: float
    confidence: float
    words: tuple[Word, ...] = ()
    labels: tuple[str, ...] = ()  # each word's diarized speaker; "" where none is known


@dataclass
class _Line:
    """One channel's transcript."""

    segments: list[Segment]
    said_before: str = ""  # its last finals, unredacted, in memory only: context for redaction
    last_said: tuple[float, str] | None = None  # (end, text) of its last final, unredacted: the others' context


class Transcript:
    def __init__(self, redactor: Redactor | None) -> None:
        self.redactor = redactor
        self._lines: dict[int, _Line] = {}

    def _line(self, channel: int) -> _Line:
        return self._lines.setdefault(channel, _Line([]))

    async def heard(
        self, channel: int, speaker: str, event: SpeechEvent, speakers: ChannelSpeakers | None = None
    ) -> Heard:
        """An interim or final result (``event.type`` INTERIM or FINAL); a final with text is kept."""
        final = event.type is SpeechEventType.FINAL
        text, words, stable = self._redacted(channel, event, final)
        labels = [""] * len(words)
        if final and speakers is not None and words:
            labels = await speakers.labels([(w.start, w.end) for w in words])
        heard = Heard(
            channel,
            speaker,
            final,
            text,
            stable,
            tuple(words),
            tuple(labels),
            event.start,
            event.end,
            event.segment,
            event.confidence,
            event.stability,
            event.speech_final,
        )
        if final and text:
            kept = Segment(channel, speaker, text, *heard.span, round(event.confidence, 4), heard.words, heard.labels)
            self._line(channel).segments += _by_speaker(kept) if heard.label else [kept]
        return heard

    def last_end(self, channel: int) -> float | None:
        """Where the channel's last kept final ended (an utterance-end event's last word)."""
        segments = self._line(channel).segments
        return segments[-1].end if segments else None

    def segments(self, channel: int | None = None) -> list[Segment]:
        """One channel's segments in order, or every channel's by start time."""
        if channel is not None:
            return list(self._line(channel).segments)
        every = (s for line in self._lines.values() for s in line.segments)
        return sorted(every, key=lambda s: (s.start, s.channel))

    def withdraw(self, channel: int) -> None:
        """A voice on the channel denied consent: what it said so far is not kept."""
        self._line(channel).segments.clear()

    def relabel(self, channel: int, refined: Sequence[DiarizedSegment]) -> None:
        """A mixed channel's segments with the speakers diarization settled on at the end of the call."""
        line = self._line(channel)
        out: list[Segment] = []
        for s in line.segments:
            labels = tuple(label_of(refined, w.start, w.end) for w in s.words)
            out += _by_speaker(replace(s, labels=labels)) if s.words else [s]
        line.segments = _merge_runs(out)

    def talk_time(self) -> dict[str, float]:
        """Seconds each speaker has talked so far (final segments)."""
        out: dict[str, float] = {}
        for line in self._lines.values():
            for s in line.segments:
                out[s.speaker] = out.get(s.speaker, 0.0) + max(0.0, s.end - s.start)
        return {k: round(v, 3) for k, v in out.items()}

    def _redacted(self, channel: int, event: SpeechEvent, final: bool) -> tuple[str, list[Word], str]:
        """The text, words and stable text of a result with the call's redaction applied: what every subscriber
        sees and the store keeps. What the channel said in its last finals is context (a card number read out with
        a pause, or past the utterance length limit, ends up in two finals; "let me get my card" may be a final
        of its own), kept unredacted so that a number's digits on both sides of the cut are one; so is the other
        party's last turn of the last 15 s, without its numbers (the rep asks for the card number)."""
        words = list(event.words)
        if self.redactor is None or not event.text:
            return event.text, words, event.stable_text
        line = self._line(channel)
        interim, previous = not final, line.said_before
        if final:
            line.said_before = context_after(previous, event.text)
            line.last_said = (event.end, event.text)
        # The other party's last turn, if recent, is context too ("Can I have the card number?"), without its digits.
        heard = [other.last_said for i, other in self._lines.items() if i != channel and other.last_said is not None]
        latest = max(heard, default=None)
        if latest is not None and event.start - latest[0] <= OTHER_PARTY_CONTEXT_S:
            previous = " ".join(part for part in (other_party_context(latest[1]), previous) if part)
        if words:
            redacted = self.redactor.redact_words(words, interim=interim, previous=previous)
            if redacted.redactions:
                words, text = redacted.words, redacted.text
            else:
                text = event.text
        else:
            text = self.redactor.redact_text(event.text, interim=interim, previous=previous).text
        stable = self.redactor.redact_text(event.stable_text, interim=True, previous=previous).text
        return text, words, stable


def _by_speaker(segment: Segment) -> list[Segment]:
    """A final cut where its words change speaker (turns inside one utterance are common: the recogniser ends an
    utterance only at a pause); each piece is kept with its speaker's label (the segment's speaker where a word
    has none). One speaker: the segment as the recogniser gave its text (punctuation and spacing)."""
    pieces: list[Segment] = []
    pairs = zip(segment.labels, segment.words, strict=True)
    for label, run in ((label, [w for _, w in run]) for label, run in groupby(pairs, lambda p: p[0])):
        text = " ".join(w.word.strip() for w in run)
        pieces.append(
            replace(
                segment,
                speaker=label or segment.speaker,
                text=text,
                start=run[0].start,
                end=run[-1].end,
                words=tuple(run),
                labels=(label,) * len(run),
            )
        )
    if len(pieces) == 1:
        pieces[0] = replace(pieces[0], text=segment.text)
    return pieces or [segment]


def _merge_runs(segments: list[Segment]) -> list[Segment]:
    """Pieces of one utterance that refinement gave the same speaker again are one segment."""
    out: list[Segment] = []
    for s in segments:
        last = out[-1] if out else None
        if last is not None and last.speaker == s.speaker and last.channel == s.channel and s.start - last.end < 0.05:
            words, labels = (*last.words, *s.words), (*last.labels, *s.labels)
            out[-1] = replace(last, text=f"{last.text} {s.text}", end=s.end, words=words, labels=labels)
        else:
            out.append(s)
    return out
