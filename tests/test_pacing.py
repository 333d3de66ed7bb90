"""Pacing (``calls.pacing``): a stream sent 40x faster than real time is slowed to real time once it has spent its
burst allowance, or ended as ``too_fast`` when it gets further ahead than ``max_ahead_s``, while a call of another
team, streamed in real time, gets its finals. A real server process, real speech (tel8k_sim).

These check the mechanism (how long the server took to read a stream, the close code and reason), not latencies:
the victim's final latency with and without a fast neighbour is measured by ``benchmarks/fairness.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from tests.conftest import Server, start_server, stop_server
from tests.speech import program, tel8k

pytestmark = pytest.mark.e2e

BURST_S = 2.0
MAX_AHEAD_S = 3.0
MAX_HELD_S = 30.0  # (held back for longer than any stream here; tested on its own below)
GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that paces (the other tests' servers do not: they stream fast to be quick)."""
    env = {
        "MEDIA_SERVER_CALLS__PACING__ENABLED": "true",
        "MEDIA_SERVER_CALLS__PACING__BURST_S": str(BURST_S),
        "MEDIA_SERVER_CALLS__PACING__MAX_AHEAD_S": str(MAX_AHEAD_S),
        "MEDIA_SERVER_CALLS__PACING__MAX_HELD_S": str(MAX_HELD_S),
    }
    srv = start_server(tmp_path_factory.mktemp("paced"), env)
    yield srv
    stop_server(srv)


def victim_call(server: Server) -> asyncio.Task[StreamResult]:
    """Team globex's call (the ``other`` key), an utterance streamed in real time."""
    audio = program(tel8k()[:1], gap_s=1.2, lead_s=0.3)
    recording = Recording([audio.pcm], audio.sample_rate)
    call = stream_call(recording, server.ws_url, "twilio", server.keys["other"], metadata=GRANTED, speed=1.0)
    return asyncio.create_task(call)


def stored(server: Server, key: str, call_id: str) -> dict[str, Any]:
    """The call as stored, once it has ended (a peer the server ended is told before the call is stored)."""
    deadline = time.monotonic() + 30
    with server.http(key) as http:
        while True:
            response = http.get(f"/v1/calls/{call_id}")
            assert response.status_code == 200, response.text
            call: dict[str, Any] = response.json()
            if call["status"] != "live" or time.monotonic() > deadline:
                return call
            time.sleep(0.2)


def assert_victim_heard(server: Server, result: StreamResult) -> None:
    assert result.close_code == 1000, (result.close_code, result.close_reason)
    call = stored(server, server.keys["other"], result.call_id)
    assert call["status"] == "completed"
    assert call["transcript"] and all(s["text"] for s in call["transcript"]), call["transcript"]


async def test_a_stream_sent_40x_faster_than_real_time_is_read_at_real_time_past_its_burst(paced: Server) -> None:
    """Team acme streams 14 s of speech 40x faster than real time (0.35 s): the server reads it no faster than real
    time once the 2 s burst is spent, so the stream takes at least its length less the burst; nothing of it is lost,
    and team globex's call, streamed alongside in real time, gets its finals."""
    victim = victim_call(paced)
    audio = program(tel8k()[2:4], gap_s=1.2, lead_s=0.3)
    recording = Recording([audio.pcm], audio.sample_rate)
    fast = await stream_call(recording, paced.ws_url, "l16", paced.keys["ingest"], metadata=GRANTED, speed=40.0)
    took = time.time() - fast.started  # until the server, having read the stop after all the audio, closed
    assert fast.close_code == 1000, (fast.close_code, fast.close_reason)
    assert took >= audio.duration - BURST_S, (took, audio.duration)
    call = stored(paced, paced.keys["admin"], fast.call_id)
    assert (call["status"], call["endReason"]) == ("completed", "stop")
    assert len(call["transcript"]) >= 2  # both its utterances were heard: pacing delays, it drops nothing
    assert_victim_heard(paced, await victim)


async def test_a_stream_too_far_ahead_of_real_time_is_ended_as_too_fast(paced: Server) -> None:
    """Speech sent in 4 s frames as fast as they go: the first spends the burst and is waited for, the second puts the
    stream 4 s ahead, past ``max_ahead_s`` (3 s): the call ends as ``too_fast``, the peer is told why (close 1008 and
    the reason), what was heard is kept; team globex's call goes on and gets its finals."""
    victim = victim_call(paced)
    audio = program(tel8k()[2:4], gap_s=1.2, lead_s=0.3)
    call_id = "CA" + uuid.uuid4().hex
    frame = 4 * audio.sample_rate  # 4 s: 64,000 bytes, under ingest.max_frame_bytes
    start = {"callSid": call_id, "sampleRate": audio.sample_rate, "mixType": "mono", "speaker": "customer"}
    sent = 0
    async with connect(f"{paced.ws_url}/v1/ingest/l16") as ws:
        await ws.send(json.dumps({**start, "token": paced.keys["ingest"], **GRANTED}))
        try:
            for offset in range(0, audio.pcm.size, frame):
                await ws.send(audio.pcm[offset : offset + frame].astype("<i2").tobytes())
                sent += 1
            await ws.send(json.dumps({"event": "stop"}))
            await asyncio.wait_for(ws.wait_closed(), 30)
        except ConnectionClosed:
            pass
        code, reason = ws.close_code, ws.close_reason
    assert code == 1008, (code, reason, sent)
    assert "ahead of real time" in reason and "calls.pacing" in reason
    call = stored(paced, paced.keys["admin"], call_id)
    assert (call["status"], call["endReason"]) == ("interrupted", "too_fast")
    assert_victim_heard(paced, await victim)


