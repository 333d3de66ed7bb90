"""Erasure of a person on request, as a data-protection officer checks it: a customer on two stored calls and on a
live one (their number written three ways) is looked up, exported, erased; afterwards their number and words are
nowhere: not in the calls, not in the stored event log, not in the SQLite file; the live call stops transcribing
them; a call on legal hold is left alone; the receipt and the audit name no number. The real REST routers under
uvicorn over the server's services in this process and a real SQLite store (``tests/local_services.py``; the live
call's recogniser on the fake engine and VAD of ``tests/fakes.py``)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from media_server.api import audit, calls, people
from media_server.auth.keys import Role
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallEnd
from media_server.calls.metadata import CallMetadata, Consent
from media_server.events import new_event
from media_server.store.records import CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord
from media_server.v1 import events_pb2 as pb
from models.asr.scheduler import DecodeScheduler
from tests.fakes import FakeEngine, FakeVAD, Voice
from tests.local_services import Local, local_http

SECRET_WORDS = "my account number is 7788 and my dog is Rufus"
NUMBER = re.compile(r"555\D{0,3}123\D{0,3}0000|1230000")  # the erased customer's number, however written


def _stored(call_id: str, phone: str, customer_line: str, rep: str = "dana") -> CallRecord:
    ended = datetime(2026, 11, 20, 10, tzinfo=UTC)
    return CallRecord(
        id=call_id,
        team="acme",
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=ended - timedelta(minutes=3),
        ended_at=ended,
        participants=[
            ParticipantRecord("rep", "granted", True, id=rep, name=rep.title()),
            ParticipantRecord("customer", "granted", True, name="Jane Roe", phone=phone, email="jane@example.com"),
        ],
        channels=[ChannelRecord(0, "rep", 8000, True), ChannelRecord(1, "customer", 8000, True)],
        segments=[
            SegmentRecord(0, "rep", "thanks for calling acme", 0.0, 2.0, 0.9),
            SegmentRecord(1, "customer", customer_line, 2.5, 4.0, 0.9),
        ],
        metadata={"From": phone},
    )


async def _log_events(local: Local, call_id: str, phone: str, line: str) -> None:
    """What the call's subscribers were sent, in the stored event log: who was on it, what the customer said."""
    journal = local.services.journal
    started = pb.CallStarted(
        source="twilio",
        participants=[pb.Participant(role="customer", name="Jane Roe", phone=phone, consent=pb.CONSENT_GRANTED)],
    )
    journal.append(new_event(call_id, "acme", call_started=started))
    said = pb.Transcript(channel=1, speaker="customer", text=line, is_final=True)
    await journal.committed(journal.append(new_event(call_id, "acme", transcript=said)))


def _file_bytes(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data.glob("*.sqlite*")) + sorted(data.glob("*.db*")))


