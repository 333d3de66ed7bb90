"""The torch backend: the bundled weights, read from CTranslate2's file, run in torch (CPU here)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from models.asr.engine import DecodeRequest
from models.asr.whisper_ct2 import WhisperCT2Engine
from models.audio import int16_to_float32, resample
from tests.conftest import collect_events, start_server, stop_server
from tests.speech import normalise, program, tel8k, wer

if os.environ.get("CI") == "true":
    import torch  # under CI a missing torch is a failure, not a skip (make pytest installs it)
else:
    torch = pytest.importorskip("torch", reason="the torch backend needs torch (make pytest installs the CPU build)")

from models.asr.whisper_torch import WhisperTorchEngine


@pytest.fixture(scope="module")
def engines() -> tuple[WhisperTorchEngine, WhisperCT2Engine]:
    torch.set_num_threads(2)
    return WhisperTorchEngine(), WhisperCT2Engine(cpu_threads=2)


def requests(final: bool = True) -> list[DecodeRequest]:
    return [DecodeRequest(audio=resample(int16_to_float32(u.pcm), 8000, 16000), final=final) for u in tel8k()]


def test_torch_transcribes_like_ctranslate2(engines: tuple[WhisperTorchEngine, WhisperCT2Engine]) -> None:
    """The same network gives the same words: torch decodes greedily, as CTranslate2 decodes an interim. (A
    CTranslate2 final adds a beam and decodes again what the decoder left out; the torch backend has neither.)"""
    torch_engine, ct2_engine = engines
    refs = [u.ref for u in tel8k()]
    by_torch = torch_engine.decode_batch(requests())
    by_ct2 = ct2_engine.decode_batch(requests(final=False))
    assert wer(refs, [h.text for h in by_torch]) <= wer(refs, [h.text for h in by_ct2]) + 0.02
    same = sum(normalise(a.text) == normalise(b.text) for a, b in zip(by_torch, by_ct2, strict=True))
    assert same >= len(refs) - 1
    # Word times from torch's cross-attention alignment agree with CTranslate2's within a few frames.
    gaps = [
        abs(wa.start - wb.start)
        for a, b in zip(by_torch, by_ct2, strict=True)
        if [w.word for w in a.words] == [w.word for w in b.words]
        for wa, wb in zip(a.words, b.words, strict=True)
    ]
    assert gaps and float(np.median(gaps)) <= 0.1 and max(gaps) <= 1.0
    assert all(0 < w.confidence <= 1 for h in by_torch for w in h.words)


def test_prefix_keyterms_and_silence(engines: tuple[WhisperTorchEngine, WhisperCT2Engine]) -> None:
    torch_engine, _ = engines
    longest = max(requests(), key=lambda r: r.audio.size)
    longest.prefix = "And Mr. John"
    assert torch_engine.decode_batch([longest])[0].text.startswith("And Mr. John")
    longest.prefix, longest.hotwords = None, ("Dashwood",)
    assert "Dashwood" in torch_engine.decode_batch([longest])[0].text
    silence = DecodeRequest(audio=np.zeros(32000, dtype=np.float32), final=True)
    assert torch_engine.decode_batch([silence])[0].text == ""


@pytest.mark.e2e
async def test_a_server_on_the_torch_backend_transcribes_calls(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "torch", {"MEDIA_SERVER_ASR__BACKEND": "torch"})
    try:
        prog = program(tel8k()[4:7])
        key = srv.keys["admin"]
        call_id = "CA-torch-1"
        events = asyncio.create_task(collect_events(f"{srv.ws_url}/v1/calls/{call_id}/events?token={key}"))
        await asyncio.sleep(0.2)
        metadata = {"repConsent": "granted", "customerConsent": "granted"}
        await stream_call(
            Recording([prog.pcm], 8000), srv.ws_url, "l16", key, call_id=call_id, metadata=metadata, speed=2
        )
        log = await events
        finals = [t["text"] for t in log.transcripts(final=True)]
        assert wer([u.ref for _, _, u in prog.spans], finals) <= 0.15
        with srv.http(key) as http:
            assert "(torch)" in http.get("/v1/status").json()["model"]
    finally:
        stop_server(srv)
