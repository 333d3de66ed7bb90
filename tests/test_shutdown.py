"""SIGTERM with a call live: the real server process, a real Twilio stream at real time, real speech.

The server stops taking calls, ends the live one ``server_shutdown`` with its open utterance finalised, tells the
peer (close 1001), exits 0, and the call is there, interrupted, when the server starts again on the same data.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from tests.conftest import EventLog, collect_events, start_server, stop_server
from tests.speech import program, tel8k

pytestmark = pytest.mark.e2e

DRAIN_S = 10.0
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


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


async def test_sigterm_ends_live_calls_as_server_shutdown_and_tells_the_peer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"MEDIA_SERVER_CALLS__DRAIN_TIMEOUT_S": str(DRAIN_S)}
    server = start_server(data, env)
    try:
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
    finally:
        stop_server(again)
