"""What a live call's words become while it runs: tracker hits, entities and coaching cues, then metrics.

One ``CallInsights`` per call, built from its team's configuration when the call opens. The call hands it
each final segment after publishing it; trackers run on the spaCy thread, cues are judged at once, and a
clock (``tick``, once a second) judges silence and unasked questions. At the end, ``metrics`` describes
the whole call.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from media_server.insights.cues import Cue, CueEngine
from media_server.insights.keywords import KeywordSpotter
from media_server.insights.metrics import CallMetrics, Said, compute
from media_server.insights.nlp import Nlp
from media_server.insights.trackers import Match, TrackerMatcher
from media_server.teams.config import TeamConfig


def matcher_for(nlp: Nlp, config: TeamConfig) -> TrackerMatcher:
    """One matcher per team configuration, shared by its calls (building one runs spaCy on every phrase)."""
    return _matcher(nlp, config.model_dump_json())


@lru_cache(maxsize=64)
def _matcher(nlp: Nlp, config_json: str) -> TrackerMatcher:
    return TrackerMatcher(nlp.pipeline, TeamConfig.model_validate_json(config_json))


class CallInsights:
    def __init__(self, config: TeamConfig, nlp: Nlp | None, keyterms: Sequence[str] = ()) -> None:
        """``keyterms``: the call's and the server's, tracked as hits of category "keyterm" (the team's
        trackers are matched by spaCy; a keyterm that is also a tracker phrase is left to the tracker)."""
        self.config = config
        self.nlp = nlp
        self.matcher = matcher_for(nlp, config) if nlp is not None else None
        self.set_keyterms(keyterms)
        self.cues = CueEngine(config)
        self.said: list[Said] = []
        self.hits: dict[str, int] = {}
        self.cue_counts: dict[str, int] = {}  # cues the call was given, by kind
        self.disposition = ""

    def set_keyterms(self, keyterms: Sequence[str]) -> None:
        tracked = {p.lower() for t in self.config.trackers for p in t.phrases} if self.matcher else set()
        self.keyterms = KeywordSpotter((k, "keyterm") for k in keyterms if k.lower() not in tracked)

    async def final(self, said: Said) -> tuple[list[Match], list[Cue]]:
        """The tracker hits and entities of a final segment, and the cues it triggers, in that order."""
        self.said.append(said)
        matches: list[Match] = []
        if self.matcher and self.nlp is not None:
            matcher = self.matcher
            matches = await self.nlp.run(lambda: matcher.find(said.text, said.words, said.start, said.end))
        if self.keyterms:
            for hit in self.keyterms.find(said.text, said.words, said.start, said.end):
                matches.append(Match("tracker", hit.keyword, hit.category, hit.keyword, 0, 0, hit.start, hit.end))
        cues = self.cues.said(said)
        for m in matches:
            if m.kind == "tracker":
                self.hits[m.name] = self.hits.get(m.name, 0) + 1
                cues += self.cues.tracked(m.name, m.category, said.speaker, m.start)
        return matches, self._counted(cues)

    def tick(self, now: float, speaking: bool) -> list[Cue]:
        return self._counted(self.cues.tick(now, speaking))

    def _counted(self, cues: list[Cue]) -> list[Cue]:
        for cue in cues:
            self.cue_counts[cue.kind] = self.cue_counts.get(cue.kind, 0) + 1
        return cues

    def metrics(self, duration: float) -> CallMetrics:
        t = self.config.thresholds
        m = compute(
            self.said,
            duration,
            self.config.fillers,
            self.hits,
            overlap_s=t.interruption_overlap_s,
            customer_heard=self.cues.customer_heard,
        )
        m.disposition = self.disposition or self.config.disposition(self.hits)
        m.cues = dict(self.cue_counts)
        return m
