"""``GET /v1/me`` and ``GET /v1/live``: what the dashboard's sign-in and wall are built on, against a real server."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from tests.conftest import Server
from tests.speech import program, tel8k

pytestmark = pytest.mark.e2e


def test_me_says_what_a_key_may_do(server: Server) -> None:
    expected = {
        "admin": {"read": True, "listen": True, "delete": True, "audit": True},
        "rep": {"read": True, "listen": False, "delete": False, "audit": False},
        "ingest": {"read": False, "listen": False, "delete": False, "audit": False},
    }
    for role, can in expected.items():
        with server.http(server.keys[role]) as http:
            me = http.get("/v1/me").json()
        assert (me["team"], me["role"]) == ("acme", role)
        assert {k: me["can"][k] for k in can} == can
    with server.http("msk_" + "n" * 43) as http:
        assert http.get("/v1/me").status_code == 401


async def test_the_live_list_and_the_event_stream_after_it_tell_the_whole_story(server: Server) -> None:
    speech = program(tel8k()[:2], gap_s=1.0, lead_s=0.3)
    call_id = "CA" + uuid.uuid4().hex
    meta = {"repName": "Dana", "repConsent": "granted", "customerPhone": "+15550100", "customerConsent": "denied"}
    recording = Recording([speech.pcm, np.zeros_like(speech.pcm)], speech.sample_rate)
    streaming = asyncio.create_task(
        stream_call(recording, server.ws_url, "twilio", server.keys["ingest"], call_id, meta, speed=2.0)
    )
    auth = {"Authorization": f"Bearer {server.keys['admin']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as http:
        for _ in range(100):
            live = (await http.get("/v1/live")).json()
            mine = [c for c in live["calls"] if c["id"] == call_id]
            if mine:
                break
            await asyncio.sleep(0.05)
        (call,) = mine
        assert call["source"] == "twilio" and call["talkRatio"] is None
        consent = {p["role"]: (p["consent"], p["transcribed"]) for p in call["participants"]}
        assert consent == {"rep": ("granted", True), "customer": ("denied", False)}
        # The customer did not consent: no identity of theirs is shown.
        assert [p["phone"] for p in call["participants"] if p["role"] == "customer"] == [""]
        other = {"Authorization": f"Bearer {server.keys['other']}"}
        assert call_id not in [c["id"] for c in (await http.get("/v1/live", headers=other)).json()["calls"]]

        # Everything after the snapshot arrives on the team stream, nothing before it again.
        url = f"{server.ws_url}/v1/events?token={server.keys['admin']}&after={live['lastEventId']}"
        seen = []
        async with connect(url) as ws:
            async with asyncio.timeout(60):
                async for raw in ws:
                    event = json.loads(raw)
                    if event["callId"] != call_id:
                        continue
                    seen.append(event)
                    if event["type"] == "transcript" and event["transcript"]["isFinal"]:
                        later = [c for c in (await http.get("/v1/live")).json()["calls"] if c["id"] == call_id]
                        if later:
                            # The customer is not heard (no consent): a talk ratio would mean nothing.
                            assert later[0]["talkTime"]["rep"] > 0 and later[0]["talkRatio"] is None
                    if event["type"] == "call_ended":
                        break
        assert all(int(e["id"]) > live["lastEventId"] for e in seen)
        assert "call_started" not in [e["type"] for e in seen]
        assert any(e["type"] == "transcript" and e["transcript"]["isFinal"] for e in seen)
        await streaming
        assert call_id not in [c["id"] for c in (await http.get("/v1/live")).json()["calls"]]
