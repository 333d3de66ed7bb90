"""Consent rules: who may be transcribed, decided before any audio leaves the call."""

from __future__ import annotations

from collections.abc import Iterable

from media_server.calls.metadata import Consent, ParticipantInfo
from media_server.config import ConsentPolicy


def may_transcribe(consent: Consent, policy: ConsentPolicy) -> bool:
    """All-party (default): only ``granted`` counts. One-party: everyone but an explicit ``denied``."""
    if policy is ConsentPolicy.ALL_PARTY:
        return consent is Consent.GRANTED
    return consent is not Consent.DENIED


def may_transcribe_all(participants: Iterable[ParticipantInfo], policy: ConsentPolicy) -> bool:
    """A channel that carries several voices (a mixed channel) needs every one of them."""
    return all(may_transcribe(p.consent, policy) for p in participants)
