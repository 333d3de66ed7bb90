"""``POST /v1/calls``: a call recording uploaded (the file as the body, metadata and consent as query parameters)
becomes a stored call like a live one: transcript per party, speakers, metrics, searchable; consent holds."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from media_server.ingest import recording
from tests.conftest import Server, start_server, stop_server
from tests.encoded import encode
from tests.speech import Program, program, stereo, tel8k, wer

pytestmark = pytest.mark.e2e


def _call_id() -> str:
    return f"up-{uuid.uuid4().hex[:12]}"


def _parties() -> tuple[Program, Program]:
    utts = tel8k()
    return program([utts[0], utts[2]], lead_s=0.4), program([utts[1], utts[3]], lead_s=2.6)


def _said(call: dict[str, Any], speaker: str) -> list[str]:
    return [s["text"] for s in call["transcript"] if s["speaker"] == speaker]


def _upload(server: Server, body: bytes, key: str | None = None, **query: str) -> httpx.Response:
    with server.http(key or server.keys["ingest"]) as http:
        return http.post("/v1/calls", params=query, content=body, headers={"Content-Type": "audio/wav"}, timeout=120)


def test_a_stereo_wav_upload_is_a_stored_analysed_searchable_call(server: Server) -> None:
    rep, customer = _parties()
    call_id = _call_id()
    started = time.monotonic()
    answer = _upload(
        server,
        encode(stereo(rep, customer).channels, 8000, "wav"),
        call_id=call_id,
        rep_id="alice",
        rep_name="Alice Ng",
        customer_phone="+15551234567",
        rep_consent="granted",
        customer_consent="granted",
    )
    took = time.monotonic() - started
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"/v1/calls/{call_id}"
    call = answer.json()
    duration = max(rep.duration, customer.duration)
    assert took < duration, f"{took:.1f} s for {duration:.1f} s of audio: not faster than real time"
    assert (call["id"], call["source"], call["status"]) == (call_id, "upload", "completed")
    assert abs(call["duration"] - duration) < 0.5  # the audio's length, not how long its processing took
    assert [c["speaker"] for c in call["channels"]] == ["rep", "customer"]
    assert wer([u.ref for _, _, u in rep.spans], _said(call, "rep")) <= 0.2
    assert wer([u.ref for _, _, u in customer.spans], _said(call, "customer")) <= 0.2
    talk = {s["speaker"]: s["talkTime"] for s in call["speakers"]}
    assert talk["rep"] > 1 and talk["customer"] > 1
    assert call["metrics"]["talkRatio"] and call["metrics"]["wordsPerMinute"]
    with server.http(server.keys["admin"]) as http:
        assert http.get(f"/v1/calls/{call_id}").json()["transcript"] == call["transcript"]
        word = max(_said(call, "customer")[0].split(), key=len).strip(".,?!").lower()
        found = http.get("/v1/calls", params={"q": word}).json()["calls"]
        assert call_id in [c["id"] for c in found], word
        again = http.get("/v1/calls", params={"rep": "alice"}).json()["calls"]
        assert call_id in [c["id"] for c in again]
        # The team's aggregates count it as a call of the rep's, as long as its audio.
        alice = next(r for r in http.get("/v1/reps/activity").json()["reps"] if r["rep"] == "alice")
        assert alice["calls"] >= 1 and alice["callTime"] >= duration - 0.5
    assert _upload(server, encode([rep.pcm], 8000, "wav"), call_id=call_id).status_code == 409


@pytest.mark.parametrize("kind", ["mp3", "ogg"])
def test_a_compressed_upload_respects_consent(server: Server, kind: str) -> None:
    """An MP3 or an Opus OGG (made with PyAV) is read too; a customer who denied consent is neither transcribed nor
    kept, the rep is."""
    rep, customer = _parties()
    rate = 8000 if kind == "mp3" else 16000
    channels = stereo(rep, customer).at_rate(rate).channels
    call_id = _call_id()
    answer = _upload(
        server, encode(channels, rate, kind), call_id=call_id, rep_consent="granted", customer_consent="denied"
    )
    assert answer.status_code == 201, answer.text
    call = answer.json()
    assert wer([u.ref for _, _, u in rep.spans], _said(call, "rep")) <= 0.2
    assert _said(call, "customer") == []
    customer_party = next(p for p in call["participants"] if p["role"] == "customer")
    assert customer_party["consent"] == "denied" and not customer_party["transcribed"]
    assert [c["transcribed"] for c in call["channels"]] == [True, False]


def test_a_mono_upload_is_one_diarized_channel(server: Server) -> None:
    utts = tel8k()
    mono = program(utts[4:6])
    call_id = _call_id()
    query = {"call_id": call_id, "metadata": '{"consent": {"rep": "granted", "customer": "granted"}}'}
    answer = _upload(server, encode([mono.pcm], 8000, "flac"), **query)
    assert answer.status_code == 201, answer.text
    call = answer.json()
    assert [c["speaker"] for c in call["channels"]] == ["mixed"]
    assert wer([u.ref for _, _, u in mono.spans], [s["text"] for s in call["transcript"]]) <= 0.2


def test_what_cannot_be_uploaded_is_refused_with_the_reason(server: Server) -> None:
    bad = _upload(server, b"this is a text file, not a recording\n" * 20, call_id=_call_id())
    assert bad.status_code == 400 and "not an audio file" in bad.json()["detail"]
    empty = _upload(server, b"", call_id=_call_id())
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    with server.http(server.keys["ingest"]) as http:
        form = http.post("/v1/calls", files={"file": ("call.wav", b"RIFF....")})
    assert form.status_code == 400 and "--data-binary" in form.json()["detail"]
    wrong = _upload(server, encode([tel8k()[0].pcm], 8000, "wav"), rep_consent="perhaps")
    assert wrong.status_code == 400 and "repConsent" in wrong.json()["detail"]
    assert _upload(server, b"x", key="msk_not_a_key").status_code == 401
    other_team = _upload(server, encode([tel8k()[0].pcm], 8000, "wav"), key=server.keys["other"], team="acme")
    assert other_team.status_code == 403 and "globex" in other_team.json()["detail"]


def test_a_recording_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    """``ingest.max_file_minutes`` bounds the decoded length (a small compressed file can hold hours of audio)."""
    limited = start_server(tmp_path / "short", {"MEDIA_SERVER_INGEST__MAX_FILE_MINUTES": "0.05"})  # 3 s
    try:
        utts = tel8k()
        long = _upload(limited, encode([program(utts[:3], lead_s=0.2).pcm], 8000, "mp3"), call_id=_call_id())
        assert long.status_code == 413 and "ingest.max_file_minutes" in long.json()["detail"], long.text
    finally:
        stop_server(limited)


async def test_a_recording_waits_for_a_busy_recogniser_and_fails_on_a_stuck_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The feed of a recording waits while the decode queue is long, however long live calls keep the recogniser
    busy, as long as decodes finish; one that finishes none for ``STUCK_S`` fails the upload (503, the call stored as
    interrupted). A stand-in scheduler and call: a real decoder cannot be made to stall on demand."""
    monkeypatch.setattr(recording, "STUCK_S", 0.5)

    class Busy:
        def __init__(self, progressing_for: int) -> None:
            self.polls, self.progressing_for = 0, progressing_for

        def stats(self) -> Any:
            self.polls += 1
            batches = min(self.polls, self.progressing_for)  # a batch finishes per poll, then none
            return SimpleNamespace(queue_depth=recording.MAX_QUEUED + 5, batches=batches)

    call = SimpleNamespace(live=True)
    busy = Busy(progressing_for=60)  # 60 polls (1.18 s, past STUCK_S) of progress, then stuck
    started = time.monotonic()
    with pytest.raises(recording.RecogniserStuck):
        await recording._backlog(busy, call)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 59 * 0.02 + 0.5  # it waited through the busy stretch (59 sleeps), then 0.5 s
    call.live = False  # a call ended meanwhile (revoked key, shutdown): no waiting
    await asyncio.wait_for(recording._backlog(Busy(0), call), 0.5)  # type: ignore[arg-type]
