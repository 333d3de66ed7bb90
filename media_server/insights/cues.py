"""Live coaching cues for the rep, from what the call's channels say and when.

A ``CueEngine`` is fed final segments (``said``), tracker hits (``tracked``) and the passing of call time
(``tick``), and returns the cues to show. Thresholds come from the team's configuration; every cue is
debounced: the same kind (for competitors, the same competitor) is not repeated within ``cooldown_s``
of call time, and a condition must clear before it can fire again (a long monologue fires once).
Definitions follow the sales-analytics vendors' published ones (README, "Conversation intelligence").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from media_server.insights.metrics import CUSTOMER, REP, Said, count_fillers, punctuated, questions_in, words_of
from media_server.teams.config import TeamConfig


@dataclass(frozen=True)
class Cue:
    kind: str  # talk_ratio, monologue, pace, silence, interruption, no_question, competitor, filler
    message: str
    time: float  # call time it refers to
    speaker: str = REP
    detail: dict[str, str] = field(default_factory=dict)


class CueEngine:
    def __init__(self, config: TeamConfig) -> None:
        self.config = config
        self.t = config.thresholds
        self._segments: deque[Said] = deque()  # within the talk-ratio window
        self._last_fired: dict[str, float] = {}
        self._armed: dict[str, bool] = {}  # a condition must clear before its cue fires again
        self._monologue_start: float | None = None
        self._last_speech_end = 0.0
        self._last_question = 0.0
        self._punctuates = False  # the recogniser punctuated a final of this call: its "?" are the questions
        self._rep_recent: deque[tuple[float, int]] = deque(maxlen=4)  # (duration, words) of the rep's last finals
        self._rep_words: deque[tuple[int, int]] = deque(maxlen=50)  # (words, fillers) of the rep's last finals
        self._interruptions: set[float] = set()  # the rep segments (by start) already counted
        # A talk ratio means something only when the customer's words are heard too (own channel, consent).
        self.customer_heard = True

    # -- inputs --------------------------------------------------------------------------------------

    def said(self, s: Said) -> list[Cue]:
        """A final segment; returns the cues it triggers."""
        out: list[Cue] = []
        self._last_speech_end = max(self._last_speech_end, s.end)
        self._segments.append(s)
        while self._segments and self._segments[0].end < s.end - self.t.talk_ratio_window_s:
            self._segments.popleft()
        out += self._interruption(s)
        self._punctuates = self._punctuates or punctuated(s.text)
        if s.speaker == REP:
            if questions_in(s.text, self._punctuates):
                self._last_question = s.end
            if self._monologue_start is None:
                self._monologue_start = s.start
            out += self._monologue(s.end)
            out += self._talk_ratio(s.end)
            out += self._pace(s)
            out += self._fillers(s)
        elif s.speaker == CUSTOMER:
            if s.end - s.start >= 1.0:  # more than an interjection: the rep's monologue is over
                self._monologue_start = None
                self._armed["monologue"] = True
            out += self._talk_ratio(s.end)
        return out

    def tracked(self, name: str, category: str, speaker: str, time: float) -> list[Cue]:
        """A tracker hit: a competitor mentioned shows its battlecard."""
        if category != "competitors":
            return []
        key = f"competitor:{name}"
        if not self._ready(key, time, needs_arming=False):
            return []
        card = self.config.battlecard(name)
        who = "The customer" if speaker == CUSTOMER else "You"
        message = f"{who} mentioned {name}." + (f" {card}" if card else "")
        return [self._fire(key, Cue("competitor", message, time, speaker, {"competitor": name, "battlecard": card}))]

    def tick(self, now: float, speaking: bool) -> list[Cue]:
        """Call time passes (about once a second): silence and questions are judged on time alone."""
        out: list[Cue] = []
        silent_for = now - self._last_speech_end
        if not speaking and silent_for >= self.t.silence_s and self._ready("silence", now):
            out.append(self._fire("silence", Cue("silence", f"Nobody has spoken for {silent_for:.0f} s.", now)))
        if speaking:
            self._armed["silence"] = True
        if (
            now - self._last_question >= self.t.no_question_s
            and self._last_speech_end > 0
            and self._ready("no_question", now, needs_arming=False)
        ):
            minutes = (now - self._last_question) / 60
            message = f"No question asked in {minutes:.0f} min: ask one and listen."
            out.append(self._fire("no_question", Cue("no_question", message, now)))
            self._last_question = now  # the next reminder counts from this one
        return out

    # -- the rules -----------------------------------------------------------------------------------

    def _talk_ratio(self, now: float) -> list[Cue]:
        if not self.customer_heard:
            return []
        rep = sum(s.end - s.start for s in self._segments if s.speaker == REP)
        customer = sum(s.end - s.start for s in self._segments if s.speaker == CUSTOMER)
        total = rep + customer
        if total < self.t.talk_ratio_min_talk_s:
            return []
        ratio = rep / total
        if ratio <= self.t.talk_ratio:
            self._armed["talk_ratio"] = True
            return []
        if not self._ready("talk_ratio", now):
            return []
        span = min(self.t.talk_ratio_window_s, now)
        window = f"{span / 60:.0f} min" if span >= 90 else f"{span:.0f} s"
        message = f"You have talked {ratio:.0%} of the last {window}: ask a question and listen."
        return [self._fire("talk_ratio", Cue("talk_ratio", message, now, detail={"ratio": f"{ratio:.3f}"}))]

    def _monologue(self, now: float) -> list[Cue]:
        if self._monologue_start is None:
            return []
        length = now - self._monologue_start
        if length < self.t.monologue_s or not self._ready("monologue", now):
            return []
        message = f"You have been talking for {length:.0f} s without a break: check in with the customer."
        return [self._fire("monologue", Cue("monologue", message, now, detail={"seconds": f"{length:.0f}"}))]

    def _pace(self, s: Said) -> list[Cue]:
        self._rep_recent.append((max(0.0, s.end - s.start), len(words_of(s.text))))
        seconds = sum(d for d, _ in self._rep_recent)
        words = sum(w for _, w in self._rep_recent)
        if words < 20 or seconds <= 0:
            return []
        wpm = 60 * words / seconds
        if wpm <= self.t.words_per_minute:
            self._armed["pace"] = True
            return []
        if not self._ready("pace", s.end):
            return []
        message = f"You are speaking fast ({wpm:.0f} words a minute): slow down."
        return [self._fire("pace", Cue("pace", message, s.end, detail={"wpm": f"{wpm:.0f}"}))]

    def _fillers(self, s: Said) -> list[Cue]:
        self._rep_words.append((len(words_of(s.text)), count_fillers(s.text, self.config.fillers)))
        words = sum(w for w, _ in self._rep_words)
        fillers = sum(f for _, f in self._rep_words)
        if words < self.t.filler_min_words:
            return []
        rate = fillers / words
        if rate < self.t.filler_rate:
            self._armed["filler"] = True
            return []
        if not self._ready("filler", s.end):
            return []
        message = f"Filler words are {rate:.0%} of what you say: pause instead."
        return [self._fire("filler", Cue("filler", message, s.end, detail={"rate": f"{rate:.3f}"}))]

    def _interruption(self, s: Said) -> list[Cue]:
        """The rep started talking while the customer was still speaking (finals of the two channels may
        arrive in either order, so a new segment is checked against the other side's recent ones)."""
        t = self.t.interruption_overlap_s
        for x in reversed(self._segments):
            if x is s or x.speaker == s.speaker:
                continue
            rep, customer = (s, x) if s.speaker == REP else (x, s)
            if customer.start < rep.start < customer.end - t and rep.start not in self._interruptions:
                self._interruptions.add(rep.start)
                if not self._ready("interruption", rep.start, needs_arming=False):
                    return []
                overlap = customer.end - rep.start
                message = "You talked over the customer: let them finish."
                cue = Cue("interruption", message, rep.start, detail={"overlap": f"{overlap:.1f}"})
                return [self._fire("interruption", cue)]
        return []

    # -- debouncing ----------------------------------------------------------------------------------

    def _ready(self, key: str, now: float, needs_arming: bool = True) -> bool:
        if needs_arming and not self._armed.get(key, True):
            return False
        last = self._last_fired.get(key)
        return last is None or now - last >= self.t.cooldown_s

    def _fire(self, key: str, cue: Cue) -> Cue:
        self._last_fired[key] = cue.time
        self._armed[key] = False
        return cue