def test_riva_recognize_of_a_whole_recording_is_batch_work_not_refused(paced: Server) -> None:
    """Riva ``Recognize`` sends 14 s of audio at once, far past ``max_ahead_s``: work meant to run faster than real
    time is a batch-class call, neither paced nor refused, and every utterance of it is recognised."""
    import grpc

    from media_server.riva import riva_asr_pb2 as rasr
    from media_server.riva import riva_asr_pb2_grpc as rasr_grpc
    from media_server.riva.riva_audio_pb2 import LINEAR_PCM

    audio = program(tel8k()[2:4], gap_s=1.2, lead_s=0.3)
    config = rasr.RecognitionConfig(encoding=LINEAR_PCM, sample_rate_hertz=audio.sample_rate, language_code="en-US")
    request = rasr.RecognizeRequest(config=config, audio=audio.pcm.astype("<i2").tobytes())
    with grpc.insecure_channel(paced.grpc_target) as channel:
        stub = rasr_grpc.RivaSpeechRecognitionStub(channel)  # type: ignore[no-untyped-call]
        auth = (("authorization", f"Bearer {paced.keys['ingest']}"),)
        response = stub.Recognize(request, metadata=auth, timeout=120)
    assert len(response.results) >= 2, response
    assert all(r.alternatives[0].transcript for r in response.results)


def test_the_pace_of_a_stream_is_a_burst_then_real_time() -> None:
    """The budget itself, on a clock the test moves: a full burst at once, then as much as time has passed."""
    from media_server.calls.pacing import CallPace
    from media_server.config import PacingSettings

    now = [100.0]
    pace = CallPace(PacingSettings(burst_s=2.0, max_ahead_s=3.0), clock=lambda: now[0])
    pace.took(0, 2.0)
    assert pace.wait_s() == 0.0  # the burst
    pace.took(0, 1.0)
    assert pace.wait_s() == pytest.approx(1.0)  # one second ahead: its next read waits a second
    now[0] += 1.0
    assert pace.wait_s() == 0.0
    pace.took(1, 0.5)  # another channel has a budget of its own
    assert pace.wait_s() == 0.0 and not pace.too_fast
    pace.took(0, 3.5)
    assert pace.too_fast and "more than 3 s ahead" in pace.refusal()  # 3.5 s ahead, past max_ahead_s
    now[0] += 60.0  # a stall: the budget refills to the burst, no further
    fresh = CallPace(PacingSettings(burst_s=2.0), clock=lambda: now[0])
    now[0] += 60.0
    fresh.took(0, 3.0)
    assert fresh.wait_s() == pytest.approx(1.0)
    held = CallPace(PacingSettings(burst_s=2.0, max_held_s=15.0), clock=lambda: now[0])
    held.took(0, 2.5)
    for _ in range(40):  # a sender that keeps the reads waiting: each read waits, then takes as much again
        wait = held.hold()
        assert wait > 0
        now[0] += wait
        held.took(0, wait)
    assert held.too_fast and "held back to real time for more than 15 s" in held.refusal()
    caught_up = CallPace(PacingSettings(burst_s=2.0, max_held_s=15.0), clock=lambda: now[0])
    for _ in range(3):  # catching up after a stall (11 s held back), then real time: its budget comes back
        caught_up.took(0, 8.0)
        for _ in range(10):
            now[0] += caught_up.hold()
            caught_up.took(0, 0.5)
        now[0] += 10.0
        assert caught_up.hold() == 0.0
    assert not caught_up.too_fast
    steady = CallPace(PacingSettings(burst_s=2.0, max_held_s=15.0), clock=lambda: now[0])
    for _ in range(100):  # real time, with a jitter burst now and then: never held for long
        steady.took(0, 0.5)
        now[0] += steady.hold() + 0.5
    assert not steady.too_fast
    off = CallPace(PacingSettings(enabled=False), clock=lambda: now[0])
    off.took(0, 600.0)  # pacing turned off (and batch work): never waits, never refused
    assert off.wait_s() == 0.0 and not off.too_fast
