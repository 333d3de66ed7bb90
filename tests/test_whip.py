"""WHIP ingest (RFC 9725): real WebRTC peers (aiortc) publish speech to a real server over HTTP + ICE + DTLS-SRTP.

The server runs in this process (``create_app`` under uvicorn, in a thread with its own event loop) so that
both peers can be made to offer the loopback address: aioice leaves 127.0.0.1 out of its host candidates,
and a machine may have no other interface (``tests/inprocess.py``'s ``loopback_ice`` patches that).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import queue
import threading
import time
import urllib.parse
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aioice import stun
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from media_server.ingest.whip.manager import WhipManager, check_offer, merge_metadata
from tests.conftest import EventLog, collect_events
from tests.inprocess import CHROMIUM_FLAGS, InProcessServer, inprocess_server, loopback_ice, require_chromium
from tests.speech import Program, program, tel8k, wer

ENDPOINT = "/v1/ingest/whip"


@dataclass
class WhipServer(InProcessServer):
    @property
    def whip(self) -> WhipManager:
        manager: WhipManager = self.app.state.whip
        return manager


@pytest.fixture(scope="module")
def whip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WhipServer]:
    settings = {"ingest": {"idle_timeout_s": 4, "start_timeout_s": 10}}
    with loopback_ice(), inprocess_server(tmp_path_factory.mktemp("whip"), settings, ("admin", "ingest", "rep")) as srv:
        yield WhipServer(srv.url, srv.ws_url, srv.keys, srv.app)


def write_wav(path: Path, speech: Program) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(speech.sample_rate)
        w.writeframes(speech.pcm.astype("<i2").tobytes())
    return path


@dataclass
class Publisher:
    """An aiortc peer publishing a WAV file over WHIP, as a WebRTC softphone would."""

    pc: RTCPeerConnection
    player: MediaPlayer
    location: str
    response: httpx.Response


async def publish(srv: WhipServer, wav: Path, params: dict[str, str], key: str | None = None) -> Publisher:
    pc = RTCPeerConnection()
    player = MediaPlayer(str(wav))  # real time, as a microphone would
    assert player.audio is not None
    pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        response = await http.post(
            ENDPOINT,
            params=params,
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {key or srv.keys['ingest']}"},
        )
    assert response.status_code == 201, response.text
    await pc.setRemoteDescription(RTCSessionDescription(response.text, "answer"))
    return Publisher(pc, player, response.headers["location"], response)


async def delete(srv: WhipServer, location: str, key: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        return await http.delete(location, headers={"Authorization": f"Bearer {key or srv.keys['ingest']}"})


async def subscribe(srv: WhipServer, call_id: str) -> asyncio.Task[EventLog]:
    url = f"{srv.ws_url}/v1/calls/{call_id}/events?token={srv.keys['admin']}"
    task = asyncio.create_task(collect_events(url, timeout=150))
    await asyncio.sleep(0.3)  # subscribed before the call starts
    return task


async def stored(srv: WhipServer, call_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        response = await http.get(f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {srv.keys['admin']}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def same_length(a: Program, b: Program) -> tuple[Program, Program]:
    """Microphones send until hung up: a leg whose file ended early would be ended by the idle timeout."""
    n = max(len(a.pcm), len(b.pcm))
    return tuple(replace(p, pcm=np.pad(p.pcm, (0, n - len(p.pcm)))) for p in (a, b))  # type: ignore[return-value]


async def wait_played(*peers: Publisher, timeout: float = 60) -> None:
    """Until every peer's file has been sent (MediaPlayer paces it in real time), and a moment for the last packets."""
    async with asyncio.timeout(timeout):
        while any(p.player.audio is not None and p.player.audio.readyState != "ended" for p in peers):
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)


def finals(log: EventLog, speaker: str | None = None) -> list[str]:
    return [t["text"] for t in log.transcripts(final=True) if speaker is None or t["speaker"] == speaker]


