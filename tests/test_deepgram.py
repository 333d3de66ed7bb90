"""Deepgram-compatible streaming (``/v1/listen``): Deepgram's own Python SDK, unmodified, against a real server.

The SDK is pointed at the server by its ``environment`` (the same object that names api.deepgram.com), streams
real speech paced at twice real time, and parses every message with its own response types. The pure parts of
the protocol (query, audio, message shapes) are tested without a server at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from media_server.calls.lifecycle import CallEnd
from media_server.calls.metadata import MetadataError, parse_metadata
from media_server.client.wav import Recording
from media_server.codecs.g711 import ulaw_encode
from media_server.config import CompatSettings
from media_server.ingest.deepgram import PROTOCOL as DEEPGRAM
from media_server.ingest.deepgram.audio import AudioDecoder, AudioError
from media_server.ingest.deepgram.messages import ModelInfo, metadata_message, plain, results_message
from media_server.ingest.deepgram.options import ListenError, parse_listen_query, redaction_types
from media_server.v1 import events_pb2 as pb
from tests.conftest import Server
from tests.encoded import encode
from tests.local_services import local_http
from tests.speech import program, stereo, tel8k, wer

pytestmark = pytest.mark.e2e

SPEED = 2.0  # twice real time: the same audio, the test waits less
CHUNK_S = 0.1  # audio per message, as Deepgram suggests (20-250 ms)


# -- the SDK as a client -------------------------------------------------------------------------------


def deepgram(server: Server, key: str) -> AsyncDeepgramClient:
    """The SDK with this server as its environment: the only change a Deepgram client makes."""
    environment = DeepgramClientEnvironment(
        base=server.url, production=server.ws_url, agent=server.ws_url, agent_rest=server.url
    )
    return AsyncDeepgramClient(api_key=key, environment=environment)


@dataclass
class Heard:
    """What the client received, with arrival times (monotonic), and how the server closed."""

    messages: list[Any] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    def results(self, final: bool | None = None) -> list[ListenV1Results]:
        out = self.of(ListenV1Results)
        return out if final is None else [r for r in out if r.is_final == final]


async def _receive(socket: AsyncV1SocketClient, heard: Heard) -> None:
    try:
        async for message in socket:
            heard.messages.append(message)
            heard.arrivals.append(time.monotonic())
    except ConnectionClosed:
        pass  # closed with an error code: recorded below
    ws = socket._websocket  # the SDK keeps the websocket; its close frame is what Deepgram's docs describe
    heard.close_code, heard.close_reason = ws.close_code, ws.close_reason or ""


@asynccontextmanager
async def listening(server: Server, key: str | None = None, **params: Any) -> AsyncIterator[tuple[Any, Heard]]:
    """A live stream opened by the SDK, its messages collected in the background until the server closes it."""
    params.setdefault("model", "nova-3")
    async with deepgram(server, key or server.keys["ingest"]).listen.v1.connect(**params) as socket:
        heard = Heard()
        reader = asyncio.create_task(_receive(socket, heard))
        try:
            yield socket, heard
            await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()


async def send_paced(socket: AsyncV1SocketClient, data: bytes, bytes_per_s: int, frame: int = 2) -> float:
    """Send ``data`` in 100 ms messages at SPEED x real time; the monotonic time of audio time 0."""
    step = int(bytes_per_s * CHUNK_S) // frame * frame
    t0 = time.monotonic()
    for i, offset in enumerate(range(0, len(data), step)):
        await socket.send_media(data[offset : offset + step])
        await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_S / SPEED - time.monotonic()))
    return t0


def pcm_bytes(pcm: np.ndarray) -> bytes:
    return pcm.astype("<i2").tobytes()


def new_id() -> str:
    return f"dg-test-{uuid.uuid4().hex[:12]}"


async def stored_call(server: Server, call_id: str, key: str | None = None) -> dict[str, Any]:
    """The stored call, once the server has finished storing it."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {key or server.keys['admin']}"}
    ) as http:
        for _ in range(100):
            response = await http.get(f"/v1/calls/{call_id}")
            if response.status_code == 200 and response.json()["status"] != "live":  # (stored from its start)
                return dict(response.json())
            await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} was not stored: {response.status_code} {response.text}")


def check_words(results: list[ListenV1Results], duration: float, diarized: bool) -> None:
    for r in results:
        for w in r.channel.alternatives[0].words:
            assert 0 <= w.start <= w.end <= duration + 1
            assert 0 < w.confidence <= 1
            assert w.word == w.word.lower()
            if diarized:
                assert isinstance(w.speaker, int) and w.speaker >= 0


# -- a live stream, end to end ---------------------------------------------------------------------------


