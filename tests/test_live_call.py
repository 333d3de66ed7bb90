"""End to end: a real server process, real websocket clients, real speech (tel8k_sim) through Twilio and L16."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from media_server.codecs.g711 import ulaw_encode
from tests.conftest import EventLog, Server, collect_events, start_server, stop_server
from tests.speech import Program, program, said_twice, stereo, tel8k, wer
from tests.synth import KEYTERMS, SCRIPT, require_flite, speak

pytestmark = pytest.mark.e2e

SPEED = 2.0  # twice real time: the same audio, the test just waits less
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


def new_call_id() -> str:
    return "CA" + uuid.uuid4().hex


def two_party() -> tuple[Program, Program]:
    utts = tel8k()
    # Different utterances on the two tracks, the customer starting a little later.
    return program(utts[0::2], gap_s=1.2, lead_s=0.3), program(utts[1::2], gap_s=1.2, lead_s=1.0)


async def stream_with_events(
    server: Server,
    recording: Recording,
    protocol: str,
    metadata: dict[str, Any],
    key: str | None = None,
    call_id: str | None = None,
) -> tuple[StreamResult, EventLog]:
    key = key or server.keys["admin"]
    call_id = call_id or new_call_id()
    url = f"{server.ws_url}/v1/calls/{call_id}/events?token={key}"
    collector = asyncio.create_task(collect_events(url, timeout=180))
    await asyncio.sleep(0.2)  # subscribed before the call starts
    result = await stream_call(recording, server.ws_url, protocol, key, call_id=call_id, metadata=metadata, speed=SPEED)
    log = await collector
    return result, log


def check_transcripts(log: EventLog, spans: dict[str, Program]) -> dict[str, float]:
    """Per speaker: WER of the finals against the references, in order; interims came before finals."""
    rates = {}
    for speaker, prog in spans.items():
        finals = [t for t in log.transcripts(final=True) if t["speaker"] == speaker]
        assert finals, f"no final transcript for {speaker}"
        rates[speaker] = wer([u.ref for _, _, u in prog.spans], [t["text"] for t in finals])
        for t in finals:
            assert t["words"], "a final carries its words"
            for w in t["words"]:
                assert 0 <= w["start"] <= w["end"] <= prog.duration + 1
                assert 0 < w["confidence"] <= 1
    return rates


def assert_interims_precede_finals(log: EventLog) -> None:
    seen_final: set[tuple[int, int]] = set()
    interim_segments = set()
    for t in log.transcripts():
        key = (t["channel"], t["segment"])
        if t["isFinal"]:
            assert key not in seen_final, "one final per utterance"
            seen_final.add(key)
        else:
            assert key not in seen_final, "no interim after its utterance's final"
            interim_segments.add(key)
    assert interim_segments & seen_final, "interim results were shown before finals"


async def test_twilio_call_is_transcribed_live_and_stored(server: Server) -> None:
    rep, customer = two_party()
    recording = stereo(rep, customer)
    metadata = {**GRANTED, "team": "acme", "repId": "u-17", "repName": "Dana Rep", "customerPhone": "+15551230000"}
    result, log = await stream_with_events(server, recording, "twilio", metadata)

    assert result.close_code == 1000
    types = [e["type"] for e in log.events]
    assert types[0] == "call_started" and types[-1] == "call_ended"
    ids = [int(e["id"]) for e in log.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in log.events:
        assert e["callId"] == result.call_id and e["time"].endswith("Z")
    started = log.events[0]["callStarted"]
    assert started["source"] == "twilio"
    assert {c["speaker"]: c["index"] for c in started["channels"]} == {"rep": 0, "customer": 1}

    assert_interims_precede_finals(log)
    rates = check_transcripts(log, {"rep": rep, "customer": customer})
    assert all(r <= 0.15 for r in rates.values()), rates
    for t in log.transcripts():
        assert t["channel"] == (0 if t["speaker"] == "rep" else 1)

    ended = log.events[-1]["callEnded"]
    assert ended["status"] == "completed" and ended["reason"] == "stop"

    with server.http(server.keys["admin"]) as http:
        stored = http.get(f"/v1/calls/{result.call_id}").json()
    finals = log.transcripts(final=True)
    assert stored["status"] == "completed"
    assert sorted(s["text"] for s in stored["transcript"]) == sorted(t["text"] for t in finals)
    by_text = {t["text"]: t for t in finals}
    for segment in stored["transcript"]:
        event = by_text[segment["text"]]
        assert segment["speaker"] == event["speaker"] and segment["channel"] == event["channel"]
        assert [w["word"] for w in segment["words"]] == [w["word"] for w in event["words"]]
    rep_p = next(p for p in stored["participants"] if p["role"] == "rep")
    assert (rep_p["id"], rep_p["name"], rep_p["consent"], rep_p["transcribed"]) == ("u-17", "Dana Rep", "granted", True)
    customer_p = next(p for p in stored["participants"] if p["role"] == "customer")
    assert customer_p["phone"] == "+15551230000"
    stats = {s["speaker"]: s for s in stored["speakers"]}
    assert stats["rep"]["wordCount"] == sum(len(t["words"]) for t in finals if t["speaker"] == "rep")
    assert 0 < stats["customer"]["talkTime"] <= customer.duration
    assert {s["speaker"]: s["wordCount"] for s in ended["speakers"]} == {k: v["wordCount"] for k, v in stats.items()}


async def test_l16_stereo_call_is_transcribed(server: Server) -> None:
    rep, customer = two_party()
    result, log = await stream_with_events(server, stereo(rep, customer), "l16", GRANTED)
    assert result.close_code == 1000
    assert log.events[0]["callStarted"]["source"] == "l16"
    assert_interims_precede_finals(log)
    rates = check_transcripts(log, {"rep": rep, "customer": customer})
    assert all(r <= 0.15 for r in rates.values()), rates
    assert log.events[-1]["callEnded"]["status"] == "completed"


async def test_participant_without_consent_is_never_transcribed_or_stored(server: Server) -> None:
    rep, customer = two_party()
    # Consent denied for the customer; under the default all-party policy "unknown" is no consent either.
    for customer_consent in ("denied", "unknown"):
        metadata = {"repConsent": "granted", "customerConsent": customer_consent, "customerPhone": "+15559870000"}
        result, log = await stream_with_events(server, stereo(rep, customer), "twilio", metadata)
        speakers = {t["speaker"] for t in log.transcripts()}
        assert speakers == {"rep"}
        assert not [e for e in log.of_type("speech_started") if e["speechStarted"]["speaker"] == "customer"]
        channels = {c["speaker"]: c for c in log.events[0]["callStarted"]["channels"]}
        assert channels["customer"]["transcribed"] is False and channels["rep"]["transcribed"] is True
        with server.http(server.keys["admin"]) as http:
            stored = http.get(f"/v1/calls/{result.call_id}").json()
        assert {s["speaker"] for s in stored["transcript"]} == {"rep"}
        assert {s["speaker"] for s in stored["speakers"]} == {"rep"}
        customer_p = next(p for p in stored["participants"] if p["role"] == "customer")
        assert customer_p["consent"] == customer_consent and customer_p["transcribed"] is False
        assert customer_p["phone"] == "", "nothing identifying is kept of a participant without consent"
        # None of the customer's words (those the rep never says) reach an event or the database.
        rep_words = {w for _, _, u in rep.spans for w in u.ref.split()}
        customer_only = {w for _, _, u in customer.spans for w in u.ref.split() if len(w) > 4} - rep_words
        assert customer_only
        for text in (json.dumps(log.events).lower(), json.dumps(stored).lower()):
            assert not [w for w in customer_only if w in text]


async def test_resume_with_after_loses_nothing_and_repeats_nothing(server: Server) -> None:
    rep, customer = two_party()
    call_id = new_call_id()
    key = server.keys["rep"]
    base = f"{server.ws_url}/v1/calls/{call_id}/events"
    reference = asyncio.create_task(collect_events(f"{base}?token={key}", timeout=180))

    async def flaky_subscriber() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        last = None
        for _attempt in range(50):
            url = f"{base}?token={key}" + (f"&after={last}" if last is not None else "")
            async with connect(url) as ws:
                for _ in range(3):  # read a few events, then drop the connection
                    try:
                        event = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    except (TimeoutError, ConnectionClosed):
                        return got
                    got.append(event)
                    last = event["id"]
                    if event["type"] == "call_ended":
                        return got
            await asyncio.sleep(0.3)  # events keep flowing while we are away
        return got

    await asyncio.sleep(0.2)
    flaky = asyncio.create_task(flaky_subscriber())
    await stream_call(
        stereo(rep, customer), server.ws_url, "twilio", key, call_id=call_id, metadata=GRANTED, speed=SPEED
    )
    full = (await reference).events
    resumed = await flaky
    assert full[-1]["type"] == "call_ended"
    # Every stored event once, in order, exactly as sent live; interim transcripts are not stored, so the ones sent
    # while the subscriber was away are not replayed (their finals are).
    stored = [e for e in full if not (e["type"] == "transcript" and not e["transcript"]["isFinal"])]
    assert [e for e in resumed if e in stored] == stored
    assert len({e["id"] for e in resumed}) == len(resumed), "nothing twice"


async def test_team_events_stream_sees_the_teams_calls_only(server: Server) -> None:
    utts = tel8k()
    short = Recording([program(utts[5:6], lead_s=0.2).pcm], 8000)
    team_log = asyncio.create_task(
        collect_events(f"{server.ws_url}/v1/events?token={server.keys['admin']}", timeout=60)
    )
    other_log = asyncio.create_task(
        collect_events(f"{server.ws_url}/v1/events?token={server.keys['other']}", until_type=None, timeout=15)
    )
    await asyncio.sleep(0.2)
    result = await stream_call(short, server.ws_url, "l16", server.keys["ingest"], metadata=GRANTED, speed=SPEED)
    log = await team_log
    assert {e["callId"] for e in log.events} == {result.call_id}
    assert log.transcripts(final=True)
    assert not (await other_log).events


async def test_unauthenticated_clients_are_refused(server: Server) -> None:
    utts = tel8k()
    short = Recording([utts[5].pcm], 8000)
    # No key at all, a wrong key in metadata, a wrong key in the header: closed with 1008, nothing stored.
    for token, header in ((None, False), ("msk_" + "x" * 43, False), ("msk_" + "y" * 43, True)):
        call_id = new_call_id()
        result = await stream_call(short, server.ws_url, "twilio", token, call_id=call_id, token_in_header=header)
        assert result.close_code == 1008
        assert "API key" in result.close_reason
        with server.http(server.keys["admin"]) as http:
            assert http.get(f"/v1/calls/{call_id}").status_code == 404
    # A key that may only ingest cannot read events; no key cannot either.
    for url in (f"{server.ws_url}/v1/events", f"{server.ws_url}/v1/events?token={server.keys['ingest']}"):
        log = await collect_events(url, until_type=None, timeout=5)
        assert log.close_code == 1008 and not log.events
    with server.http() as http:
        assert http.get("/v1/calls").status_code == 401
    with server.http("not-a-key") as http:
        assert http.get("/v1/calls").status_code == 401


async def test_calls_are_team_scoped_paginated_and_deletable(server: Server) -> None:
    utts = tel8k()
    short = Recording([utts[5].pcm], 8000)
    ids = []
    for _ in range(3):
        r = await stream_call(short, server.ws_url, "l16", server.keys["ingest"], metadata=GRANTED, speed=4)
        ids.append(r.call_id)
    await asyncio.sleep(0.5)
    with server.http(server.keys["admin"]) as http:
        page1 = http.get("/v1/calls", params={"limit": 2}).json()
        page2 = http.get("/v1/calls", params={"limit": 2, "cursor": page1["next"]}).json()
        listed = [c["id"] for c in page1["calls"] + page2["calls"]]
        assert listed[:3] == ids[::-1], "newest first"
        starts = [c["startedAt"] for c in page1["calls"] + page2["calls"]]
        assert starts == sorted(starts, reverse=True)
        assert http.get("/v1/calls", params={"cursor": "garbage!"}).status_code == 400
    with server.http(server.keys["other"]) as http:
        assert ids[0] not in [c["id"] for c in http.get("/v1/calls").json()["calls"]]
        assert http.get(f"/v1/calls/{ids[0]}").status_code == 404
        assert http.delete(f"/v1/calls/{ids[0]}").status_code == 404
    with server.http(server.keys["rep"]) as http:
        assert http.delete(f"/v1/calls/{ids[0]}").status_code == 403
    with server.http(server.keys["admin"]) as http:
        assert http.delete(f"/v1/calls/{ids[0]}").status_code == 204
        assert http.get(f"/v1/calls/{ids[0]}").status_code == 404


async def _twilio_start(ws: Any, call_id: str, token: str, tracks: list[str] | None = None) -> None:
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    start = {
        "streamSid": "MZ1",
        "callSid": call_id,
        "tracks": tracks or ["inbound", "outbound"],
        "customParameters": {"token": token, **GRANTED},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": "MZ1"}))


async def _send_speech(ws: Any, pcm: np.ndarray, track: str = "inbound", speed: float = 4.0) -> None:
    seq = 2
    for i, offset in enumerate(range(0, len(pcm), 160)):
        payload = base64.b64encode(ulaw_encode(pcm[offset : offset + 160])).decode()
        media = {"track": track, "chunk": str(i + 1), "timestamp": str(offset // 8), "payload": payload}
        await ws.send(json.dumps({"event": "media", "sequenceNumber": str(seq), "media": media, "streamSid": "MZ1"}))
        seq += 1
        await asyncio.sleep(0.02 / speed)


async def test_bad_input_gets_clear_errors_and_cut_calls_are_kept(server: Server) -> None:
    key = server.keys["admin"]
    utt = max(tel8k(), key=lambda u: u.duration)

    # Malformed JSON before start: closed with 1007 and a reason.
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        await ws.send("{not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1007 and "JSON" in (ws.close_reason or "")

    # L16 without a sample rate: 1003.
    async with connect(f"{server.ws_url}/v1/ingest/l16", additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        await ws.send(json.dumps({"callSid": new_call_id(), "mixType": "mono"}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1003 and "sampleRate" in (ws.close_reason or "")

    # Invalid base64 in the middle of a call: the subscriber gets an error event, the socket is closed
    # with 1007, and the call is stored as interrupted with what was transcribed before.
    call_id = new_call_id()
    events = asyncio.create_task(collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}"))
    await asyncio.sleep(0.2)
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        await _twilio_start(ws, call_id, key)
        await _send_speech(ws, np.concatenate([utt.pcm, np.zeros(8000, dtype=np.int16)]))
        await ws.send(json.dumps({"event": "media", "media": {"track": "inbound", "payload": "%%%not base64%%%"}}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 20)
        assert ws.close_code == 1007 and "base64" in (ws.close_reason or "")
    log = await events
    errors = log.of_type("error")
    assert errors and errors[0]["error"]["code"] == "invalid_payload"
    ended = log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("interrupted", "protocol_error")
    with server.http(key) as http:
        stored = http.get(f"/v1/calls/{call_id}").json()
    assert stored["status"] == "interrupted"
    assert wer([utt.ref], [s["text"] for s in stored["transcript"]]) <= 0.15

    # Audio on a track the start did not declare: a protocol violation, not a crash.
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        await _twilio_start(ws, new_call_id(), key, tracks=["inbound"])
        with pytest.raises(ConnectionClosed):
            await _send_speech(ws, tel8k()[5].pcm[:1600], track="outbound")
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1008 and "did not declare" in (ws.close_reason or "")

    # Unknown event types are reported but do not end the call.
    call_id = new_call_id()
    events = asyncio.create_task(collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}"))
    await asyncio.sleep(0.2)
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        await _twilio_start(ws, call_id, key)
        await ws.send(json.dumps({"event": "surprise", "surprise": {}}))
        await _send_speech(ws, tel8k()[5].pcm)
        await ws.send(json.dumps({"event": "stop", "stop": {"callSid": call_id}}))
        await asyncio.wait_for(ws.wait_closed(), 20)
        assert ws.close_code == 1000
    log = await events
    assert log.of_type("error")[0]["error"]["code"] == "unknown_event"
    assert log.events[-1]["callEnded"]["status"] == "completed"


async def test_oversize_frame_is_refused_without_hurting_other_calls(server: Server) -> None:
    key = server.keys["admin"]
    rep, customer = two_party()
    good = asyncio.create_task(stream_with_events(server, stereo(rep, customer), "l16", GRANTED))
    await asyncio.sleep(1.0)
    async with connect(f"{server.ws_url}/v1/ingest/l16", max_size=None) as ws:
        await ws.send(json.dumps({"callSid": new_call_id(), "sampleRate": 8000, "token": key, **GRANTED}))
        await ws.send(b"\x00\x01" * 100_000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1009
    result, log = await good
    assert result.close_code == 1000
    rates = check_transcripts(log, {"rep": rep, "customer": customer})
    assert all(r <= 0.15 for r in rates.values()), rates


async def test_vanished_client_and_silent_client_calls_end_interrupted(server: Server) -> None:
    key = server.keys["admin"]
    utt = max(tel8k(), key=lambda u: u.duration)

    async def vanish(call_id: str) -> None:
        # A client that sends speech and then drops the TCP connection without a stop or a close frame.
        ws = await connect(f"{server.ws_url}/v1/ingest/twilio")
        await _twilio_start(ws, call_id, key)
        await _send_speech(ws, np.concatenate([utt.pcm, np.zeros(8000, dtype=np.int16)]))
        ws.transport.abort()

    async def go_silent(call_id: str) -> None:
        # A client that keeps the socket open but stops sending audio: ended after the idle timeout (4 s here).
        async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
            await _twilio_start(ws, call_id, key)
            await _send_speech(ws, np.concatenate([utt.pcm, np.zeros(8000, dtype=np.int16)]))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
            assert ws.close_code == 1001 and "no audio" in (ws.close_reason or "")

    outcomes = {}
    for behaviour, reason in ((vanish, "disconnected"), (go_silent, "idle_timeout")):
        call_id = new_call_id()
        events = asyncio.create_task(collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}"))
        await asyncio.sleep(0.2)
        await behaviour(call_id)
        log = await events
        ended = log.events[-1]["callEnded"]
        assert (ended["status"], ended["reason"]) == ("interrupted", reason)
        with server.http(key) as http:
            stored = http.get(f"/v1/calls/{call_id}").json()
        assert stored["status"] == "interrupted" and stored["endReason"] == reason
        outcomes[reason] = wer([utt.ref], [s["text"] for s in stored["transcript"]])
    assert all(r <= 0.15 for r in outcomes.values()), outcomes


def final_latencies(log: EventLog, result: StreamResult) -> list[float]:
    """Per final of the call: seconds from its last word's audio being sent to the final's arrival."""
    return [
        arrived - result.sent_at(e["transcript"]["words"][-1]["end"])
        for e, arrived in zip(log.events, log.arrivals, strict=True)
        if e["type"] == "transcript" and e["transcript"]["isFinal"] and e["transcript"]["words"]
    ]


async def test_a_subscriber_that_does_not_read_is_dropped_and_never_slows_calls(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "slow", {"MEDIA_SERVER_EVENTS__SUBSCRIBER_QUEUE": "100"})
    try:
        key = srv.keys["admin"]
        rep, customer = two_party()
        # The same call alone first: how late its finals reach its subscriber with nothing else going on.
        alone, alone_log = await stream_with_events(srv, stereo(rep, customer), "twilio", GRANTED, key)
        # The stalled client: a tiny receive buffer, and it never reads.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", int(srv.ws_url.rsplit(":", 1)[1])))
        # No compression: the repetitive events would otherwise shrink to almost nothing on the wire.
        stalled = await connect(f"{srv.ws_url}/v1/events?token={key}", sock=sock, max_queue=1, compression=None)
        await asyncio.sleep(0.2)

        async def flood(flood_id: str) -> None:
            # Many events, fast: more than the kernel's socket buffers (up to 4 MiB here) can hide. Each
            # unknown Twilio event is reported as an error event and the call goes on.
            async with connect(f"{srv.ws_url}/v1/ingest/twilio") as ws:
                await _twilio_start(ws, flood_id, key)
                noise = json.dumps({"event": "x" * 40, "pad": "y" * 200})
                for _ in range(25_000):
                    await ws.send(noise)
                await ws.send(json.dumps({"event": "stop", "stop": {}}))
                await asyncio.wait_for(ws.wait_closed(), 60)

        # The same call again while the flood runs and the stalled subscriber holds on: transcribed, stored, in time.
        flood_id = new_call_id()
        _, (result, log) = await asyncio.gather(
            flood(flood_id), stream_with_events(srv, stereo(rep, customer), "twilio", GRANTED, key)
        )
        assert result.close_code == 1000
        deadline = time.monotonic() + 30
        while "dropping s" not in srv.log() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert "dropping slow subscriber" in srv.log() or "dropping stalled subscriber" in srv.log()
        with srv.http(key) as http:
            stored = http.get(f"/v1/calls/{result.call_id}").json()
            assert stored["status"] == "completed" and len(stored["transcript"]) >= 6
            assert http.get(f"/v1/calls/{flood_id}").json()["status"] == "completed"
        # Not slowed: its finals come about as soon after their audio as the same call's alone. A call held up by
        # the stalled subscriber would wait for it (never, or until it is dropped); the bound is generous because
        # the flood itself takes CPU, on a machine that may be shared.
        before, during = final_latencies(alone_log, alone), final_latencies(log, result)
        assert len(before) >= 6 and len(during) >= 6
        median_alone = statistics.median(before)
        print(
            f"final latency alone: median {median_alone:.2f} s; with the stalled subscriber and the flood: "
            f"median {statistics.median(during):.2f} s"
        )
        assert statistics.median(during) <= 2 * median_alone + 2.0, (before, during)
        assert max(during) <= 2 * max(before) + 5.0, (before, during)
        # The stalled client, reading at last, finds the server has closed on it.
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(60):
                while True:
                    await stalled.recv()
        assert stalled.close_code in (1013, 1006)
        if stalled.close_code == 1013:
            assert "too slow" in (stalled.close_reason or "")
    finally:
        stop_server(srv)


async def test_l16_accepts_the_subprotocols_jambonz_and_freeswitch_ask_for(server: Server) -> None:
    key = server.keys["ingest"]
    for subprotocol in ("audio.jambonz.org", "audio.drachtio.org"):
        url = f"{server.ws_url}/v1/ingest/l16"
        async with connect(
            url, subprotocols=[subprotocol], additional_headers={"Authorization": f"Bearer {key}"}
        ) as ws:
            assert ws.subprotocol == subprotocol
            await ws.send(json.dumps({"callSid": new_call_id(), "sampleRate": 16000, "mixType": "mono", **GRANTED}))
            await ws.send(np.zeros(320, dtype="<i2").tobytes())
            await ws.send(json.dumps({"event": "stop"}))
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1000


async def test_recognition_options_per_call_take_effect(server: Server) -> None:
    rep, customer = two_party()
    # Defaults: interim results, and an utterance_end after each utterance (the gaps are 1.2 s > 1 s).
    _, log = await stream_with_events(server, stereo(rep, customer), "l16", GRANTED)
    ends = log.of_type("utterance_end")
    assert len(ends) >= len(rep.spans) + len(customer.spans) - 2
    finals = log.transcripts(final=True)
    for end in ends:
        u = end["utteranceEnd"]
        assert any(abs(f["words"][-1]["end"] - u["lastWordEnd"]) < 0.01 for f in finals if f["speaker"] == u["speaker"])
    # Per call: no interims, no utterance ends, a longer endpointing.
    options = {**GRANTED, "interimResults": "false", "utteranceEndMs": "0", "endpointing": "800"}
    _, log = await stream_with_events(server, stereo(rep, customer), "l16", options)
    assert not log.transcripts(final=False) and not log.of_type("utterance_end")
    rates = check_transcripts(log, {"rep": rep, "customer": customer})
    assert all(r <= 0.15 for r in rates.values()), rates
    # The endpointing took effect: a 650 ms pause inside a turn ends the utterance under the server's 500 ms, and
    # does not under this call's 800 ms.
    utt = tel8k()[6]
    twice = Recording([said_twice(utt, 0.65)], utt.sample_rate)
    finals = {}
    for endpointing in ("", "800"):
        options = {**GRANTED, "interimResults": "false", **({"endpointing": endpointing} if endpointing else {})}
        _, log = await stream_with_events(server, twice, "l16", options)
        finals[endpointing] = [t["text"] for t in log.transcripts(final=True)]
    assert len(finals[""]) == 2, finals  # the server's default: cut at the pause
    assert len(finals["800"]) == 1, finals  # this call's: one utterance across it
    assert wer([utt.ref] * 2, finals[""]) <= 0.15 and wer([f"{utt.ref} {utt.ref}"], finals["800"]) <= 0.15, finals


async def test_keyterms_in_the_call_metadata_improve_recognition_of_rare_names(server: Server) -> None:
    require_flite()
    parts = []
    for sentence in SCRIPT[:5]:
        pcm, rate = speak(sentence, "awb")
        parts += [pcm, np.zeros(int(rate * 1.2), dtype=np.int16)]
    call = Recording([np.concatenate(parts)], rate).at_rate(8000)
    found = {}
    for name, extra in (("plain", {}), ("boosted", {"keyterms": ",".join(KEYTERMS)})):
        _, log = await stream_with_events(server, call, "l16", {**GRANTED, **extra})
        said = " ".join(t["text"] for t in log.transcripts(final=True)).lower()
        found[name] = sum(said.count(term.lower()) for term in KEYTERMS)
    spoken = sum(sentence.count(term) for sentence in SCRIPT[:5] for term in KEYTERMS)
    assert found["boosted"] >= found["plain"] + 3 and found["boosted"] >= 0.6 * spoken, (found, spoken)