async def test_a_customer_on_stored_and_live_calls_is_erased_everywhere_but_a_held_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # (the server logs at info; aiosqlite's debug lines carry SQL parameters)
    db = tmp_path / "erasure.sqlite"
    async with local_http(tmp_path, [calls.router, people.router, audit.router], f"sqlite+aiosqlite:///{db}") as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "dpo")
        _, rep_key = await store.create_key("acme", Role.REP, "Rita")
        await store.save_call(_stored("a", "(555) 123-0000", SECRET_WORDS))
        await _log_events(local, "a", "(555) 123-0000", SECRET_WORDS)
        await store.save_call(_stored("b", "+1 555 123 0000", "please call me back tomorrow"))
        await store.save_call(_stored("other", "+1 555 999 0000", "a different customer"))
        await store.save_call(_stored("held", "+1-555-123-0000", "under legal hold"))
        await store.set_legal_hold("acme", "held", True)

        services = local.services.calls.services  # the live call transcribes both channels
        services.vad, services.scheduler = FakeVAD(), DecodeScheduler(FakeEngine(Voice()))
        metadata = CallMetadata()
        metadata.rep.consent = metadata.customer.consent = Consent.GRANTED
        metadata.customer.name, metadata.customer.phone = "Jane Roe", "555.123.0000"
        live = await local.services.calls.open(
            "live", "acme", "twilio", metadata, [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
        )

        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
            found = (await http.get("/v1/calls", params={"participant": "555-123-0000"})).json()["calls"]
            assert sorted(c["id"] for c in found) == ["a", "b", "held", "live"]
            export = (await http.get("/v1/people/export", params={"phone": "+15551230000"})).json()
            said = {c["callId"]: [s["text"] for s in c["said"]] for c in export["calls"]}
            assert said["a"] == [SECRET_WORDS] and export["kind"] == "phone"
            refused = await http.post(
                "/v1/erasures", json={"phone": "5551230000"}, headers={"Authorization": f"Bearer {rep_key}"}
            )
            assert refused.status_code == 403
            assert (await http.post("/v1/erasures", json={"phone": "not a number"})).status_code == 400

            assert b"7788" in _file_bytes(tmp_path) and b"(555) 123-0000" in _file_bytes(tmp_path)  # (before)
            receipt = await http.post("/v1/erasures", json={"phone": "(555) 123 0000"})
            assert receipt.status_code == 201, receipt.text
            body = receipt.json()
            assert body["calls"] == ["a", "b", "live"] and body["liveCalls"] == ["live"]
            assert body["heldCalls"] == ["held"] and body["segmentsRemoved"] == 2
            assert not NUMBER.search(receipt.text)
            entries = (await http.get("/v1/audit")).json()["entries"]
            # (any form of the number; not "555" alone: a random key id in the audit, "2591c3a5555c53d9", has it)
            assert "erasure" in [e["action"] for e in entries] and not NUMBER.search(str(entries))

        for call_id in ("a", "b"):
            stored = await store.get_call("acme", call_id)
            assert stored is not None
            customer = stored.participants[1]
            assert (customer.phone, customer.name, customer.email, customer.consent) == ("", "", "", "denied")
            assert [s.speaker for s in stored.segments] == ["rep"] and stored.metadata == {}
        logged, _ = await store.events_after("acme", "a", 0, 2**62, 100)
        assert [e.type for e in logged] == ["call_started"] and not logged[0].call_started.participants[0].phone
        held = await store.get_call("acme", "held")
        assert held is not None and held.participants[1].phone and len(held.segments) == 2
        other = await store.get_call("acme", "other")
        assert other is not None and other.participants[1].phone == "+1 555 999 0000"
        assert not live.call.channels[1].transcribed and live.call.channels[0].transcribed
        assert not live.call.metadata.customer.phone
        await live.end(CallEnd.STOP)
        services.scheduler.close()

        raw = _file_bytes(tmp_path)
        for gone in (b"7788", b"Rufus", b"(555) 123-0000", b"+1 555 123 0000", b"555.123.0000"):
            assert gone not in raw, gone
    # Everything the server logged at info and above (not this test's own HTTP client's lines).
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert logged and not [m for m in logged if "123-0000" in m or "1230000" in m or "7788" in m or "Rufus" in m]


async def test_a_rep_is_erased_the_same_way(tmp_path: Path) -> None:
    async with local_http(tmp_path, [people.router]) as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "dpo")
        await store.save_call(_stored("c1", "+15550001111", "hello", rep="dana"))
        await store.save_call(_stored("c2", "+15550002222", "hi", rep="sam"))
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin}"}) as http:
            body = (await http.post("/v1/erasures", json={"rep": "dana"})).json()
        assert body["calls"] == ["c1"] and body["segmentsRemoved"] == 1
        erased = await store.get_call("acme", "c1")
        assert erased is not None and erased.participants[0].id == "" and erased.participants[0].name == ""
        assert [s.speaker for s in erased.segments] == ["customer"]
        kept = await store.get_call("acme", "c2")
        assert kept is not None and kept.participants[0].id == "sam"
        # Their daily figures stay (the team's), under a name that says nothing of who it was.
        reps = {rep: figures.calls for _, rep, figures in await store.daily_figures("acme", "2026-11-20", "2026-11-20")}
        assert "dana" not in reps and reps["sam"] == 1
        assert [n for rep, n in reps.items() if rep.startswith("erased rep ")] == [1]
