"""Consent rules: who may be transcribed, decided before any audio leaves the call, and whose identity is kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, Role
from media_server.config import ConsentPolicy

# The voices a channel carries, by its speaker.
SPEAKER_ROLES: dict[str, tuple[Role, ...]] = {
    "rep": (Role.REP,),
    "customer": (Role.CUSTOMER,),
    "mixed": (Role.REP, Role.CUSTOMER),
}


def may_transcribe(consent: Consent, policy: ConsentPolicy) -> bool:
    """All-party (default): only ``granted`` counts. One-party: everyone but an explicit ``denied``."""
    if policy is ConsentPolicy.ALL_PARTY:
        return consent is Consent.GRANTED
    return consent is not Consent.DENIED


def may_transcribe_all(participants: Iterable[ParticipantInfo], policy: ConsentPolicy) -> bool:
    """A channel that carries several voices (a mixed channel) needs every one of them."""
    return all(may_transcribe(p.consent, policy) for p in participants)


def voices_on(metadata: CallMetadata, speaker: str) -> list[ParticipantInfo]:
    """The participants a channel of this speaker ("rep", "customer" or "mixed") carries."""
    return [metadata.participant(r) for r in SPEAKER_ROLES[speaker]]


def transcribed_roles(metadata: CallMetadata, policy: ConsentPolicy) -> set[Role]:
    return {p.role for p in metadata.participants if may_transcribe(p.consent, policy)}


def identity_kept(p: ParticipantInfo, transcribed: bool) -> ParticipantInfo:
    """Identity is kept for the rep and for customers who may be transcribed; otherwise only the role and consent."""
    if p.role is Role.REP or transcribed:
        return p
    return ParticipantInfo(p.role, consent=p.consent)


# Keys the server writes itself, about the connection rather than a person (AudioSocket's peer address, the
# SIPREC recording session's id): kept whatever the consent.
SERVER_KEYS = frozenset({"peer", "recordingSessionId"})


def metadata_kept(metadata: CallMetadata, transcribed: Iterable[Role]) -> dict[str, str]:
    """Metadata keys the server does not know (a caller's name, a CRM id: anyone's personal data) are kept, shown
    and stored only while every participant may be transcribed (has consented, under the policy)."""
    roles = set(transcribed)
    if all(p.role in roles for p in metadata.participants):
        return dict(metadata.extra)
    return {k: v for k, v in metadata.extra.items() if k in SERVER_KEYS}


@dataclass(frozen=True)
class ConsentActor:
    """Who changes a participant's consent (kept in the call's consent history). No key: the call's platform, in
    the call's metadata."""

    source: str  # metadata | api | grpc
    key_id: str = ""
    label: str = ""
    role: str = ""
