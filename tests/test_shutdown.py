"""SIGTERM with calls live: the real server process, a real Twilio stream at real time (real speech) and a SIPREC
session from a hand-written SRC.

The server stops taking calls (1013, 503), ends the live ones ``server_shutdown`` with their open utterances
finalised, tells each peer (close 1001, a BYE with a Reason), exits 0, and the calls are there, interrupted, when the
server starts again on the same data. AudioSocket's terminate is checked in process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.api.grpc import add_to_server
from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from media_server.ingest.audiosocket.parser import TERMINATE
from media_server.ingest.deepgram import PROTOCOL as DEEPGRAM
from media_server.v1 import api_pb2, api_pb2_grpc
from media_server.v1 import events_pb2 as pb
from tests.conftest import EventLog, collect_events, start_server, stop_server
from tests.local_services import local_grpc, local_http
from tests.speech import program, tel8k
from tests.test_audiosocket import Local, asterisk, local  # noqa: F401 (local: a fixture)
from tests.test_grpc_api import _one, bearer, start_message
from tests.test_siprec import Udp, free_sip_port, invite, sdp_and_metadata, sip_env, to_tag

DRAIN_S = 10.0
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _sip_messages(src: Udp, n: int) -> list[str]:
    """The next ``n`` SIP messages the SRC gets, provisional responses skipped."""
    out: list[str] = []
    while len(out) < n:
        text = src.sock.recv(65535).decode()
        if not text.startswith("SIP/2.0 1"):
            out.append(text)
    return out


def _open_utterance(log: EventLog) -> tuple[int, int] | None:
    """(channel, segment) of an utterance with interims and no final yet, once a first final has come."""
    finals = {(t["channel"], t["segment"]) for t in log.transcripts(final=True)}
    if not finals:
        return None
    for t in log.transcripts(final=False):
        key = (t["channel"], t["segment"])
        if key not in finals and t["text"].strip():
            return key
    return None


@pytest.mark.e2e
async def test_sigterm_ends_live_calls_as_server_shutdown_and_tells_the_peer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sip_port = free_sip_port()
    env = {
        **sip_env(sip_port, (33000, 33098)),
        "MEDIA_SERVER_SIP__RTP_TIMEOUT_S": "60",  # the SRC sends no RTP: only the shutdown ends its session
        "MEDIA_SERVER_CALLS__DRAIN_TIMEOUT_S": str(DRAIN_S),
    }
    server = start_server(data, env)
    src = Udp(f"127.0.0.1:{sip_port}")
    try:
        content_type, body = sdp_and_metadata()
        src.send(invite("shutdown-1", body, content_type, "z9hG4bKsd1", port=src.port))
        ok = await asyncio.to_thread(src.final)
        assert ok.startswith("SIP/2.0 200"), ok
        src.send(invite("shutdown-1", b"", "", "z9hG4bKsd2", port=src.port, method="ACK", to_tag=to_tag(ok)))

        key = server.keys["admin"]
        call_id = "CA" + uuid.uuid4().hex
        speech = program(tel8k()[:4], gap_s=1.0, lead_s=0.3)
        recording = Recording([speech.pcm], speech.sample_rate)
        log = EventLog()
        collector = asyncio.create_task(
            collect_events(f"{server.ws_url}/v1/calls/{call_id}/events?token={key}", timeout=90, log=log)
        )
        await asyncio.sleep(0.3)  # subscribed before the call starts
        streaming = asyncio.create_task(
            stream_call(recording, server.ws_url, "twilio", key, call_id=call_id, metadata=GRANTED, speaker="customer")
        )
        await _wait_for(lambda: _open_utterance(log) is not None or streaming.done(), 60, "an open utterance")
        assert not streaming.done(), "the recording ended before an utterance was open after a final"
        channel, segment = _open_utterance(log)  # type: ignore[misc]
        finals_before = len(log.transcripts(final=True))
        # A second connection, made now, asks for a call only once the server is draining.
        late = await connect(f"{server.ws_url}/v1/ingest/twilio")
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        result = await asyncio.wait_for(streaming, 15)
        assert (result.close_code, result.close_reason) == (1001, "server shutting down")

        # Draining: a new call is refused with 1013, try again later.
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ" + uuid.uuid4().hex,
            "start": {
                "accountSid": "AC" + uuid.uuid4().hex,
                "callSid": "CA" + uuid.uuid4().hex,
                "tracks": ["inbound"],
                "customParameters": {"token": key, **GRANTED},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        await late.send(json.dumps(start))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(late.recv(), 10)
        assert late.close_code == 1013, (late.close_code, late.close_reason)
        assert "shutting down" in (late.close_reason or "")
        src.send(invite("shutdown-2", body, content_type, "z9hG4bKsd3", port=src.port))
        bye, refused = sorted(await asyncio.to_thread(_sip_messages, src, 2))  # in either order
        assert bye.startswith("BYE ") and "Call-ID: shutdown-1" in bye, bye
        assert 'Reason: SIP;cause=503;text="server shutting down"' in bye, bye
        assert refused.startswith("SIP/2.0 503") and "Retry-After:" in refused, refused

        exit_code = await asyncio.to_thread(server.process.wait, DRAIN_S + 10)
        assert exit_code == 0, server.log()[-3000:]
        assert time.monotonic() - signalled < DRAIN_S + 5
        await asyncio.wait_for(collector, 10)
        ended = log.of_type("call_ended")
        assert ended and ended[-1]["callEnded"]["reason"] == "server_shutdown", [e["type"] for e in log.events]
        open_finals = [t for t in log.transcripts(final=True) if (t["channel"], t["segment"]) == (channel, segment)]
        assert open_finals and open_finals[0]["text"].strip(), "the utterance open at SIGTERM got its final"
        assert f"call {call_id} ended: interrupted (server_shutdown)" in server.log()
    finally:
        src.close()
        if server.process.poll() is None:
            stop_server(server)

    again = start_server(data, env)
    try:
        with again.http(again.keys["admin"]) as http:
            stored = http.get(f"/v1/calls/{call_id}").json()
        assert (stored["status"], stored["endReason"]) == ("interrupted", "server_shutdown")
        texts = [s["text"] for s in stored["transcript"]]
        assert len(texts) == finals_before + 1, texts
        assert open_finals[0]["text"] in texts
        with again.http(again.keys["admin"]) as http:
            calls = http.get("/v1/calls").json()["calls"]
        (siprec,) = [c for c in calls if c["source"] == "siprec"]
        assert (siprec["status"], siprec["endReason"]) == ("interrupted", "server_shutdown")
    finally:
        stop_server(again)


# -- AudioSocket, in process: the server's end reaches Asterisk at once ---------------------------------


async def test_audiosocket_peer_gets_a_terminate_when_the_server_shuts_down(local: Local) -> None:  # noqa: F811
    call_id = str(uuid.uuid4())
    # A minute of audio: the client is still streaming when the server shuts down, however loaded the machine.
    client = asyncio.create_task(asterisk(local.server.port, uuid.UUID(call_id), np.zeros(8000 * 60, np.int16)))
    await local.live_call(call_id)
    await local.services.calls.shutdown()  # what SIGTERM runs first, before any listener closes
    sent = await asyncio.wait_for(client, 10)
    assert sent.reply == TERMINATE and sent.closed
    record = await local.services.store.get_call("acme", call_id)
    assert record is not None and (record.status, record.end_reason) == ("interrupted", "server_shutdown")


# -- Deepgram and gRPC StreamCall, in process (consent denied: no model needed) --------------------------


async def test_deepgram_client_gets_its_metadata_then_1001(tmp_path: Path) -> None:
    async with local_http(tmp_path, [DEEPGRAM.router]) as srv:
        query = "encoding=linear16&sample_rate=8000&call_id=dg-live&rep_consent=denied&customer_consent=denied"
        headers = {"Authorization": f"Token {srv.key}"}
        async with connect(f"{srv.ws_url}/v1/listen?{query}", additional_headers=headers) as ws:
            await ws.send(np.zeros(800, np.int16).tobytes())
            await _wait_for(lambda: "dg-live" in srv.services.calls.live, 5, "the stream's call")
            await srv.services.calls.shutdown()
            messages = []
            with pytest.raises(ConnectionClosed):
                while True:
                    messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        assert messages[-1]["type"] == "Metadata"
        assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
        record = await srv.services.store.get_call("acme", "dg-live")
        assert record is not None and (record.status, record.end_reason) == ("interrupted", "server_shutdown")


async def test_stream_call_ends_unavailable_and_new_calls_are_refused_so(tmp_path: Path) -> None:
    denied = {"rep": pb.CONSENT_DENIED, "customer": pb.CONSENT_DENIED}
    async with local_grpc(tmp_path, [add_to_server]) as srv:

        async def held_open() -> AsyncIterator[api_pb2.StreamCallRequest]:
            yield start_message("grpc-live", consent=denied)
            await asyncio.Event().wait()  # the client never stops: only the server ends this call

        async with grpc.aio.insecure_channel(srv.target) as channel:
            stub = api_pb2_grpc.MediaServerStub(channel)
            events: list[pb.Event] = []
            streaming = stub.StreamCall(held_open(), metadata=bearer(srv.key))

            async def read() -> None:
                async for event in streaming:
                    events.append(event)

            reader = asyncio.create_task(read())
            await _wait_for(lambda: bool(events), 5, "call_started")
            await srv.services.calls.shutdown()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(reader, 10)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "server shutting down" in (ended.value.details() or "")
            assert events[-1].type == "call_ended" and events[-1].call_ended.reason == "server_shutdown"

            refused = stub.StreamCall(_one(start_message("grpc-late", consent=denied)), metadata=bearer(srv.key))
            with pytest.raises(grpc.aio.AioRpcError) as late:
                async for _ in refused:
                    pass
            assert late.value.code() == grpc.StatusCode.UNAVAILABLE
            assert dict(late.value.trailing_metadata() or ())["grpc-retry-pushback-ms"] == "5000"