async def test_sdk_streams_live_and_gets_deepgram_results(server: Server) -> None:
    utts = tel8k()
    prog = program([utts[1], utts[6], utts[5], utts[4]], gap_s=1.6, lead_s=0.4)
    audio = pcm_bytes(prog.pcm)
    call_id = new_id()
    params = dict(
        encoding="linear16",
        sample_rate=8000,
        channels=1,
        interim_results=True,
        utterance_end_ms=1000,
        vad_events=True,
        endpointing=500,
        diarize=True,
        punctuate=True,
        smart_format=True,
        language="en-US",
        keyterm=["Dashwood"],
        tag=["deepgram-test"],
        extra=["rep_name:Dana Rep", "crm_id:42"],
        request_options={"additional_query_parameters": {"call_id": call_id, "no_delay": "true", "future_param": 1}},
    )
    live_ids: list[str] = []
    async with listening(server, **params) as (socket, heard):
        half = len(audio) // 4 * 2  # whole samples
        await send_paced(socket, audio[:half], 16000)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {server.keys['admin']}"}
        ) as http:
            live = (await http.get("/v1/live")).json()
            live_ids = [c["id"] for c in live["calls"]]
        await send_paced(socket, audio[half:], 16000)
        await socket.send_close_stream()

    assert call_id in live_ids, "the stream is a live call while it runs"
    assert heard.close_code == 1000, heard.close_reason
    # Parsed by the SDK's own types; the summary comes last.
    assert isinstance(heard.messages[-1], ListenV1Metadata)
    summary = heard.messages[-1]
    assert summary.request_id == call_id and summary.channels == 1
    assert summary.sha256 == hashlib.sha256(audio).hexdigest()
    assert abs(summary.duration - prog.duration) < 0.01

    finals = heard.results(final=True)
    interims = heard.results(final=False)
    assert finals and interims
    assert all(r.metadata.request_id == call_id and r.channel_index == [0, 1] for r in heard.results())
    texts = [r.channel.alternatives[0].transcript for r in finals if r.channel.alternatives[0].transcript]
    rate = wer([u.ref for _, _, u in prog.spans], texts)
    assert rate <= 0.15, (rate, texts)
    # Interims come before the final of their utterance; each utterance ends at a pause: speech_final.
    first_final = heard.messages.index(finals[0])
    assert any(heard.messages.index(r) < first_final for r in interims)
    spoken = [r for r in finals if r.channel.alternatives[0].transcript]
    assert all(r.speech_final and not r.from_finalize for r in spoken)
    assert any(t[-1] in ".?!" for t in texts), "punctuate=true keeps punctuation"
    check_words(heard.results(), prog.duration, diarized=True)
    # vad_events and utterance_end_ms: one SpeechStarted per utterance, an UtteranceEnd after each pause.
    assert len(heard.of(ListenV1SpeechStarted)) >= len(prog.spans)
    ends = heard.of(ListenV1UtteranceEnd)
    assert len(ends) >= len(prog.spans) - 1
    last_words = {round(r.channel.alternatives[0].words[-1].end, 3) for r in spoken if r.channel.alternatives[0].words}
    assert all(round(e.last_word_end, 3) in last_words for e in ends)
    # Every utterance gets its final (how late: benchmarks/deepgram_latency.py).
    assert all(any(start - 0.5 <= r.start <= end for r in spoken) for start, end, _ in prog.spans)

    stored = await stored_call(server, call_id)
    assert stored["source"] == "deepgram" and stored["status"] == "completed"
    assert wer([u.ref for _, _, u in prog.spans], [s["text"] for s in stored["transcript"]]) <= 0.15
    rep = next(p for p in stored["participants"] if p["role"] == "rep")
    assert rep["name"] == "Dana Rep" and rep["consent"] == "granted"
    assert stored["metadata"]["crm_id"] == "42" and stored["metadata"]["tag"] == "deepgram-test"


async def test_finalize_gives_a_final_from_finalize(server: Server) -> None:
    utt = tel8k()[5]  # "go forward ten meters", streamed at 24 kHz (resampled by the server)
    speech = utt.pcm[: np.flatnonzero(np.abs(utt.pcm) > 1000)[-1] + 1]  # no pause after the last word
    audio24 = Recording([speech], utt.sample_rate).at_rate(24000).channels[0]
    async with listening(server, encoding="linear16", sample_rate=24000, interim_results=False) as (socket, heard):
        await send_paced(socket, pcm_bytes(audio24[: int(0.2 * 24000)]), 48000)
        await socket.send_keep_alive()
        await send_paced(socket, pcm_bytes(audio24[int(0.2 * 24000) :]), 48000)
        await socket.send_finalize()  # no pause after the speech: only Finalize ends the utterance
        for _ in range(100):
            if heard.results(final=True):
                break
            await asyncio.sleep(0.1)
        await socket.send_close_stream()
    (final,) = heard.results(final=True)
    assert final.from_finalize and not final.speech_final
    assert wer([utt.ref], [final.channel.alternatives[0].transcript]) <= 0.25
    assert final.channel.alternatives[0].transcript == final.channel.alternatives[0].transcript.lower()
    assert not heard.results(final=False), "interim_results=false: no interims"
    assert isinstance(heard.messages[-1], ListenV1Metadata) and heard.close_code == 1000


