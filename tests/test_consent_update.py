"""Who may change a participant's consent, and what is kept of it: the team's consent authority, the consent
history on the stored call, and free-form metadata kept only while everyone consented. The server's services in
this process over a real SQLite store (``tests/local_services.py``: no speech model; where a channel is
transcribed, the fake engine and VAD of ``tests/fakes.py``, which no audio reaches here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_server.auth.keys import ApiKey
from media_server.auth.keys import Role as KeyRole
from media_server.calls.call import ChannelSpec
from media_server.calls.consent_update import ConsentUpdateError, update_consent
from media_server.calls.lifecycle import CallEnd, LiveCall
from media_server.calls.metadata import CallMetadata, Consent
from media_server.teams.config import TeamConfig
from models.asr.scheduler import DecodeScheduler
from tests.fakes import FakeEngine, FakeVAD, Voice
from tests.local_services import Local, local_services

PERSONAL = {"From": "+15551230000", "callerName": "Jane Roe"}


async def _open(local: Local, call_id: str, rep: Consent, customer: Consent) -> LiveCall:
    metadata = CallMetadata(extra=dict(PERSONAL))
    metadata.rep.consent, metadata.customer.consent = rep, customer
    metadata.customer.name, metadata.customer.phone = "Jane Roe", "+15551230000"
    return await local.services.calls.open(call_id, "acme", "twilio", metadata, [ChannelSpec(0, "mixed", 8000)])


async def _key(local: Local, role: KeyRole, label: str) -> ApiKey:
    key, _ = await local.services.store.create_key("acme", role, label)
    return key


async def _change(local: Local, key: ApiKey, call_id: str, who: str, consent: Consent) -> None:
    await update_consent(local.services.calls, local.services.store, key, call_id, who, consent)


async def test_a_rep_may_withdraw_but_not_grant_a_customer_s_consent(tmp_path: Path) -> None:
    async with local_services(tmp_path) as local:
        rep, admin = await _key(local, KeyRole.REP, "Rita's phone"), await _key(local, KeyRole.ADMIN, "ops")
        manager = await _key(local, KeyRole.MANAGER, "Max")
        live = await _open(local, "c1", Consent.DENIED, Consent.DENIED)

        with pytest.raises(ConsentUpdateError, match="may not grant consent") as refused:
            await _change(local, rep, "c1", "customer", Consent.GRANTED)
        assert refused.value.kind == "forbidden"
        with pytest.raises(ConsentUpdateError, match="may not grant"):
            await _change(local, rep, "c1", "customer", Consent.UNKNOWN)  # (unknown is one-party's yes)
        assert live.call.metadata.customer.consent is Consent.DENIED

        await _change(local, admin, "c1", "customer", Consent.GRANTED)  # admins (and the platform) may
        await _change(local, rep, "c1", "customer", Consent.DENIED)  # anyone may withdraw
        with pytest.raises(ConsentUpdateError, match="may not grant"):
            await _change(local, manager, "c1", "customer", Consent.GRANTED)
        await local.services.teams.set_config(  # the team lets managers grant too
            "acme", TeamConfig(consent_grant=["admin", "ingest", "manager"]), admin.id
        )
        await _change(local, manager, "c1", "customer", Consent.GRANTED)
        assert live.call.metadata.customer.consent is Consent.GRANTED
        await live.end(CallEnd.STOP)


async def test_every_consent_change_is_kept_with_who_made_it_and_a_withdrawal_after_the_call_needs_delete(
    tmp_path: Path,
) -> None:
    async with local_services(tmp_path) as local:
        admin, ingest = await _key(local, KeyRole.ADMIN, "ops"), await _key(local, KeyRole.INGEST, "twilio")
        manager = await _key(local, KeyRole.MANAGER, "Max")
        live = await _open(local, "c2", Consent.DENIED, Consent.UNKNOWN)
        await _change(local, admin, "c2", "customer", Consent.GRANTED)
        await live.end(CallEnd.STOP)

        with pytest.raises(ConsentUpdateError, match="erases stored data") as refused:
            await _change(local, ingest, "c2", "customer", Consent.DENIED)  # (an ingest key erased transcripts)
        assert refused.value.kind == "forbidden"
        await _change(local, manager, "c2", "customer", Consent.DENIED)

        stored = await local.services.store.get_call("acme", "c2")
        assert stored is not None
        history = stored.detail()["consentHistory"]
        assert [(h["participant"], h["from"], h["to"], h["source"]) for h in history] == [
            ("rep", None, "denied", "call_start"),
            ("customer", None, "unknown", "call_start"),
            ("customer", "unknown", "granted", "api"),
            ("customer", "granted", "denied", "api"),
        ]
        assert history[0]["by"] == {"keyId": None, "label": "twilio", "role": "ingest"}  # the call's platform
        assert history[2]["by"] == {"keyId": admin.id, "label": "ops", "role": "admin"}
        assert history[3]["by"] == {"keyId": manager.id, "label": "Max", "role": "manager"}
        assert all(h["at"].endswith("Z") for h in history)


async def test_free_form_metadata_is_kept_only_while_everyone_consented(tmp_path: Path) -> None:
    async with local_services(tmp_path) as local:
        admin, manager = await _key(local, KeyRole.ADMIN, "ops"), await _key(local, KeyRole.MANAGER, "Max")
        # The customer said nothing (all-party: not consent): their caller id and name are not stored.
        unknown = await _open(local, "c3", Consent.DENIED, Consent.UNKNOWN)
        stored = await local.services.store.get_call("acme", "c3")
        assert stored is not None and stored.metadata == {}
        assert unknown.call.snapshot()["metadata"] == {}
        await unknown.end(CallEnd.STOP)
        stored = await local.services.store.get_call("acme", "c3")
        assert stored is not None and stored.metadata == {}

        # Everyone consented: kept; then one withdraws mid-call: gone from the live call and the store.
        services = local.services.calls.services  # (its channel is transcribed: a recogniser starts)
        services.vad, services.scheduler = FakeVAD(), DecodeScheduler(FakeEngine(Voice()))
        agreed = await _open(local, "c4", Consent.GRANTED, Consent.GRANTED)
        stored = await local.services.store.get_call("acme", "c4")
        assert stored is not None and stored.metadata == PERSONAL
        await _change(local, admin, "c4", "customer", Consent.DENIED)
        assert agreed.call.snapshot()["metadata"] == {}
        await agreed.end(CallEnd.STOP)
        stored = await local.services.store.get_call("acme", "c4")
        assert stored is not None and stored.metadata == {}

        # A withdrawal after the call takes the metadata with it too.
        later = await _open(local, "c5", Consent.GRANTED, Consent.GRANTED)
        await later.end(CallEnd.STOP)
        await _change(local, manager, "c5", "customer", Consent.DENIED)
        stored = await local.services.store.get_call("acme", "c5")
        assert stored is not None and stored.metadata == {} and not stored.participants[1].phone
        services.scheduler.close()
