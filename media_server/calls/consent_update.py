"""A participant's consent changes after the call started: applied to the live call, or to the stored one.

Live: the call is reconfigured at once (a channel whose voice lost consent stops being transcribed and heard;
one whose voice gained it starts at the current call time); a denial also drops what that channel said so far.
Stored: only a withdrawal means anything (what was not recorded cannot be restored): the participant's
transcript (their channel's, and any mixed channel's, since it holds their voice) and identity are erased.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime

from media_server.auth.keys import ApiKey
from media_server.calls import views
from media_server.calls.consent import ConsentActor
from media_server.calls.lifecycle import CallLifecycle
from media_server.calls.metadata import Consent, Role
from media_server.store.records import ChannelRecord, ConsentChangeRecord, ParticipantRecord
from media_server.store.store import Store
from media_server.teams.config import TeamConfig


class ConsentUpdateError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "invalid" | "stored" | "forbidden"
        self.message = message


@dataclass
class ConsentUpdate:
    live: bool
    participants: list[ParticipantRecord]
    channels: list[ChannelRecord]
    segments_erased: int = 0


async def update_consent(
    registry: CallLifecycle,
    store: Store,
    key: ApiKey,
    call_id: str,
    role: str,
    consent: Consent,
    source: str = "api",
) -> ConsentUpdate:
    """Who may: any key that may stream withdraws consent (denied) on a live call; granting it (or setting it back
    to unknown) takes a role of the team's ``consent_grant`` (admin and ingest by default); a withdrawal after the
    call erases stored data, so it takes a key that may delete (admin, manager). Every change goes into the
    call's consent history with the key that made it."""
    try:
        who = Role(role.strip().lower())
    except ValueError:
        raise ConsentUpdateError("invalid", f"role must be rep or customer, not {role!r}") from None
    actor = ConsentActor(source, key.id, key.label, key.role.value)
    call = registry.live.find(key.team, call_id)
    if call is not None and not call.finished:
        if consent is not Consent.DENIED and call.metadata.participant(who).consent is not consent:
            config = await registry.teams.config(key.team) if registry.teams is not None else TeamConfig()
            if key.role.value not in config.consent_grant:
                raise ConsentUpdateError(
                    "forbidden",
                    f"a {key.role.value} key may not grant consent (the team lets {', '.join(config.consent_grant)} "
                    "grant it: team config consent_grant); it may withdraw it",
                )
        metadata = copy.deepcopy(call.metadata)
        metadata.participant(who).consent = consent
        specs = [c.spec for c in call.channels.values()]
        on_hold = frozenset(i for i, c in call.channels.items() if c.on_hold)
        await call.reconfigure(metadata, specs, on_hold, actor)
        participants = views.participant_records(call.metadata, call.transcribed_roles)
        return ConsentUpdate(True, participants, views.channel_records(call.channels.values()))
    if consent is not Consent.DENIED:
        if await store.get_call(key.team, call_id) is None:
            raise ConsentUpdateError("not_found", "no such call")
        raise ConsentUpdateError(
            "stored", "the call has ended: consent can only be withdrawn (denied) now; what was not kept is gone"
        )
    if not key.can("delete"):
        raise ConsentUpdateError(
            "forbidden",
            f"a {key.role.value} key may not withdraw consent after the call: that erases stored data (admin or "
            "manager)",
        )
    change = ConsentChangeRecord(
        who.value, "", Consent.DENIED.value, source, datetime.now(UTC), key.id, key.label, key.role.value
    )
    erased = await store.withdraw_consent(key.team, call_id, who.value, change)
    if erased is None:
        raise ConsentUpdateError("not_found", "no such call")
    record, count = erased
    return ConsentUpdate(False, record.participants, record.channels, count)