async def test_keepalive_keeps_an_idle_stream_open(server: Server) -> None:
    """The session server's idle timeout is 4 s: KeepAlive holds a stream open past it, silence does not."""
    silence = bytes(int(0.3 * 16000))

    async def kept_alive() -> Heard:
        async with listening(server, encoding="linear16", sample_rate=8000) as (socket, heard):
            await socket.send_media(silence)
            for _ in range(7):
                await asyncio.sleep(1.0)
                await socket.send_keep_alive()
            assert heard.close_code is None, "still open after 7 s of KeepAlive"
            await socket.send_close_stream()
        return heard

    async def left_idle(call_id: str) -> Heard:
        async with listening(
            server,
            encoding="linear16",
            sample_rate=8000,
            request_options={"additional_query_parameters": {"call_id": call_id}},
        ) as (socket, heard):
            await socket.send_media(silence)
        return heard

    async def closed_by_client(call_id: str) -> None:
        params = {"call_id": call_id}
        async with deepgram(server, server.keys["ingest"]).listen.v1.connect(
            model="nova-3", encoding="mulaw", sample_rate=8000, request_options={"additional_query_parameters": params}
        ) as socket:
            await socket.send_media(ulaw_encode(tel8k()[5].pcm[:8000]))

    idle_id, gone_id = new_id(), new_id()
    alive, idle, _ = await asyncio.gather(kept_alive(), left_idle(idle_id), closed_by_client(gone_id))
    assert alive.close_code == 1000 and isinstance(alive.messages[-1], ListenV1Metadata)
    # Closed by the server for going quiet (when: benchmarks/deepgram_latency.py), still with its summary.
    assert idle.close_code == 1011 and idle.close_reason.startswith("NET-0001"), idle.close_reason
    assert isinstance(idle.messages[-1], ListenV1Metadata)
    assert ((await stored_call(server, idle_id))["status"], (await stored_call(server, idle_id))["endReason"]) == (
        "interrupted",
        "idle_timeout",
    )
    gone = await stored_call(server, gone_id)
    assert (gone["status"], gone["endReason"]) == ("interrupted", "disconnected")


async def test_multichannel_transcribes_each_channel(server: Server) -> None:
    utts = tel8k()
    rep, customer = (
        program([utts[5], utts[1]], gap_s=1.0, lead_s=0.3),
        program([utts[6], utts[4]], gap_s=1.0, lead_s=1.2),
    )
    n = max(len(rep.pcm), len(customer.pcm))
    stereo = np.zeros((n, 2), dtype=np.int16)
    stereo[: len(rep.pcm), 0], stereo[: len(customer.pcm), 1] = rep.pcm, customer.pcm
    call_id = new_id()
    async with listening(
        server,
        encoding="mulaw",
        sample_rate=8000,
        channels=2,
        multichannel=True,
        request_options={"additional_query_parameters": {"call_id": call_id}},
    ) as (socket, heard):
        await send_paced(socket, ulaw_encode(stereo.reshape(-1)), 16000, frame=2)
        await socket.send_close_stream()
    rates = {}
    for index, prog in ((0, rep), (1, customer)):
        finals = [r for r in heard.results(final=True) if r.channel_index == [index, 2]]
        rates[index] = wer([u.ref for _, _, u in prog.spans], [r.channel.alternatives[0].transcript for r in finals])
    assert all(r <= 0.2 for r in rates.values()), rates
    assert heard.messages[-1].channels == 2
    stored = await stored_call(server, call_id)
    assert {s["speaker"] for s in stored["transcript"]} == {"rep", "customer"}


