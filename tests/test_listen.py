"""Listen-in over WebRTC: a real aiortc peer receives a live call's audio; roles, consent and the audit log.

The call comes in over the L16 websocket ingest, paced in real time, with known loud and silent stretches
per channel, so that what the listener hears can be told apart: the rep (consent granted) speaks a tone
in the middle of the call, the customer (consent denied) plays a loud tone throughout and must never be
heard. The server runs in this process (tests/inprocess.py) so that aiortc can offer the loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media_server.client.stream import StreamResult, stream_call
from media_server.client.wav import Recording
from tests.inprocess import InProcessServer, inprocess_server, loopback_ice

RATE = 16000
EDGE_FRAMES = 5  # frames (20 ms) at each edge of a tone that the codec may smear


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with loopback_ice(), inprocess_server(tmp_path_factory.mktemp("listen"), {"ingest": {"idle_timeout_s": 4}}) as s:
        yield s


def tone(seconds: float, amplitude: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype=np.int16)


@dataclass
class Listener:
    pc: RTCPeerConnection
    location: str
    levels: list[tuple[float, float]] = field(default_factory=list)  # (wall clock, RMS of a received frame)
    reader: asyncio.Task[None] | None = None

    def level(self, since: float, until: float) -> float:
        values = [v for t, v in self.levels if since <= t <= until]
        assert values, f"no audio received between {since:.2f} and {until:.2f}"
        return float(np.median(values))

    def onset(self, after: float, threshold: float = 0.05) -> float | None:
        return next((t for t, v in self.levels if t >= after and v > threshold), None)


async def _read(track: MediaStreamTrack, listener: Listener) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            pcm = frame.to_ndarray().astype(np.float64) / 32768
            listener.levels.append((time.time(), float(np.sqrt(np.mean(pcm**2)))))


async def post_listen(
    srv: InProcessServer, call_id: str, key: str, channel: str = "mixed"
) -> tuple[httpx.Response, RTCPeerConnection]:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        response = await http.post(
            f"/v1/calls/{call_id}/listen",
            params={"channel": channel},
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key}"},
        )
    return response, pc


async def listen(srv: InProcessServer, call_id: str, key: str, channel: str = "mixed") -> Listener:
    response, pc = await post_listen(srv, call_id, key, channel)
    assert response.status_code == 201, response.text
    listener = Listener(pc, response.headers["location"])

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        listener.reader = asyncio.ensure_future(_read(track, listener))

    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return listener


async def wait_live(srv: InProcessServer, call_id: str) -> None:
    async with asyncio.timeout(10):
        while call_id not in srv.app.state.services.calls.live:
            await asyncio.sleep(0.05)


async def audit(srv: InProcessServer, key: str, call_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        return await http.get(
            "/v1/audit/listens", params={"callId": call_id}, headers={"Authorization": f"Bearer {key}"}
        )


def start_call(
    srv: InProcessServer, rep: np.ndarray, customer: np.ndarray, **meta: str
) -> tuple[str, asyncio.Task[StreamResult]]:
    call_id = f"listen-{uuid.uuid4()}"
    n = max(len(rep), len(customer))
    recording = Recording([np.pad(rep, (0, n - len(rep))), np.pad(customer, (0, n - len(customer)))], RATE)
    metadata = {"repName": "Dana", "repConsent": "granted", "customerConsent": "denied", **meta}
    task = asyncio.create_task(stream_call(recording, srv.ws_url, "l16", srv.keys["ingest"], call_id, metadata))
    return call_id, task


async def test_a_manager_hears_the_consenting_rep_and_never_the_customer_without_consent(srv: InProcessServer) -> None:
    rep = np.concatenate([silence(3.0), tone(2.0, 0.3), silence(2.0)])
    customer = tone(7.0, 0.5, freq=300)  # loud all along, and denied
    call_id, streaming = start_call(srv, rep, customer)
    await wait_live(srv, call_id)
    listener = await listen(srv, call_id, srv.keys["manager"])
    await streaming
    # What the listener heard, frame by frame in the order it arrived: quiet, the rep's tone, quiet again; the
    # customer, loud all along but denied, never. (Levels in windows timed from the tone, and how late the tone is
    # heard: benchmarks/listen_levels.py.)
    heard = [level for _, level in listener.levels]
    loud = [i for i, level in enumerate(heard) if level > 0.05]
    assert loud, "the rep's tone was never heard"
    first, last = loud[0], loud[-1]
    tone_frames = last - first + 1  # 20 ms each
    assert tone_frames >= 50, f"the 2 s tone was heard for {tone_frames} frames only"
    assert min(heard[first + EDGE_FRAMES : last - EDGE_FRAMES]) > 0.05  # the rep is heard without a break
    before, after = heard[: max(0, first - EDGE_FRAMES)], heard[last + EDGE_FRAMES :]
    assert len(before) >= 25 and len(after) >= 25, "the silence around the tone was not heard"
    assert max(before) < 0.005 and max(after) < 0.005  # the customer, who did not consent, never is
    print(f"listen-in: {tone_frames} frames of the rep's tone, {len(before)} + {len(after)} quiet frames around it")
    # The call ended: the listen-in ended with it, and the audit log says who listened, when and how long.
    async with asyncio.timeout(20):
        while srv.app.state.listen.sessions:
            await asyncio.sleep(0.1)
    response = await audit(srv, srv.keys["admin"], call_id)
    assert response.status_code == 200
    (entry,) = response.json()["listens"]
    assert entry["role"] == "manager" and entry["channel"] == "mixed" and entry["endReason"] == "call_ended"
    assert 5.0 < entry["duration"] < 20.0
    await listener.pc.close()


async def test_roles_keys_and_consent_decide_who_may_listen(srv: InProcessServer) -> None:
    call_id, streaming = start_call(srv, tone(4.0, 0.2), tone(4.0, 0.2))
    await wait_live(srv, call_id)
    try:
        cases = [
            (srv.keys["rep"], "mixed", 403),  # a rep may not listen in
            (srv.keys["ingest"], "mixed", 403),
            ("msk_" + "x" * 40, "mixed", 401),  # a wrong key
            (srv.keys["other"], "mixed", 404),  # another team's call does not exist for it
            (srv.keys["manager"], "1", 403),  # the customer's channel: no consent, never audible
            (srv.keys["manager"], "7", 400),
        ]
        for key, channel, status in cases:
            response, pc = await post_listen(srv, call_id, key, channel)
            await pc.close()
            assert response.status_code == status, (channel, response.text)
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
            auth = {"Authorization": f"Bearer {srv.keys['manager']}"}
            wrong_type = await http.post(f"/v1/calls/{call_id}/listen", content="v=0", headers=auth)
            assert wrong_type.status_code == 415
            bad = await http.post(
                f"/v1/calls/{call_id}/listen", content="hello", headers={**auth, "Content-Type": "application/sdp"}
            )
            assert bad.status_code == 400
        # The rep's own channel alone may be heard; DELETE ends it and the audit log has the entry.
        listener = await listen(srv, call_id, srv.keys["admin"], "0")
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
            auth = {"Authorization": f"Bearer {srv.keys['rep']}"}
            assert (await http.delete(listener.location, headers=auth)).status_code == 403
            auth = {"Authorization": f"Bearer {srv.keys['admin']}"}
            assert (await http.delete(listener.location, headers=auth)).status_code == 200
            assert (await http.delete(listener.location, headers=auth)).status_code == 404
        await listener.pc.close()
        assert (await audit(srv, srv.keys["rep"], call_id)).status_code == 403
        (entry,) = (await audit(srv, srv.keys["manager"], call_id)).json()["listens"]
        assert entry["role"] == "admin" and entry["channel"] == "0" and entry["endReason"] == "stopped"
        assert 0.5 < entry["duration"] < 10
    finally:
        await streaming
    # A stored call cannot be listened to; an unknown one does not exist.
    async with asyncio.timeout(20):
        while call_id in srv.app.state.services.calls.live:
            await asyncio.sleep(0.1)
    for target, status in ((call_id, 409), ("no-such-call", 404)):
        response, pc = await post_listen(srv, target, srv.keys["manager"])
        await pc.close()
        assert response.status_code == status, response.text
