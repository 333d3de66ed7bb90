"""Consent rules: who may be transcribed, decided before any audio leaves the call, and whose identity is kept."""

from __future__ import annotations

from collections.abc import Iterable

from media_server.calls.metadata import Consent, ParticipantInfo, Role
from media_server.config import ConsentPolicy


def may_transcribe(consent: Consent, policy: ConsentPolicy) -> bool:
    """All-party (default): only ``granted`` counts. One-party: everyone but an explicit ``denied``."""
    if policy is ConsentPolicy.ALL_PARTY:
        return consent is Consent.GRANTED
    return consent is not Consent.DENIED


def may_transcribe_all(participants: Iterable[ParticipantInfo], policy: ConsentPolicy) -> bool:
    """A channel that carries several voices (a mixed channel) needs every one of them."""
    return all(may_transcribe(p.consent, policy) for p in participants)


def identity_kept(p: ParticipantInfo, transcribed: bool) -> ParticipantInfo:
    """Identity is kept for the rep and for customers who may be transcribed; otherwise only the role and consent."""
    if p.role is Role.REP or transcribed:
        return p
    return ParticipantInfo(p.role, consent=p.consent)
