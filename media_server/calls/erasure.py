"""Erasure of a person from the live calls of this server: their consent becomes ``denied`` (their channel stops
being transcribed and heard, what it said so far is dropped), their identity and the call's free-form metadata are
wiped, all as one consent change by the erasure (``call_updated`` tells subscribers). Stored calls are the store's
(``Store.erase_person``)."""

from __future__ import annotations

import copy

from media_server.calls.consent import ConsentActor
from media_server.calls.lifecycle import CallLifecycle
from media_server.calls.metadata import Consent
from media_server.store.people import Person


async def erase_live(registry: CallLifecycle, team: str, person: Person, actor: ConsentActor) -> list[str]:
    """The live calls of ``team`` on this server where ``person`` is a participant, erased; their ids."""
    erased: list[str] = []
    for call in list(registry.live.values()):
        if call.team != team or call.finished:
            continue
        found = [
            p.role for p in call.metadata.participants if person.matches(p.role.value, p.id, p.name, p.phone, p.email)
        ]
        if not found:
            continue
        metadata = copy.deepcopy(call.metadata)
        for role in found:
            participant = metadata.participant(role)
            participant.consent = Consent.DENIED
            participant.id = participant.name = participant.phone = participant.email = ""
        metadata.extra = {}
        specs = [c.spec for c in call.channels.values()]
        on_hold = frozenset(i for i, c in call.channels.items() if c.on_hold)
        await call.reconfigure(metadata, specs, on_hold, actor)
        erased.append(call.id)
    return erased
