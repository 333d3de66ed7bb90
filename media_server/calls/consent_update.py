"""A participant's consent changes after the call started: applied to the live call, or to the stored one.

Live: the call is reconfigured at once (a channel whose voice lost consent stops being transcribed and heard;
one whose voice gained it starts at the current call time); a denial also drops what that channel said so far.
Stored: only a withdrawal means anything (what was not recorded cannot be restored): the participant's
transcript (their channel's, and any mixed channel's, since it holds their voice) and identity are erased.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from media_server.auth.keys import ApiKey
from media_server.calls import views
from media_server.calls.lifecycle import CallLifecycle
from media_server.calls.metadata import Consent, Role
from media_server.store.records import ChannelRecord, ParticipantRecord
from media_server.store.store import Store


class ConsentUpdateError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "invalid" | "stored"
        self.message = message


@dataclass
class ConsentUpdate:
    live: bool
    participants: list[ParticipantRecord]
    channels: list[ChannelRecord]
    segments_erased: int = 0


async def update_consent(
    registry: CallLifecycle, store: Store, key: ApiKey, call_id: str, role: str, consent: Consent
) -> ConsentUpdate:
    try:
        who = Role(role.strip().lower())
    except ValueError:
        raise ConsentUpdateError("invalid", f"role must be rep or customer, not {role!r}") from None
    call = registry.live.find(key.team, call_id)
    if call is not None and not call.finished:
        metadata = copy.deepcopy(call.metadata)
        metadata.participant(who).consent = consent
        specs = [c.spec for c in call.channels.values()]
        on_hold = frozenset(i for i, c in call.channels.items() if c.on_hold)
        await call.reconfigure(metadata, specs, on_hold)
        participants = views.participant_records(call.metadata, call.transcribed_roles)
        return ConsentUpdate(True, participants, views.channel_records(call.channels.values()))
    if consent is not Consent.DENIED:
        if await store.get_call(key.team, call_id) is None:
            raise ConsentUpdateError("not_found", "no such call")
        raise ConsentUpdateError(
            "stored", "the call has ended: consent can only be withdrawn (denied) now; what was not kept is gone"
        )
    erased = await store.withdraw_consent(key.team, call_id, who.value)
    if erased is None:
        raise ConsentUpdateError("not_found", "no such call")
    record, count = erased
    return ConsentUpdate(False, record.participants, record.channels, count)