async def diarized_channels(server: Server) -> int:
    """How many channels the server has diarized since it started (``/v1/status``)."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.keys['admin']}"}
    ) as http:
        return int((await http.get("/v1/status")).json()["diarization"]["lanesTotal"])


async def test_a_mono_stream_is_diarized_only_when_it_asks_or_says_it_is_mixed(server: Server) -> None:
    """A stream of one voice that asks nothing of speakers costs no diarization, and its words carry no speaker
    (as at Deepgram); ``diarize=true`` or ``speaker=mixed`` diarize it (only ``diarize`` puts speakers in words)."""
    utts = tel8k()
    asks = {"plain": {}, "diarize": {"diarize": "true"}, "mixed": {"speaker": "mixed"}}
    ids = {name: new_id() for name in asks}
    heard: dict[str, Heard] = {}

    async def stream(name: str, pcm: np.ndarray) -> None:
        query = {"call_id": ids[name], **asks[name]}
        async with listening(
            server, encoding="linear16", sample_rate=8000, request_options={"additional_query_parameters": query}
        ) as (socket, got):
            heard[name] = got
            await send_paced(socket, pcm_bytes(np.concatenate([pcm, np.zeros(4000, np.int16)])), 16000)
            await socket.send_close_stream()

    before = await diarized_channels(server)
    await asyncio.gather(*(stream(name, utts[i].pcm) for name, i in (("plain", 5), ("diarize", 1), ("mixed", 6))))
    assert await diarized_channels(server) - before == 2  # diarize and mixed; not plain

    for name, got in heard.items():
        words = [w for r in got.results(final=True) for w in r.channel.alternatives[0].words]
        assert words, name
        if name == "diarize":
            assert all(w.speaker == 0 for w in words), [w.speaker for w in words]
        else:
            assert all(w.speaker is None for w in words), (name, [w.speaker for w in words])
        stored = await stored_call(server, ids[name])
        assert [c["speaker"] for c in stored["channels"]] == ["mixed"]  # consent as before: both parties'
        speakers = {s["speaker"] for s in stored["transcript"]}
        assert speakers == ({"mixed"} if name == "plain" else {"speaker 1"}), (name, speakers)


async def test_consent_denied_gets_no_results_and_nothing_stored(server: Server) -> None:
    call_id = new_id()
    query = {"call_id": call_id, "customer_consent": "denied"}
    async with listening(
        server, encoding="linear16", sample_rate=8000, request_options={"additional_query_parameters": query}
    ) as (socket, heard):
        await send_paced(socket, pcm_bytes(tel8k()[5].pcm), 16000)
        await socket.send_close_stream()
    assert not heard.results()
    summary = heard.messages[-1]
    assert isinstance(summary, ListenV1Metadata)
    assert "consented" in json.dumps(summary.model_extra or summary.dict())
    stored = await stored_call(server, call_id)
    assert stored["transcript"] == []
    customer = next(p for p in stored["participants"] if p["role"] == "customer")
    assert customer["consent"] == "denied" and not customer["transcribed"]


async def test_redact_pci_hides_a_card_number(server: Server) -> None:
    """The team redacts nothing; the stream asks for pci, and the card number never reaches the client."""
    from tests.sales_call import CARD_DIGITS
    from tests.synth import require_flite, speak

    require_flite()
    pcm, rate = speak(
        "For the deposit, the card number is four five five six, seven three seven five, "
        "eight six eight nine, nine eight five five.",
        "slt",
    )
    other = {"Authorization": f"Bearer {server.keys['other']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=other) as http:
        before = (await http.get("/v1/team/config")).json()["config"]
        assert (await http.put("/v1/team/config", json={**before, "redaction": []})).status_code == 200
        try:
            call_id = new_id()
            async with listening(
                server,
                server.keys["other"],
                encoding="linear16",
                sample_rate=rate,
                redact="pci",
                interim_results=True,
                request_options={"additional_query_parameters": {"call_id": call_id}},
            ) as (socket, heard):
                await send_paced(socket, pcm_bytes(np.concatenate([pcm, np.zeros(rate, np.int16)])), rate * 2)
                await socket.send_close_stream()
        finally:
            await http.put("/v1/team/config", json=before)
    said = json.dumps([r.dict() for r in heard.results()])
    assert "[CARD]" in said
    digits = "".join(ch for ch in said if ch.isdigit())
    assert CARD_DIGITS[:8] not in digits and "four five five six seven" not in said.lower()
    stored = await stored_call(server, call_id, server.keys["other"])
    assert any("[CARD]" in s["text"] for s in stored["transcript"])


# -- refusals and bad input ------------------------------------------------------------------------------


async def test_a_wrong_key_is_refused_with_401(server: Server) -> None:
    with pytest.raises(ApiError) as info:
        async with listening(server, "msk_" + "x" * 40, encoding="linear16", sample_rate=8000):
            pass
    assert info.value.status_code == 401
    for headers in ({}, {"Authorization": "Token nonsense"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{server.ws_url}/v1/listen?encoding=linear16&sample_rate=8000", additional_headers=headers
            ):
                pass
        assert refused.value.response.status_code == 401
        assert "API key" in refused.value.response.headers["dg-error"]
    # A key of another team, for this team's call, is refused too.
    with pytest.raises(ApiError) as info:
        async with listening(server, server.keys["other"], encoding="linear16", sample_rate=8000, extra=["team:acme"]):
            pass
    assert info.value.status_code == 403


async def test_browser_subprotocol_key_and_bearer_are_accepted(server: Server) -> None:
    """Browsers cannot set headers: Deepgram's form is Sec-WebSocket-Protocol: token, KEY."""
    url = f"{server.ws_url}/v1/listen?encoding=linear16&sample_rate=16000"
    async with connect(url, subprotocols=["token", server.keys["ingest"]]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "token"
        await ws.send(json.dumps({"type": "CloseStream"}))
        assert json.loads(await ws.recv())["type"] == "Metadata"
    async with connect(url, additional_headers={"Authorization": f"Bearer {server.keys['rep']}"}) as ws:
        await ws.send(json.dumps({"type": "CloseStream"}))
        assert json.loads(await ws.recv())["type"] == "Metadata"


async def test_a_stream_over_capacity_is_refused_with_503_and_retry_after(tmp_path: Path) -> None:
    """The server holds ``calls.max_live`` calls: the handshake is refused with 503 and ``Retry-After`` (the SDK
    raises it as ``ApiError``, as for Deepgram's own refusals); once a call ends, the same stream is taken. In this
    process, without the model: both parties deny consent, so nothing is transcribed."""
    assert DEEPGRAM.router is not None
    async with local_http(tmp_path, [DEEPGRAM.router]) as local:
        calls = local.services.calls
        calls.max_live = 1
        held = await local.hold_a_call()
        query = "encoding=linear16&sample_rate=8000&call_id=dg-full&rep_consent=denied&customer_consent=denied"
        url, headers = f"{local.ws_url}/v1/listen?{query}", {"Authorization": f"Token {local.key}"}
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        response = refused.value.response
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "calls.max_live" in response.headers["dg-error"]
        assert json.loads(response.body or b"{}")["err_msg"] == response.headers["dg-error"]
        assert list(calls.live) == ["held"], "the call already live is not touched"
        assert not await local.services.store.call_exists("acme", "dg-full")

        await held.close(CallEnd.STOP)  # a slot frees: the same stream is taken now
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "CloseStream"}))
            assert json.loads(await ws.recv())["type"] == "Metadata"
        assert ws.close_code == 1000
        record = await local.services.store.get_call("acme", "dg-full")
        assert record is not None and (record.status, record.end_reason) == ("completed", "stop")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("encoding=opus&sample_rate=48000", "encoding"),
        ("sample_rate=8000", "encoding"),
        ("encoding=linear16", "sample_rate"),
        ("encoding=linear16&sample_rate=fast", "sample_rate"),
        ("encoding=linear16&sample_rate=8000&channels=99", "channels"),
        ("encoding=linear16&sample_rate=8000&redact=name", "redact"),
        ("encoding=linear16&sample_rate=8000&endpointing=soon", "endpointing"),
        ("encoding=linear16&sample_rate=8000&interim_results=maybe", "interim_results"),
        ("encoding=linear16&sample_rate=8000&rep_consent=perhaps", "repConsent"),
        ("encoding=linear16&sample_rate=8000&call_id=no%20spaces", "call_id"),
    ],
)
async def test_bad_parameters_are_refused_with_400(server: Server, query: str, named: str) -> None:
    headers = {"Authorization": f"Token {server.keys['ingest']}"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws_url}/v1/listen?{query}", additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == 400
    assert named in response.headers["dg-error"]
    assert json.loads(response.body or b"{}")["err_msg"] == response.headers["dg-error"]