@pytest.fixture
async def offer_sdp() -> AsyncIterator[str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    yield pc.localDescription.sdp
    await pc.close()


# -- pure checks -------------------------------------------------------------------------------------


def test_offer_checks() -> None:
    from media_server.ingest.whip.manager import WhipError

    for bad, status in (("hello", 400), ("v=0\r\ns=-\r\n", 400), ("v=0\r\nm=video 9 X 96\r\n", 400)):
        with pytest.raises(WhipError) as info:
            check_offer(bad)
        assert info.value.status == status
    with pytest.raises(WhipError) as info:
        check_offer("v=0\r\nm=audio 9 X 111\r\nm=audio 9 X 111\r\n")
    assert info.value.status == 406
    check_offer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")


def test_a_joining_leg_adds_to_what_the_call_knows() -> None:
    from media_server.calls.metadata import parse_metadata

    first = parse_metadata({"repName": "Dana", "repConsent": "granted", "crm": "1"})
    second = parse_metadata({"customerConsent": "granted", "customerPhone": "+15551230000"})
    merged = merge_metadata(first, second)
    assert (merged.rep.name, merged.rep.consent.value) == ("Dana", "granted")
    assert (merged.customer.phone, merged.customer.consent.value) == ("+15551230000", "granted")
    assert merged.extra == {"crm": "1"}


# -- HTTP behaviour --------------------------------------------------------------------------------------


async def test_http_errors_and_preflight(whip_server: WhipServer, offer_sdp: str) -> None:
    srv = whip_server
    sdp = {"Content-Type": "application/sdp"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        preflight = await http.options(
            ENDPOINT,
            headers={
                "Origin": "https://softphone.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["accept-post"] == "application/sdp"
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

        for headers in ({}, {"Authorization": "Bearer msk_not_a_real_key"}):
            refused = await http.post(ENDPOINT, content=offer_sdp, headers={**sdp, **headers})
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {srv.keys['ingest']}"}
        wrong_type = await http.post(ENDPOINT, content=offer_sdp, headers={**auth, "Content-Type": "text/plain"})
        assert wrong_type.status_code == 415 and wrong_type.headers["accept-post"] == "application/sdp"
        for body in ("not sdp at all", "v=0\r\ns=-\r\nt=0 0\r\n", offer_sdp.replace("a=ice-ufrag", "a=x-ufrag")):
            malformed = await http.post(ENDPOINT, content=body, headers={**auth, **sdp})
            assert malformed.status_code == 400, (body[:40], malformed.text)
        bad_role = await http.post(ENDPOINT, params={"role": "boss"}, content=offer_sdp, headers={**auth, **sdp})
        assert bad_role.status_code == 400 and "role" in bad_role.text
        assert (await http.get(ENDPOINT, headers=auth)).status_code == 405
        assert (await http.delete(f"{ENDPOINT}/nope", headers=auth)).status_code == 404
        assert (await http.patch(f"{ENDPOINT}/nope", headers=auth)).status_code == 404

        srv.whip.max_sessions = 0
        try:
            full = await http.post(ENDPOINT, content=offer_sdp, headers={**auth, **sdp})
        finally:
            srv.whip.max_sessions = 200
        assert full.status_code == 503 and int(full.headers["retry-after"]) > 0


async def test_session_url_patch_delete_and_other_teams(whip_server: WhipServer, offer_sdp: str) -> None:
    srv = whip_server
    call_id = f"whip-{uuid.uuid4()}"
    auth = {"Authorization": f"Bearer {srv.keys['ingest']}"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
        created = await http.post(  # the call and the participant as X- headers, free-form metadata in the query
            ENDPOINT,
            params={"crmId": "opp-42"},
            content=offer_sdp,
            headers={
                **auth,
                "Content-Type": "application/sdp",
                "X-Call-Id": call_id,
                "X-Role": "rep",
                "X-Rep-Name": "Dana",
                "X-Rep-Consent": "granted",
                "X-Customer-Consent": "granted",  # (free-form metadata is kept only with everyone's consent)
                "X-Forwarded-For": "203.0.113.9",
            },
        )
        assert created.status_code == 201, created.text
        assert created.headers["content-type"].startswith("application/sdp")
        assert "a=recvonly" in created.text and "a=candidate:" in created.text
        assert created.headers["etag"].startswith('"') and created.headers["x-call-id"] == call_id
        location = created.headers["location"]
        assert location.startswith(f"{ENDPOINT}/") and len(location) > len(ENDPOINT) + 20
        # Another team's key does not see the session; PATCH (trickle/restart) is not supported.
        other = {"Authorization": f"Bearer {srv.keys['other']}"}
        assert (await http.delete(location, headers=other)).status_code == 404
        patched = await http.patch(
            location,
            content="a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
            headers={**auth, "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": created.headers["etag"]},
        )
        assert patched.status_code == 501
        assert (await http.get(location, headers=auth)).status_code == 405
        # The same role again on a live call is a conflict.
        again = await http.post(
            ENDPOINT,
            params={"callId": call_id, "role": "rep"},
            content=offer_sdp,
            headers={**auth, "Content-Type": "application/sdp"},
        )
        assert again.status_code == 409, again.text
        deleted = await http.delete(location, headers=auth)
        assert deleted.status_code == 200
        assert (await http.delete(location, headers=auth)).status_code == 404
    call = await stored(srv, call_id)
    assert (call["status"], call["endReason"], call["source"]) == ("completed", "whip_delete", "whip")
    assert call["metadata"] == {"crmId": "opp-42"}, "X-Forwarded-For and the like are not call metadata"
    assert next(p for p in call["participants"] if p["role"] == "rep")["name"] == "Dana"


async def test_over_the_servers_call_limit_a_new_call_gets_503_with_retry_after(
    whip_server: WhipServer, offer_sdp: str
) -> None:
    """``calls.max_live`` counts the calls of every protocol: a leg that would open one more is refused (and its
    peer connection closed); a leg that joins a live call opens none, so it is let in."""
    srv = whip_server
    calls = srv.app.state.services.calls
    headers = {"Authorization": f"Bearer {srv.keys['ingest']}", "Content-Type": "application/sdp"}
    held, refused_id = f"whip-{uuid.uuid4()}", f"whip-{uuid.uuid4()}"
    limit = calls.max_live
    calls.max_live = 1
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=20) as http:
            first = await http.post(ENDPOINT, params={"callId": held}, content=offer_sdp, headers=headers)
            assert first.status_code == 201, first.text
            full = await http.post(ENDPOINT, params={"callId": refused_id}, content=offer_sdp, headers=headers)
            assert full.status_code == 503, full.text
            assert full.headers["retry-after"] == str(calls.retry_after_s)
            assert "calls.max_live" in full.text
            assert len(srv.whip.sessions) == 1, "the refused leg's session is gone"
            params = {"callId": held, "role": "customer"}
            joined = await http.post(ENDPOINT, params=params, content=offer_sdp, headers=headers)
            assert joined.status_code == 201, joined.text
            for location in (first.headers["location"], joined.headers["location"]):
                assert (await http.delete(location, headers=headers)).status_code == 200
            missing = await http.get(
                f"/v1/calls/{refused_id}", headers={"Authorization": f"Bearer {srv.keys['admin']}"}
            )
            assert missing.status_code == 404, "no call was opened for the refused leg"
    finally:
        calls.max_live = limit
    call = await stored(srv, held)
    assert (call["status"], call["endReason"]) == ("completed", "whip_delete")


# -- real media ----------------------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_aiortc_peer_publishes_speech_that_is_transcribed_live(whip_server: WhipServer, tmp_path: Path) -> None:
    srv = whip_server
    speech = program(tel8k()[:3])
    refs = [u.ref for _, _, u in speech.spans]
    call_id = f"whip-{uuid.uuid4()}"
    events = await subscribe(srv, call_id)
    params = {"callId": call_id, "role": "rep", "repName": "Dana", "repConsent": "granted"}
    peer = await publish(srv, write_wav(tmp_path / "rep.wav", speech), params)
    try:
        await wait_played(peer)
        deleted_at = time.time()
        response = await delete(srv, peer.location)
        assert response.status_code == 200
    finally:
        await peer.pc.close()
    log = await events

    types = [e["type"] for e in log.events]
    assert types[0] == "call_started" and types[-1] == "call_ended", types
    started_event = log.events[0]["callStarted"]
    assert started_event["source"] == "whip"
    assert [(c["index"], c["speaker"], c["sampleRate"], c["transcribed"]) for c in started_event["channels"]] == [
        (0, "rep", 16000, True)
    ]
    live = [e for e, at in zip(log.events, log.arrivals, strict=True) if e["type"] == "transcript" and at < deleted_at]
    assert any(e["transcript"]["isFinal"] for e in live), "finals arrive while the call is live, before DELETE"
    rate = wer(refs, finals(log))
    print(f"WHIP (aiortc, Opus 48 kHz) WER {rate:.3f}: {finals(log)}")
    assert rate < 0.2, (rate, finals(log))
    ended = log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("completed", "whip_delete")

    call = await stored(srv, call_id)
    assert call["source"] == "whip" and call["status"] == "completed" and call["team"] == "acme"
    assert [s["text"] for s in call["transcript"]] == finals(log)
    rep = next(p for p in call["participants"] if p["role"] == "rep")
    assert (rep["name"], rep["consent"]) == ("Dana", "granted")


@pytest.mark.e2e
async def test_two_legs_make_one_call_with_two_channels(whip_server: WhipServer, tmp_path: Path) -> None:
    srv = whip_server
    rep_speech, customer_speech = same_length(program(tel8k()[3:5]), program(tel8k()[5:7], lead_s=1.0))
    call_id = f"whip-{uuid.uuid4()}"
    events = await subscribe(srv, call_id)
    rep = await publish(
        srv,
        write_wav(tmp_path / "rep.wav", rep_speech),
        {"callId": call_id, "role": "rep", "repName": "Dana", "repConsent": "granted"},
    )
    customer = await publish(
        srv,
        write_wav(tmp_path / "customer.wav", customer_speech),
        {"callId": call_id, "role": "customer", "customerConsent": "granted", "customerPhone": "+15551230000"},
        key=srv.keys["rep"],  # a rep's softphone key may publish too
    )
    try:
        await wait_played(rep, customer)
        assert (await delete(srv, rep.location)).status_code == 200
        assert srv.app.state.services.calls.live.get(call_id) is not None, "the customer leg keeps the call"
        assert (await delete(srv, customer.location)).status_code == 200
    finally:
        await rep.pc.close()
        await customer.pc.close()
    log = await events

    updated = log.of_type("call_updated")[0]["callUpdated"]
    assert sorted((c["index"], c["speaker"], c["transcribed"]) for c in updated["channels"]) == [
        (0, "rep", True),
        (1, "customer", True),
    ]
    rep_rate = wer([u.ref for _, _, u in rep_speech.spans], finals(log, "rep"))
    customer_rate = wer([u.ref for _, _, u in customer_speech.spans], finals(log, "customer"))
    print(f"WHIP two legs WER rep {rep_rate:.3f} customer {customer_rate:.3f}")
    assert rep_rate < 0.2 and customer_rate < 0.2, (finals(log, "rep"), finals(log, "customer"))
    call = await stored(srv, call_id)
    assert {s["channel"] for s in call["transcript"]} == {0, 1}
    assert {p["role"]: p["consent"] for p in call["participants"]} == {"rep": "granted", "customer": "granted"}


@pytest.mark.e2e
async def test_peer_that_vanishes_ends_the_call_as_interrupted(whip_server: WhipServer, tmp_path: Path) -> None:
    srv = whip_server
    utt = tel8k()[0]
    speech = program([utt])
    call_id = f"whip-{uuid.uuid4()}"
    events = await subscribe(srv, call_id)
    peer = await publish(
        srv,
        write_wav(tmp_path / "gone.wav", speech),
        {"callId": call_id, "customerConsent": "yes", "repConsent": "yes"},
    )
    await wait_played(peer)
    await peer.pc.close()  # no DELETE: the server notices on its own (no audio, then consent freshness)
    log = await events
    ended = log.events[-1]["callEnded"]
    assert ended["status"] == "interrupted" and ended["reason"] in ("idle_timeout", "ice_failed", "disconnected")
    rate = wer([utt.ref], finals(log))
    print(f"WHIP vanished peer: {ended['reason']}, WER {rate:.3f}")
    assert rate < 0.2, finals(log)
    assert not srv.whip.sessions


def test_decoded_frames_are_mixed_down_to_mono() -> None:
    """Opus in WebRTC always decodes to stereo s16: mixed down and scaled to [-1, 1]."""
    import av

    from media_server.ingest.whip.manager import mono_float

    frame = av.AudioFrame.from_ndarray(
        np.array([[16384, 0, -16384, -32768]], dtype=np.int16), format="s16", layout="stereo"
    )
    frame.sample_rate = 48000
    assert mono_float(frame).tolist() == [0.25, -0.75]


# -- a browser ----------------------------------------------------------------------------------------------

# The publishing page, as a WebRTC softphone would do it: served from another origin than the server, so that
# the POST goes through CORS. It reports what happened to the page's own server.
PUBLISH_PAGE = """<!doctype html><meta charset="utf-8"><title>WHIP publish</title>
<script>
const q = new URLSearchParams(location.search);
const sleep = ms => new Promise(r => setTimeout(r, ms));
const report = result => fetch("/report", {method: "POST", body: JSON.stringify(result)});
(async () => {
  try {
    const stream = await navigator.mediaDevices.getUserMedia(
      {audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    const pc = new RTCPeerConnection();
    pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly", streams: [stream]});
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(done => {  // no trickle: the offer carries every candidate
      if (pc.iceGatheringState === "complete") done();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      setTimeout(done, 3000);
    });
    const auth = {Authorization: "Bearer " + q.get("key")};
    const posted = await fetch(q.get("whip"), {method: "POST", body: pc.localDescription.sdp,
      headers: {...auth, "Content-Type": "application/sdp"}});
    const answer = await posted.text();
    if (posted.status !== 201) return report({status: posted.status, body: answer});
    const session = new URL(posted.headers.get("Location"), q.get("whip")).href;
    await pc.setRemoteDescription({type: "answer", sdp: answer});
    for (let i = 0; i < 100 && pc.connectionState !== "connected"; i++) await sleep(50);
    const connected = pc.connectionState;
    await sleep(Number(q.get("seconds")) * 1000);
    const deleted = await fetch(session, {method: "DELETE", headers: auth});
    report({status: posted.status, etag: posted.headers.get("ETag"), session, connected, deleted: deleted.status});
    pc.close();
  } catch (e) { report({error: String(e)}); }
})();
</script>"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    reports: queue.Queue[dict[str, Any]]

    def do_GET(self) -> None:
        body = PUBLISH_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.reports.put(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.e2e
async def test_headless_chromium_publishes_its_microphone(whip_server: WhipServer, tmp_path: Path) -> None:
    chromium = require_chromium()
    srv = whip_server
    speech = program(tel8k()[:3])
    refs = [u.ref for _, _, u in speech.spans]
    wav = write_wav(tmp_path / "mic.wav", speech)
    reports: queue.Queue[dict[str, Any]] = queue.Queue()
    handler = type("Handler", (_PageHandler,), {"reports": reports})
    pages = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    call_id = f"whip-{uuid.uuid4()}"
    whip_url = f"{srv.url}{ENDPOINT}?callId={call_id}&role=rep&repConsent=granted&repName=Dana"
    page = f"http://127.0.0.1:{pages.server_address[1]}/?" + urllib.parse.urlencode(
        {"whip": whip_url, "key": srv.keys["rep"], "seconds": f"{speech.duration + 1.0:.1f}"}
    )
    events = await subscribe(srv, call_id)
    chromium_log = (tmp_path / "chromium.log").open("wb")
    browser = await asyncio.create_subprocess_exec(
        *[
            chromium,
            *CHROMIUM_FLAGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
            f"--user-data-dir={tmp_path / 'profile'}",
            page,
        ],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=chromium_log,
    )
    try:
        report = await asyncio.to_thread(reports.get, True, speech.duration + 60)
    finally:
        browser.terminate()
        await asyncio.wait_for(browser.wait(), 10)
        chromium_log.close()
        pages.shutdown()
    assert report.get("status") == 201, report
    assert report["connected"] == "connected" and report["deleted"] == 200, report
    assert report["etag"] and report["session"].startswith(f"{srv.url}{ENDPOINT}/")
    log = await events
    rate = wer(refs, finals(log))
    print(f"WHIP (headless Chromium, fake microphone, Opus) WER {rate:.3f}: {finals(log)}")
    assert rate < 0.2, (rate, finals(log))
    ended = log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("completed", "whip_delete")


async def test_video_in_the_offer_is_declined_and_audio_taken(whip_server: WhipServer) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    auth = {"Authorization": f"Bearer {whip_server.keys['ingest']}", "Content-Type": "application/sdp"}
    async with httpx.AsyncClient(base_url=whip_server.url, timeout=20) as http:
        created = await http.post(ENDPOINT, content=pc.localDescription.sdp, headers=auth)
        assert created.status_code == 201, created.text
        audio, video = created.text.split("m=video")
        assert "a=recvonly" in audio and "a=inactive" in video
        assert (await http.delete(created.headers["location"], headers=auth)).status_code == 200
    await pc.close()


# -- ICE servers -------------------------------------------------------------------------------------------


class _StunServer(asyncio.DatagramProtocol):
    """A STUN server (RFC 5389 Binding) on loopback: answers with the address it saw and counts requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        if request.message_method != stun.Method.BINDING:
            return
        self.requests += 1
        response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id=request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_configured_ice_servers_are_used_and_offered_to_clients(tmp_path: Path, offer_sdp: str) -> None:
    loop = asyncio.get_running_loop()
    transport, stun_server = await loop.create_datagram_endpoint(_StunServer, local_addr=("127.0.0.1", 0))
    stun_port = transport.get_extra_info("sockname")[1]
    settings = {
        "webrtc": {
            "ice_servers": [
                {"urls": [f"stun:127.0.0.1:{stun_port}"]},
                {"urls": ["turn:turn.example.net:3478?transport=udp"], "username": "u1", "credential": 'p"w'},
            ]
        }
    }
    try:
        with loopback_ice(), inprocess_server(tmp_path, settings, ("ingest",)) as srv:
            auth = {"Authorization": f"Bearer {srv.keys['ingest']}", "Content-Type": "application/sdp"}
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
                links = (await http.options(ENDPOINT)).headers.get_list("link")
                created = await http.post(ENDPOINT, content=offer_sdp, headers=auth)
                assert created.status_code == 201, created.text
                assert created.headers.get_list("link") == links
                await http.delete(created.headers["location"], headers=auth)
    finally:
        transport.close()
    assert links == [
        f'<stun:127.0.0.1:{stun_port}>; rel="ice-server"',
        '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u1"; credential="p\\"w"; '
        'credential-type="password"',
    ]
    assert stun_server.requests >= 1  # the server's peer gathered a server-reflexive candidate with it


def test_ice_server_urls_are_checked() -> None:
    from pydantic import ValidationError

    from media_server.config import Settings

    with pytest.raises(ValidationError, match="stun:, turn: or turns:"):
        Settings.model_validate({"webrtc": {"ice_servers": [{"urls": ["http://stun.example.net"]}]}})
