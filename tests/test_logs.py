"""The server's log, as a security reviewer reads it: no API key (valid, revoked or mistyped) and no personal data of
a call's participants (phone numbers, names) reaches it, whatever surface they came through: REST with keys in
headers and in ``?token=``, lookups and erasures by phone number, key creation, the events websocket (query and
subprotocol), Twilio, L16 and Deepgram streams with names and numbers in their start messages and URLs, gRPC
streams with participants, SIPREC INVITEs whose metadata and headers carry a phone number (well-formed and
malformed), AudioSocket. The request lines are still there, path only.

A real `media-server serve` (SIP and AudioSocket on), real clients; then every line of its log is searched."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from media_server.codecs.g711 import ulaw_encode
from media_server.v1 import api_pb2, api_pb2_grpc
from media_server.v1 import events_pb2 as pb
from tests.conftest import Server, free_port, start_server, stop_server
from tests.speech import tel8k
from tests.test_audiosocket import asterisk
from tests.test_siprec import Udp, free_sip_port, invite, sip_env, to_tag

pytestmark = pytest.mark.e2e

PHONE = "+1 555 867 5309"  # as people write it; every spelling of its digits is looked for
NAME = "Zebulon Quixotefield"
EMAIL = "zebulon.quixotefield@example.com"
WRONG_KEY = "msk_" + "Typo" * 10  # a mistyped key is a secret too (one character from the real one)
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


def spellings() -> list[str]:
    digits = "".join(c for c in PHONE if c.isdigit())
    return [
        digits,
        digits[1:],
        PHONE,
        PHONE.replace(" ", "%20"),
        "%2B" + digits,
        "867 5309",
        "867-5309",
        "8675309",
        NAME,
        NAME.split()[1],
        NAME.replace(" ", "+"),
        NAME.replace(" ", "%20"),
        EMAIL,
        EMAIL.replace("@", "%40"),
    ]


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, int]]:
    sip_port, audiosocket_port = free_sip_port(), free_port()
    env = {
        **sip_env(sip_port, (35000, 35098)),
        "MEDIA_SERVER_AUDIOSOCKET__ENABLED": "true",
        "MEDIA_SERVER_AUDIOSOCKET__PORT": str(audiosocket_port),
        "MEDIA_SERVER_AUDIOSOCKET__HOST": "127.0.0.1",
        "MEDIA_SERVER_AUDIOSOCKET__ALLOW": '["127.0.0.1/32"]',
        "MEDIA_SERVER_AUDIOSOCKET__TEAM": "acme",
        "MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": "3",
        "MEDIA_SERVER_LOG_LEVEL": "info",
    }
    srv = start_server(tmp_path_factory.mktemp("logs"), env)
    yield srv, sip_port, audiosocket_port
    stop_server(srv)


def mulaw_frames(pcm: np.ndarray) -> list[str]:
    return [base64.b64encode(ulaw_encode(pcm[i : i + 160])).decode() for i in range(0, len(pcm), 160)]


async def twilio_call(server: Server, key: str) -> None:
    call_id = f"CA{uuid.uuid4().hex}"
    custom = {"token": key, "customerPhone": PHONE, "customerName": NAME, "customerEmail": EMAIL, **GRANTED}
    start = {
        "streamSid": "MZlogs",
        "callSid": call_id,
        "tracks": ["inbound"],
        "customParameters": custom,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": "MZlogs"}))
        for i, payload in enumerate(mulaw_frames(tel8k()[0].pcm[:16000])):
            media = {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20), "payload": payload}
            await ws.send(json.dumps({"event": "media", "media": media, "streamSid": "MZlogs"}))
        # A malformed message naming the customer: refused, and the refusal in the log says what, not who.
        await ws.send(json.dumps({"event": "media", "media": {"track": "inbound", "payload": f"%%{PHONE}%%"}}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 20)
    # A second start carrying the person where a string belongs: a protocol error.
    async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
        bad = {**start, "callSid": f"CA{uuid.uuid4().hex}", "customParameters": {**custom, "customerPhone": [PHONE]}}
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": bad, "streamSid": "MZlogs"}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 20)


async def l16_call(server: Server, key: str) -> None:
    start = {"callSid": f"L16-{uuid.uuid4().hex}", "sampleRate": 8000, "mixType": "mono", "token": key}
    start |= {"customerPhone": PHONE, "customerName": NAME, **GRANTED}
    async with connect(f"{server.ws_url}/v1/ingest/l16") as ws:
        await ws.send(json.dumps(start))
        await ws.send(tel8k()[1].pcm[:16000].tobytes())
        await ws.close()


async def deepgram_stream(server: Server, key: str) -> None:
    query = httpx.QueryParams(
        {
            "encoding": "linear16",
            "sample_rate": "8000",
            "customer_phone": PHONE,
            "customer_name": NAME,
            "customer_consent": "denied",
        }
    )
    async with connect(f"{server.ws_url}/v1/listen?{query}", subprotocols=["token", key]) as ws:  # type: ignore[list-item]
        await ws.send(tel8k()[2].pcm[:16000].tobytes())
        await ws.send(json.dumps({"type": "CloseStream"}))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 20)
    # Refused for its key: the log says so without the key or the people in the URL.
    with pytest.raises(InvalidStatus):
        async with connect(
            f"{server.ws_url}/v1/listen?{query}", additional_headers={"Authorization": f"Token {WRONG_KEY}"}
        ):
            pass


async def grpc_stream(server: Server, key: str) -> None:
    start = api_pb2.StreamCallRequest(
        start=api_pb2.StreamStart(
            call_id=f"grpc-{uuid.uuid4().hex}",
            encoding=api_pb2.LINEAR16,
            sample_rate=8000,
            channels=["customer"],
            participants=[
                pb.Participant(role="rep", name="Rita Rep", consent=pb.CONSENT_GRANTED),
                pb.Participant(role="customer", name=NAME, phone=PHONE, email=EMAIL, consent=pb.CONSENT_GRANTED),
            ],
        )
    )
    pcm = tel8k()[3].pcm[:16000]

    async def requests() -> AsyncIterator[api_pb2.StreamCallRequest]:
        yield start
        yield api_pb2.StreamCallRequest(audio=api_pb2.AudioChunk(channel=0, data=pcm.tobytes()))
        yield api_pb2.StreamCallRequest(stop=api_pb2.StreamStop())

    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = api_pb2_grpc.MediaServerStub(channel)
        _ = [r async for r in stub.StreamCall(requests(), metadata=(("authorization", f"Bearer {key}"),))]
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListCalls(api_pb2.ListCallsRequest(), metadata=(("authorization", f"Bearer {WRONG_KEY}"),))


def siprec_invites(sip_port: int) -> None:
    from tests.sipp import siprec_metadata, siprec_multipart, siprec_sdp

    digits = "".join(c for c in PHONE if c.isdigit())
    values = {"customer_aor": f"sip:+{digits}@carrier.example", "customer_name": NAME}
    content_type, body = siprec_multipart(siprec_sdp(media_port=7100), siprec_metadata(values))
    src = Udp(f"127.0.0.1:{sip_port}")
    try:
        who = f'From: "{NAME}" <sip:+{digits}@carrier.example>;tag=x\r\n'
        call_id = f"logs-{uuid.uuid4().hex[:8]}"
        src.send(
            invite(call_id, body, content_type, "z9hG4bKlog1", port=src.port, extra=f"P-Asserted-Identity: {who[6:]}")
        )
        ok = src.final()
        assert ok.startswith("SIP/2.0 200"), ok
        src.send(invite(call_id, b"", "", "z9hG4bKlog2", port=src.port, method="ACK", to_tag=to_tag(ok)))
        bye = invite(call_id, b"", "", "z9hG4bKlog3", port=src.port, method="BYE", cseq=2, to_tag=to_tag(ok))
        src.send(bye)
        assert src.final().startswith("SIP/2.0 200")
        # Malformed: the metadata names the customer in a broken document; a header holds the number twice.
        broken = body.replace(b"</recording>", f"<oops>{PHONE}".encode())
        src.send(invite(f"logs-{uuid.uuid4().hex[:8]}", broken, content_type, "z9hG4bKlog4", port=src.port))
        assert src.final().startswith("SIP/2.0 4")
        garbled = invite(f"logs-{uuid.uuid4().hex[:8]}", body, content_type, "z9hG4bKlog5", port=src.port)
        src.send(garbled.replace(b"CSeq: 1 INVITE", f"CSeq: {digits} INVITE\r\nCSeq: one {PHONE}".encode()))
        try:
            src.final()
        except TimeoutError:
            pass  # (a message too broken to answer is dropped)
    finally:
        src.close()


async def test_no_key_and_no_personal_data_reaches_the_log(watched: tuple[Server, int, int]) -> None:
    server, sip_port, audiosocket_port = watched
    admin, ingest = server.keys["admin"], server.keys["ingest"]
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        bearer = {"Authorization": f"Bearer {admin}"}
        assert (await http.get("/v1/calls", params={"participant": PHONE, "token": admin})).status_code == 200
        assert (await http.get("/v1/people/export", params={"phone": PHONE}, headers=bearer)).status_code == 200
        assert (await http.get("/v1/calls", headers={"Authorization": f"Bearer {WRONG_KEY}"})).status_code == 401
        assert (await http.get("/v1/calls", params={"token": WRONG_KEY})).status_code == 401
        created = await http.post("/v1/keys", json={"role": "rep", "label": "for the log test"}, headers=bearer)
        assert created.status_code == 201, created.text
        new_key = created.json()["key"]
        rotated = await http.post(f"/v1/keys/{created.json()['id']}/rotate", headers=bearer)
        assert rotated.status_code == 201, rotated.text
        newest = rotated.json()["key"]

    async with connect(f"{server.ws_url}/v1/events?after=0&token={admin}"):
        await asyncio.sleep(0.2)
    async with connect(f"{server.ws_url}/v1/events", subprotocols=["token", newest]):  # type: ignore[list-item]
        await asyncio.sleep(0.2)

    await twilio_call(server, ingest)
    await l16_call(server, ingest)
    await deepgram_stream(server, ingest)
    await grpc_stream(server, ingest)
    await asyncio.to_thread(siprec_invites, sip_port)
    await asterisk(audiosocket_port, uuid.uuid4(), tel8k()[4].pcm[:8000], speed=8)

    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        erased = await http.post("/v1/erasures", json={"phone": PHONE}, headers={"Authorization": f"Bearer {admin}"})
        assert erased.status_code == 201, erased.text
    await asyncio.sleep(4)  # (the calls end: idle timeouts, the SIPREC BYE; their end lines are written)

    log = server.log()
    assert '"GET /v1/calls?… HTTP/1.1" 200' in log and '"WebSocket /v1/events?…"' in log  # (the lines are there)
    assert "call " in log and "siprec" in log.lower()
    secrets = [*server.keys.values(), new_key, newest, WRONG_KEY]
    leaks = [
        (what, line)
        for line in log.splitlines()
        for what in [*secrets, *spellings()]
        if what in line or what.lower() in line.lower()
    ]
    assert not leaks, "\n".join(f"{what!r} in: {line}" for what, line in leaks[:10])


async def test_a_call_id_that_would_forge_log_lines_is_refused(watched: tuple[Server, int, int]) -> None:
    """A Twilio ``callSid`` with a newline, a carriage return, an ANSI escape or a NUL: refused with the reason,
    never written into the log or the database as it is."""
    server, _, _ = watched
    key = server.keys["ingest"]
    for forged in ("CAforged\n2026-12-04 12:00:00,000 INFO forged line", "CAforged\r", "CA\x1b[31mred", "CA\x00nul"):
        start = {
            "streamSid": "MZforged",
            "callSid": forged,
            "tracks": ["inbound"],
            "customParameters": {"token": key, **GRANTED},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        async with connect(f"{server.ws_url}/v1/ingest/twilio") as ws:
            await ws.send(
                json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": "MZforged"})
            )
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008 and "control characters" in (ws.close_reason or ""), ws.close_reason
    log = server.log()
    assert "forged line" not in log and "\x1b[31m" not in log and "\x00" not in log
    assert not any(line.startswith("2026-12-04 12:00:00,000") for line in log.splitlines())
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        calls = (await http.get("/v1/calls", headers={"Authorization": f"Bearer {server.keys['admin']}"})).json()
    assert not [c for c in calls["calls"] if c["id"].startswith("CAforged") or c["id"].startswith("CA\x1b")]