async def test_bad_input_gets_clear_errors(server: Server) -> None:
    url = f"{server.ws_url}/v1/listen?encoding=linear16&sample_rate=8000"
    headers = {"Authorization": f"Token {server.keys['ingest']}"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send("not json")
        error = json.loads(await ws.recv())
        assert (error["type"], error["variant"]) == ("Error", "SchemaError") and "JSON" in error["description"]
        await ws.send(json.dumps({"type": "Flush"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "Error" and "'Flush'" in error["description"]
        await ws.send(json.dumps({"type": "Finalize", "channel": 5}))
        error = json.loads(await ws.recv())
        assert error["type"] == "Error" and "no channel 5" in error["description"]
        await ws.send(b"\x00\x00" * 800)  # the stream goes on after those
        await ws.send(b"\x01\x02\x03")  # half a sample: the stream cannot go on
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
        assert ws.close_code == 1008 and ws.close_reason.startswith("DATA-0000"), ws.close_reason
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(pcm_bytes(tel8k()[5].pcm))
        await ws.send(json.dumps({"type": "CloseStream"}))
        await ws.send(b"\x00\x00" * 80)
        replies = [json.loads(m) async for m in ws]
        errors = [m for m in replies if m["type"] == "Error"]
        assert errors and "after CloseStream" in errors[0]["description"]
        assert replies[-1]["type"] == "Metadata" and ws.close_code == 1000


# -- pre-recorded: POST /v1/listen ------------------------------------------------------------------------


def _recorded(channels: int = 1) -> tuple[list[Any], int]:
    """Programs of test speech (one per channel) and their rate."""
    utts = tel8k()
    if channels == 1:
        return [program(utts[:3])], 8000
    return [program([utts[3], utts[5]], lead_s=0.4), program([utts[4], utts[6]], lead_s=2.5)], 8000


def _text(response: Any, channel: int = 0) -> str:
    return str(response.results.channels[channel].alternatives[0].transcript)


async def test_prerecorded_file_with_the_sdk_gets_deepgram_results_and_a_stored_call(server: Server) -> None:
    """``transcribe_file``, unmodified: a WAV body gives Deepgram's ``ListenV1Response`` (words, confidences, times,
    the request id that is the call id), and the recording is a stored call like a live one."""
    from deepgram.types.listen_v1response import ListenV1Response

    (prog,), rate = _recorded()
    body = encode([prog.pcm], rate, "wav")
    call_id = new_id()
    client = deepgram(server, server.keys["ingest"])
    started = time.monotonic()
    response = await client.listen.v1.media.transcribe_file(
        request=body,
        model="nova-3",
        punctuate=True,
        request_options={"additional_query_parameters": {"call_id": call_id}},
    )
    took = time.monotonic() - started
    assert isinstance(response, ListenV1Response)
    assert took < prog.duration, f"{took:.1f} s for {prog.duration:.1f} s of audio: not faster than real time"
    assert response.metadata.request_id == call_id
    assert response.metadata.channels == 1
    assert abs(response.metadata.duration - prog.duration) < 0.1
    assert response.metadata.sha256 == hashlib.sha256(body).hexdigest()
    assert wer([u.ref for _, _, u in prog.spans], [_text(response)]) <= 0.15
    words = response.results.channels[0].alternatives[0].words
    assert words and all(0 <= w.start <= w.end <= prog.duration + 0.5 and 0 < w.confidence <= 1 for w in words)
    assert any(w.punctuated_word != w.word for w in words)  # punctuate=true: "Hello," beside "hello"
    assert response.results.utterances is None  # only when asked
    stored = await stored_call(server, call_id)
    assert (stored["source"], stored["status"]) == ("deepgram", "completed")
    assert wer([u.ref for _, _, u in prog.spans], [s["text"] for s in stored["transcript"]]) <= 0.15
    # Raw samples, described by the query as on the streaming API (and a WAV sent with encoding= is read as a file).
    for raw in (pcm_bytes(prog.pcm), body):
        again = await client.listen.v1.media.transcribe_file(
            request=raw, encoding="linear16", request_options={"additional_query_parameters": {"sample_rate": 8000}}
        )
        assert wer([u.ref for _, _, u in prog.spans], [_text(again)]) <= 0.15
        assert abs(again.metadata.duration - prog.duration) < 0.1


async def test_prerecorded_multichannel_mp3_with_utterances_and_consent(server: Server) -> None:
    """A stereo MP3 (``audio/mpeg``, decoded with PyAV), ``multichannel`` and ``utterances``: one result per
    channel and the utterances in time order; a party that did not consent gets no words, and the answer says why."""
    (rep, customer), rate = _recorded(2)
    body = encode(stereo(rep, customer).channels, rate, "mp3")
    client = deepgram(server, server.keys["ingest"])
    call_id = new_id()
    response = await client.listen.v1.media.transcribe_file(
        request=body,
        multichannel=True,
        utterances=True,
        request_options={
            "additional_query_parameters": {"call_id": call_id},
            "additional_headers": {"content-type": "audio/mpeg"},
        },
    )
    assert response.metadata.channels == 2 and len(response.results.channels) == 2
    assert wer([u.ref for _, _, u in rep.spans], [_text(response, 0)]) <= 0.2
    assert wer([u.ref for _, _, u in customer.spans], [_text(response, 1)]) <= 0.2
    utterances = response.results.utterances
    assert utterances and {u.channel for u in utterances} == {0, 1}
    assert [u.start for u in utterances] == sorted(u.start for u in utterances)

    denied = await client.listen.v1.media.transcribe_file(
        request=body,
        multichannel=True,
        request_options={"additional_query_parameters": {"call_id": new_id(), "customer_consent": "denied"}},
    )
    assert _text(denied, 0) and not _text(denied, 1)
    assert "consented" in json.dumps(denied.metadata.model_extra or {})
    stored = await stored_call(server, call_id)
    assert {s["speaker"] for s in stored["transcript"]} == {"rep", "customer"}


async def test_prerecorded_refuses_what_it_cannot_use(server: Server) -> None:
    """Not audio, nothing, or a url while the server fetches from no host: 400/403 with Deepgram's error body,
    which says why."""
    client = deepgram(server, server.keys["ingest"])
    with pytest.raises(ApiError) as refused:
        await client.listen.v1.media.transcribe_file(request=b"this is a text file, not audio" * 10)
    assert refused.value.status_code == 400 and "not an audio file" in json.dumps(refused.value.body)
    with pytest.raises(ApiError) as refused:
        await client.listen.v1.media.transcribe_url(url="https://example.com/call.wav")
    assert refused.value.status_code == 403 and "fetch_allow" in json.dumps(refused.value.body)
    with pytest.raises(ApiError) as refused:
        await deepgram(server, "msk_nope").listen.v1.media.transcribe_file(request=b"x")
    assert refused.value.status_code == 401


async def test_prerecorded_url_only_from_allowed_hosts(tmp_path: Path) -> None:
    """``transcribe_url``: fetched from a host ``compat.fetch_allow`` lists (here 127.0.0.1, which as a loopback
    address is refused unless listed); another loopback address, a private one or a public host not listed is refused
    with the reason."""
    import http.server
    import threading

    from tests.conftest import start_server, stop_server

    (prog,), rate = _recorded()
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "call.flac").write_bytes(encode([prog.pcm], rate, "flac"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path / "files"), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    port = files.server_address[1]
    srv = await asyncio.to_thread(
        start_server, tmp_path / "server", {"MEDIA_SERVER_COMPAT__FETCH_ALLOW": '["127.0.0.1/32"]'}
    )
    try:
        client = deepgram(srv, srv.keys["ingest"])
        response = await client.listen.v1.media.transcribe_url(url=f"http://127.0.0.1:{port}/call.flac")
        assert wer([u.ref for _, _, u in prog.spans], [_text(response)]) <= 0.15
        assert abs(response.metadata.duration - prog.duration) < 0.1
        for url in (f"http://127.0.0.2:{port}/call.flac", "http://10.1.2.3/call.wav", "http://example.com/a.wav"):
            with pytest.raises(ApiError) as refused:
                await client.listen.v1.media.transcribe_url(url=url)
            assert refused.value.status_code == 403, url
            assert "refused" in json.dumps(refused.value.body)
        with pytest.raises(ApiError) as missing:
            await client.listen.v1.media.transcribe_url(url=f"http://127.0.0.1:{port}/nothing.wav")
        assert missing.value.status_code == 400 and "404" in json.dumps(missing.value.body)
    finally:
        files.shutdown()
        await asyncio.to_thread(stop_server, srv)


# -- the protocol's pure parts -----------------------------------------------------------------------------


def _parse(query: str) -> Any:
    return parse_listen_query(httpx.QueryParams(query).multi_items())


def test_query_options_and_metadata() -> None:
    options = _parse(
        "encoding=mulaw&sample_rate=8000&channels=2&multichannel=true&interim_results=true&endpointing=20"
        "&utterance_end_ms=1000&keyterm=Acme%20Cloud&keywords=Zorvexa:2&redact=pci&redact=ssn&tag=a&tag=b"
        "&extra=repName:Dana&extra[crm]=7&repConsent=denied&model=nova-3&smart_format=true&call_id=c-1&whatever=1"
    )
    assert (options.encoding, options.sample_rate, options.channels, options.multichannel) == ("mulaw", 8000, 2, True)
    assert options.punctuate and options.interim_results and options.call_id == "c-1"
    raw = options.metadata
    assert raw["endpointing"] == 100  # Deepgram's 10-20 ms would cut at every breath
    assert raw["keyterms"] == ["Acme Cloud", "Zorvexa:2"] and raw["redact"] == ["card", "cvv", "expiry", "ssn"]
    assert (raw["rep_name"], raw["crm"], raw["tag"]) == ("Dana", "7", "a,b")
    # What the stream says of consent; what it does not say is compat.consent, given when the call opens.
    assert raw["rep_consent"] == "denied" and "customer_consent" not in raw
    assert "model" in options.ignored and "whatever" in options.ignored
    assert [c.speaker for c in options.channel_specs(CompatSettings())] == ["rep", "customer"]
    mono = _parse("encoding=linear16&sample_rate=44100&endpointing=false")
    assert not mono.speech_final and mono.call_rate == 16000 and not mono.interim_results
    assert mono.metadata["utterance_end_ms"] == 0
    assert [c.speaker for c in mono.channel_specs(CompatSettings(speaker="rep"))] == ["rep"]


def test_who_a_stream_carries_and_whether_it_is_diarized() -> None:
    def specs(query: str, compat: CompatSettings | None = None) -> list[tuple[str, bool]]:
        options = _parse(f"encoding=linear16&sample_rate=8000&{query}")
        return [
            (c.speaker, c.speaker == "mixed" and c.diarize) for c in options.channel_specs(compat or CompatSettings())
        ]

    # Says nothing: one voice of compat.speaker's role (mixed: either party, both must consent), not diarized.
    assert specs("") == [("mixed", False)]
    assert specs("", CompatSettings(speaker="customer")) == [("customer", False)]
    # Asks who speaks, or says both parties are on it: diarized.
    assert specs("diarize=true", CompatSettings(speaker="customer")) == [("mixed", True)]
    assert specs("diarize_model=latest") == [("mixed", True)]
    assert specs("speaker=mixed") == [("mixed", True)]
    # Says whose voice it is: that party, one voice (diarize=true then numbers every word 0).
    assert specs("speaker=rep&diarize=true") == [("rep", False)]
    # Multichannel: stereo is rep and customer; more channels are each mixed, diarized only when asked.
    assert specs("channels=2&multichannel=true&diarize=true") == [("rep", False), ("customer", False)]
    assert specs("channels=3&multichannel=true") == [("mixed", False)] * 3
    assert specs("channels=3&multichannel=true&diarize=true") == [("mixed", True)] * 3


@pytest.mark.parametrize(
    "query",
    [
        "encoding=flac&sample_rate=8000",
        "encoding=linear16",
        "encoding=linear16&sample_rate=96000",
        "encoding=alaw&sample_rate=8000&extra=nocolon",
    ],
)
def test_query_errors(query: str) -> None:
    with pytest.raises(ListenError):
        _parse(query)


def test_redaction_aliases() -> None:
    assert redaction_types(["numbers"]) == ("card", "cvv", "expiry", "ssn", "phone")
    assert redaction_types(["pii,phi"]) == ("card", "cvv", "expiry", "ssn", "phone", "email")
    assert redaction_types(["false"]) == ()
    # What the call is given: redaction types added to the team's (any ingest's metadata may carry them).
    assert parse_metadata({"redact": "card, SSN"}).recognition.redact == ("card", "ssn")
    assert parse_metadata({"redact": ["email"]}).recognition.redact == ("email",)
    with pytest.raises(MetadataError):
        parse_metadata({"redact": "names"})


def test_audio_decoder_mixes_down_and_checks_frames() -> None:
    stereo = np.array([[100, 300], [-100, -300]], dtype="<i2")
    mixed = AudioDecoder(_parse("encoding=linear16&sample_rate=8000&channels=2"))
    assert [a.tolist() for a in mixed.decode(stereo.tobytes())] == [[200, -200]]
    split = AudioDecoder(_parse("encoding=linear16&sample_rate=8000&channels=2&multichannel=true"))
    assert [a.tolist() for a in split.decode(stereo.tobytes())] == [[100, -100], [300, -300]]
    assert split.duration == 2 / 8000
    for data in (b"\x00" * 3, b"\x00" * 6):
        with pytest.raises(AudioError):
            split.decode(data)
    resampled = AudioDecoder(_parse("encoding=linear16&sample_rate=48000"))
    tone = (np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    out = sum(len(resampled.decode(tone[i : i + 4800].tobytes())[0]) for i in range(0, 48000, 4800))
    out += len(resampled.flush()[0])
    assert abs(out - 16000) <= 2


def test_results_shape_parses_as_the_sdk_expects() -> None:
    options = _parse("encoding=linear16&sample_rate=8000&diarize=true")
    transcript = pb.Transcript(
        channel=0,
        is_final=True,
        speech_final=True,
        text=" Hello, Mr. Smith. I'm here: [CARD].",
        start=1.0,
        end=2.5,
        confidence=0.9,
        words=[
            pb.Word(word=" Hello,", start=1.0, end=1.3, confidence=0.9, speaker="speaker 2"),
            pb.Word(word=" [CARD].", start=1.4, end=2.4, confidence=0.8),
        ],
    )
    message = results_message(transcript, options, 1, "req", ModelInfo("whisper tiny.en"), default_speaker=1)
    parsed = ListenV1Results.model_validate(message)
    assert parsed.channel.alternatives[0].transcript == "hello mr smith i'm here [CARD]"
    assert [(w.word, w.speaker) for w in parsed.channel.alternatives[0].words] == [("hello", 1), ("[CARD]", 1)]
    assert parsed.speech_final and parsed.duration == 1.5 and parsed.channel_index == [0, 1]
    assert plain("Go forward 10.5 meters!") == "go forward 10.5 meters"
    summary = metadata_message("req", datetime.now(UTC), 1.5, 1, "00", ModelInfo("m"))
    assert ListenV1Metadata.model_validate(summary).duration == 1.5
    assert ListenV1Error.model_validate({"type": "Error", "variant": "SchemaError", "description": "x"})
