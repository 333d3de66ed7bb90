"""A call's recognition settings: the server's, with what the team and the call asked for."""

from __future__ import annotations

from dataclasses import replace

from media_server.calls.metadata import RecognitionOptions
from media_server.teams.config import TeamConfig
from models.streaming import StreamingConfig


def streaming_config(
    base: StreamingConfig, options: RecognitionOptions, team: TeamConfig, team_name: str = "", batch: bool = False
) -> StreamingConfig:
    """The server's streaming settings with the call's overrides (endpointing, utterance end, interim results);
    the server's, the team's and the call's keyterms are favoured. The team is the call's fairness key: the
    recogniser shares its device between teams, so that one team's burst cannot hold back another's finals;
    ``batch``: audio fed faster than real time (a whole recording), decoded when no live call's work waits."""
    return replace(
        base,
        endpointing_ms=options.endpointing_ms or base.endpointing_ms,
        utterance_end_ms=base.utterance_end_ms if options.utterance_end_ms is None else options.utterance_end_ms,
        interim_results=base.interim_results if options.interim_results is None else options.interim_results,
        hotwords=tuple(dict.fromkeys((*base.hotwords, *team.keyterms(), *options.keyterms))),
        fairness_key=team_name,
        batch=batch,
    )


def keyterms(base: StreamingConfig, options: RecognitionOptions) -> tuple[str, ...]:
    """The server's and the call's keyterms, tracked as hits (the team's tracker phrases are the trackers' own)."""
    return tuple(dict.fromkeys((*base.hotwords, *options.keyterms)))
