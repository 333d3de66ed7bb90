"""The Riva-compatible gRPC service (``nvidia.riva.asr.RivaSpeechRecognition``), with NVIDIA's own client as the peer.

The client is ``nvidia-riva-client`` from PyPI, unmodified. Its generated protos register the same message names as
the server's (``media_server/riva``), and one Python process cannot hold both: the client runs in spawned worker
processes (the ``peer`` fixture; the ``peer_*`` functions below run there), this process never imports ``riva``,
and the server is the session's subprocess. Results come back as dicts (protobuf's JSON mapping, proto field names).
"""

from __future__ import annotations

import base64
import io
import multiprocessing
import re
import time
import uuid
import wave
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from media_server.codecs.g711 import alaw_encode, ulaw_encode
from models.audio import int16_to_float32, resample
from tests.conftest import Server
from tests.speech import Utterance, normalise, program, tel8k, wer

SPEED = 2.0  # twice real time: the same audio, the test just waits less
e2e = pytest.mark.e2e


# -- the peer: runs in a worker process, where `riva` may be imported --------------------------------


def _service(target: str, key: str) -> Any:
    import riva.client

    auth = riva.client.Auth(uri=target, metadata_args=[["authorization", f"Bearer {key}"]])
    return riva.client.ASRService(auth)


def _collect(responses: Any) -> dict[str, Any]:
    """Every result with its arrival time, or the RPC's error status."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = {"start": time.time(), "results": [], "error": None}
    try:
        for response in responses:
            for result in response.results:
                entry = MessageToDict(result, preserving_proto_field_name=True)
                out["results"].append({"t": time.time(), **entry})
    except grpc.RpcError as exc:
        out["error"] = {"code": exc.code().name, "details": exc.details()}
    return out


def peer_stream_file(target: str, key: str, wav: str, config: dict[str, Any]) -> dict[str, Any]:
    """Riva's own way of streaming a file: ``AudioChunkFileIterator`` (the WAV header goes out with the first chunk),
    paced by its delay callback at ``SPEED`` times real time."""
    import riva.client
    from google.protobuf.json_format import ParseDict

    asr = _service(target, key)
    streaming = ParseDict(config, riva.client.StreamingRecognitionConfig())
    riva.client.add_audio_file_specs_to_config(streaming, wav)
    with riva.client.AudioChunkFileIterator(wav, 1600, lambda _data, seconds: time.sleep(seconds / SPEED)) as chunks:
        return _collect(asr.streaming_response_generator(chunks, streaming))


def peer_stream_bytes(
    target: str, key: str, chunks: list[bytes], chunk_s: float, config: dict[str, Any], cancel_after: int = 0
) -> dict[str, Any]:
    """Raw audio chunks, each ``chunk_s`` long, paced at ``SPEED`` times real time; ``cancel_after``: the client
    cancels the RPC once it has that many results."""
    import riva.client
    from google.protobuf.json_format import ParseDict

    asr = _service(target, key)
    streaming = ParseDict(config, riva.client.StreamingRecognitionConfig())

    def paced() -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            time.sleep(chunk_s / SPEED)

    if not cancel_after:
        return _collect(asr.streaming_response_generator(paced(), streaming))
    requests = riva.client.asr.streaming_request_generator(paced(), streaming)
    call = asr.stub.StreamingRecognize(requests, metadata=asr.auth.get_auth_metadata())
    out: dict[str, Any] = {"start": time.time(), "results": [], "error": None}
    for response in call:
        out["results"] += [{"t": time.time()} for _ in response.results]
        if len(out["results"]) >= cancel_after:
            call.cancel()
            break
    return out


def peer_stream_messages(target: str, key: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Hand-made request messages (``audio_content`` base64, as the JSON mapping has it), for what clients get wrong."""
    from google.protobuf.json_format import ParseDict
    from riva.client.proto import riva_asr_pb2 as rasr

    asr = _service(target, key)
    requests = [ParseDict(m, rasr.StreamingRecognizeRequest()) for m in messages]
    return _collect(asr.stub.StreamingRecognize(iter(requests), metadata=asr.auth.get_auth_metadata()))


def peer_recognize(target: str, key: str, audio: bytes, config: dict[str, Any]) -> dict[str, Any]:
    import grpc
    import riva.client
    from google.protobuf.json_format import MessageToDict, ParseDict

    asr = _service(target, key)
    try:
        response = asr.offline_recognize(audio, ParseDict(config, riva.client.RecognitionConfig()))
    except grpc.RpcError as exc:
        return {"results": [], "error": {"code": exc.code().name, "details": exc.details()}}
    return {**MessageToDict(response, preserving_proto_field_name=True), "error": None}


def peer_model_config(target: str, key: str) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from riva.client.proto import riva_asr_pb2 as rasr

    asr = _service(target, key)
    request = rasr.RivaSpeechRecognitionConfigRequest()
    response = asr.stub.GetRivaSpeechRecognitionConfig(request, metadata=asr.auth.get_auth_metadata())
    return MessageToDict(response, preserving_proto_field_name=True)


# -- helpers in the test process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def peer() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def new_call_id() -> str:
    return f"riva-test-{uuid.uuid4().hex[:12]}"


def wav_bytes(channels: list[npt.NDArray[np.int16]], rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.stack(channels, axis=1).astype("<i2").tobytes())
    return out.getvalue()


def at_rate(pcm: npt.NDArray[np.int16], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    audio = resample(int16_to_float32(pcm), from_rate, to_rate)
    return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text(result: dict[str, Any]) -> str:
    return str(result["alternatives"][0]["transcript"])


def finals(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in outcome["results"] if r.get("is_final")]


def stored_call(server: Server, call_id: str, timeout: float = 30) -> dict[str, Any]:
    with server.http(server.keys["admin"]) as http:
        deadline = time.monotonic() + timeout
        while True:
            response = http.get(f"/v1/calls/{call_id}")
            ended = response.status_code == 200 and response.json()["status"] != "live"  # (stored from its start)
            if ended or time.monotonic() > deadline:
                assert response.status_code == 200, response.text
                return dict(response.json())
            time.sleep(0.3)


def diarized_channels(server: Server) -> int:
    """How many channels the server has diarized since it started (``/v1/status``)."""
    with server.http(server.keys["admin"]) as http:
        return int(http.get("/v1/status").json()["diarization"]["lanesTotal"])


def twice_with_a_pause(utterance: Utterance, pause_s: float) -> npt.NDArray[np.int16]:
    """The utterance's speech (its own silence at either end cut off), a pause of digital silence, the speech
    again, then 1.5 s of silence."""
    loud = np.flatnonzero(np.abs(utterance.pcm) > 1000)
    speech = utterance.pcm[loud[0] : loud[-1] + 1]
    rate = utterance.sample_rate
    lead, pause, tail = (np.zeros(int(s * rate), dtype=np.int16) for s in (0.3, pause_s, 1.5))
    return np.concatenate([lead, speech, pause, speech, tail])


def streaming_config(**config: Any) -> dict[str, Any]:
    interim = config.pop("interim_results", True)
    return {"config": {"language_code": "en-US", "max_alternatives": 1, **config}, "interim_results": interim}


# -- streaming --------------------------------------------------------------------------------------


@e2e
def test_streaming_a_wav_file_as_the_riva_client_does(
    server: Server, peer: ProcessPoolExecutor, tmp_path: Path
) -> None:
    speech = program(tel8k()[:3], gap_s=1.0, lead_s=0.3)
    wav = tmp_path / "call.wav"
    wav.write_bytes(wav_bytes([speech.pcm], speech.sample_rate))
    call_id = new_call_id()
    config = streaming_config(
        encoding="LINEAR_PCM",
        enable_word_time_offsets=True,
        custom_configuration={"call_id": call_id, "rep_id": "u-17", "rep_name": "Dana"},
    )
    diarized_before = diarized_channels(server)
    outcome = peer.submit(peer_stream_file, server.grpc_target, server.keys["ingest"], str(wav), config).result(120)

    assert outcome["error"] is None, outcome["error"]
    results = outcome["results"]
    said = finals(outcome)
    assert len(said) >= len(speech.spans), [text(r) for r in said]
    # Interims come first, and before the finals (an utterance split by a pause may end without one).
    assert not results[0].get("is_final")
    preceded, since_final = 0, 0
    for r in results:
        if r.get("is_final"):
            preceded += since_final > 0
            since_final = 0
        else:
            since_final += 1
            assert 0 <= r.get("stability", 0) <= 1 and not r["alternatives"][0].get("words")
    assert preceded >= len(speech.spans)
    rate = wer([u.ref for _, _, u in speech.spans], [text(r) for r in said])
    assert rate <= 0.15, (rate, [text(r) for r in said])
    latency = []
    for r in said:
        assert r["channel_tag"] == 1 and 0 < r["alternatives"][0]["confidence"] <= 1
        assert not re.search(r"[.,!?;:]", text(r)), "no punctuation unless enable_automatic_punctuation"
        words = r["alternatives"][0]["words"]
        assert words and all(w["word"] and not re.search(r"[.,!?]$", w["word"]) for w in words)
        times = [(w.get("start_time", 0), w["end_time"]) for w in words]
        assert all(s <= e for s, e in times) and times == sorted(times)
        assert any((a - 1) * 1000 <= times[0][0] and times[-1][1] <= (b + 1) * 1000 for a, b, _ in speech.spans), times
        # How long after its last word was sent (at SPEED) the final arrived.
        latency.append(r["t"] - (outcome["start"] + times[-1][1] / 1000 / SPEED))
    processed = [r["audio_processed"] for r in results]
    assert processed == sorted(processed) and processed[0] > 0
    assert speech.duration - 1.5 <= processed[-1] <= speech.duration + 0.1
    print(f"Riva streaming (LINEAR_PCM WAV 8 kHz) WER {rate:.3f}, final latency {[round(x, 2) for x in latency]} s")

    stored = stored_call(server, call_id)
    assert (stored["source"], stored["status"], stored["endReason"]) == ("riva", "completed", "stop")
    assert [(c["speaker"], c["sampleRate"], c["transcribed"]) for c in stored["channels"]] == [("mixed", 8000, True)]
    # One voice that nobody asked to diarize: not diarized (its consent is still both parties').
    assert {s["speaker"] for s in stored["transcript"]} == {"mixed"}
    assert diarized_channels(server) == diarized_before
    rep = next(p for p in stored["participants"] if p["role"] == "rep")
    assert (rep["id"], rep["name"], rep["consent"]) == ("u-17", "Dana", "granted")
    assert normalise(" ".join(s["text"] for s in stored["transcript"])) == normalise(" ".join(text(r) for r in said))


@e2e
def test_mulaw_and_alaw_streams_side_by_side(server: Server, peer: ProcessPoolExecutor) -> None:
    speech = program(tel8k()[3:5], gap_s=1.0, lead_s=0.3)
    runs = {}
    for encoding, encode in (("MULAW", ulaw_encode), ("ALAW", alaw_encode)):
        config = streaming_config(encoding=encoding, sample_rate_hertz=8000, interim_results=False)
        chunks = chunked(encode(speech.pcm), 800)  # 100 ms
        args = (server.grpc_target, server.keys["ingest"], chunks, 0.1, config)
        runs[encoding] = peer.submit(peer_stream_bytes, *args)
    for encoding, run in runs.items():
        outcome = run.result(120)
        assert outcome["error"] is None, outcome["error"]
        assert outcome["results"] and all(r.get("is_final") for r in outcome["results"]), "no interims unless asked"
        rate = wer([u.ref for _, _, u in speech.spans], [text(r) for r in outcome["results"]])
        print(f"Riva streaming {encoding} 8 kHz WER {rate:.3f}")
        assert rate <= 0.15, (encoding, rate, [text(r) for r in outcome["results"]])


@e2e
def test_speech_contexts_endpointing_and_diarization(server: Server, peer: ProcessPoolExecutor) -> None:
    speech = program(tel8k()[:1], gap_s=1.0, lead_s=0.3)
    call_id = new_call_id()
    config = streaming_config(
        encoding="LINEAR_PCM",
        sample_rate_hertz=16000,
        speech_contexts=[{"phrases": ["Dashwood", "prudently"], "boost": 20.0}],
        endpointing_config={"start_history": 100, "stop_history": 800, "stop_threshold": 0.98},
        diarization_config={"enable_speaker_diarization": True, "max_speaker_count": 2},
        custom_configuration={"call_id": call_id},
    )
    pcm = at_rate(speech.pcm, speech.sample_rate, 16000)
    chunks = chunked(pcm.astype("<i2").tobytes(), 3200)  # 100 ms
    # stop_history is the silence that ends an utterance: one said twice with a 0.5 s pause between is one
    # utterance (one final) when stop_history is 800 ms, and is cut at the pause when it is 250 ms.
    said_twice = twice_with_a_pause(tel8k()[6], 0.5)
    stops = {
        stop: peer.submit(
            peer_stream_bytes,
            server.grpc_target,
            server.keys["ingest"],
            chunked(said_twice.astype("<i2").tobytes(), 1600),
            0.1,
            streaming_config(
                encoding="LINEAR_PCM",
                sample_rate_hertz=8000,
                interim_results=False,
                endpointing_config={"stop_history": stop},
            ),
        )
        for stop in (800, 250)
    }
    diarized_before = diarized_channels(server)
    outcome = peer.submit(peer_stream_bytes, server.grpc_target, server.keys["ingest"], chunks, 0.1, config).result(120)

    assert outcome["error"] is None, outcome["error"]
    said = finals(outcome)
    assert said
    words = [w for r in said for w in r["alternatives"][0]["words"]]
    assert words and all(w.get("speaker_tag", 0) >= 1 for w in words), words
    stored = stored_call(server, call_id)
    assert stored["channels"][0]["sampleRate"] == 16000
    assert diarized_channels(server) == diarized_before + 1
    assert {s["speaker"] for s in stored["transcript"]} == {"speaker 1"}  # one voice, diarized
    assert {"Dashwood", "prudently"} & set(stored["keywords"]), stored["keywords"]

    ref = tel8k()[6].ref
    long_stop, short_stop = (stops[stop].result(120) for stop in (800, 250))
    assert long_stop["error"] is None and short_stop["error"] is None, (long_stop["error"], short_stop["error"])
    (whole,) = finals(long_stop)  # the 0.5 s pause did not end the utterance
    assert wer([f"{ref} {ref}"], [text(whole)]) <= 0.25, text(whole)
    cut = finals(short_stop)
    assert len(cut) >= 2, [text(r) for r in cut]  # it did: each saying is a final of its own
    assert wer([f"{ref} {ref}"], [" ".join(text(r) for r in cut)]) <= 0.25, [text(r) for r in cut]


@e2e
def test_a_cancelled_stream_is_stored_as_interrupted(server: Server, peer: ProcessPoolExecutor) -> None:
    speech = program(tel8k()[:2], gap_s=1.0, lead_s=0.3)
    call_id = new_call_id()
    config = streaming_config(encoding="LINEAR_PCM", sample_rate_hertz=8000, custom_configuration={"call_id": call_id})
    chunks = chunked(speech.pcm.astype("<i2").tobytes(), 1600)
    args = (server.grpc_target, server.keys["ingest"], chunks, 0.1, config, 1)
    outcome = peer.submit(peer_stream_bytes, *args).result(120)
    assert len(outcome["results"]) == 1
    stored = stored_call(server, call_id)
    assert (stored["status"], stored["endReason"]) == ("interrupted", "disconnected")


# -- Recognize and the model's description ----------------------------------------------------------


@e2e
def test_recognize_a_stereo_wav_at_any_rate_and_mulaw(server: Server, peer: ProcessPoolExecutor) -> None:
    utts = tel8k()
    rep, customer = program(utts[5:7], gap_s=0.8, lead_s=0.3), program(utts[3:5], gap_s=0.8, lead_s=1.0)
    n = max(len(rep.pcm), len(customer.pcm))
    left, right = (at_rate(np.pad(p.pcm, (0, n - len(p.pcm))), 8000, 24000) for p in (rep, customer))
    config = {
        "encoding": "LINEAR_PCM",
        "sample_rate_hertz": 24000,
        "audio_channel_count": 2,
        "language_code": "en-US",
        "enable_automatic_punctuation": True,
        "enable_word_time_offsets": True,
    }
    job = peer.submit(
        peer_recognize, server.grpc_target, server.keys["ingest"], wav_bytes([left, right], 24000), config
    )
    mulaw = program(utts[5:6], lead_s=0.3)
    mulaw_config = {"encoding": "MULAW", "sample_rate_hertz": 8000, "language_code": "en-US"}
    mulaw_job = peer.submit(
        peer_recognize, server.grpc_target, server.keys["ingest"], ulaw_encode(mulaw.pcm), mulaw_config
    )

    response = job.result(120)
    assert response["error"] is None, response["error"]
    results = response["results"]
    for tag, speech in ((1, rep), (2, customer)):
        said = [text(r) for r in results if r["channel_tag"] == tag]
        rate = wer([u.ref for _, _, u in speech.spans], said)
        print(f"Riva Recognize (stereo WAV 24 kHz) channel {tag} WER {rate:.3f}")
        assert rate <= 0.2, (tag, rate, said)
    assert any(text(r).endswith((".", "?", "!")) for r in results), "punctuation when asked for"
    assert all(r["alternatives"][0]["words"] for r in results)
    starts = [r["alternatives"][0]["words"][0].get("start_time", 0) for r in results]
    assert starts == sorted(starts), "results in time order"

    response = mulaw_job.result(120)
    assert response["error"] is None, response["error"]
    assert wer([mulaw.spans[0][2].ref], [text(r) for r in response["results"]]) <= 0.2, response["results"]


@e2e
def test_model_config(server: Server, peer: ProcessPoolExecutor) -> None:
    response = peer.submit(peer_model_config, server.grpc_target, server.keys["ingest"]).result(60)
    configs = response["model_config"]
    assert {c["parameters"]["type"] for c in configs} == {"online", "offline"}
    assert all("tiny.en" in c["model_name"] and c["parameters"]["language_code"] == "en-US" for c in configs)


# -- errors -----------------------------------------------------------------------------------------


@e2e
def test_bad_keys_and_bad_requests(server: Server, peer: ProcessPoolExecutor) -> None:
    target, key = server.grpc_target, server.keys["ingest"]
    config = streaming_config(encoding="LINEAR_PCM", sample_rate_hertz=8000)
    audio = b64(np.zeros(1600, dtype="<i2").tobytes())
    cases: list[tuple[str, str, list[dict[str, Any]], str]] = [
        ("no key", "", [{"streaming_config": config}], "UNAUTHENTICATED"),
        ("unknown key", "msk_" + "x" * 40, [{"streaming_config": config}], "UNAUTHENTICATED"),
        ("audio first", key, [{"audio_content": audio}], "INVALID_ARGUMENT"),
        ("config twice", key, [{"streaming_config": config}, {"streaming_config": config}], "INVALID_ARGUMENT"),
        ("odd bytes", key, [{"streaming_config": config}, {"audio_content": b64(b"\x00" * 1601)}], "INVALID_ARGUMENT"),
        ("FLAC", key, [{"streaming_config": streaming_config(encoding="FLAC")}], "INVALID_ARGUMENT"),
        ("3 channels", key, [{"streaming_config": streaming_config(audio_channel_count=3)}], "INVALID_ARGUMENT"),
        ("German", key, [{"streaming_config": streaming_config(language_code="de-DE")}], "INVALID_ARGUMENT"),
        (
            "another team",
            key,
            [
                {"streaming_config": streaming_config(sample_rate_hertz=8000, custom_configuration={"team": "globex"})},
                {"audio_content": audio},
            ],
            "PERMISSION_DENIED",
        ),
    ]
    runs = {name: peer.submit(peer_stream_messages, target, k, messages) for name, k, messages, _ in cases}
    for name, _, _, code in cases:
        error = runs[name].result(60)["error"]
        assert error is not None and error["code"] == code, (name, error)
        assert error["details"], name
    flac = {"encoding": "FLAC", "sample_rate_hertz": 16000, "language_code": "en-US"}
    assert peer.submit(peer_recognize, target, key, b"fLaC", flac).result(60)["error"]["code"] == "INVALID_ARGUMENT"

    # Bad audio after the call opened: the call ends (stored, interrupted), then INVALID_ARGUMENT.
    call_id = new_call_id()
    opened = streaming_config(encoding="LINEAR_PCM", sample_rate_hertz=8000, custom_configuration={"call_id": call_id})
    messages: list[dict[str, Any]] = [
        {"streaming_config": opened},
        {"audio_content": audio},
        {"audio_content": b64(b"\x00" * 3)},
    ]
    error = peer.submit(peer_stream_messages, target, key, messages).result(60)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and "16-bit" in error["details"], error
    stored = stored_call(server, call_id)
    assert (stored["status"], stored["endReason"]) == ("interrupted", "protocol_error")


async def test_a_stream_over_capacity_is_resource_exhausted_with_pushback(tmp_path: Path) -> None:
    """The server holds ``calls.max_live`` calls: a new stream is refused with RESOURCE_EXHAUSTED and the lifecycle's
    retry delay as ``grpc-retry-pushback-ms``; once a call ends, the same stream is taken. In this process, with
    the server's own protos as the client (no model: consent is denied, nothing is transcribed)."""
    import grpc

    from media_server.calls.lifecycle import CallEnd
    from media_server.ingest.riva import PROTOCOL as RIVA
    from media_server.riva import riva_asr_pb2 as rasr
    from media_server.riva import riva_asr_pb2_grpc as rasr_grpc
    from media_server.riva import riva_audio_pb2 as raudio
    from tests.local_services import DENIED, local_grpc

    assert RIVA.grpc is not None
    config = rasr.RecognitionConfig(
        encoding=raudio.LINEAR_PCM,
        sample_rate_hertz=8000,
        language_code="en-US",
        custom_configuration={"call_id": "riva-full", **DENIED},
    )
    requests = [
        rasr.StreamingRecognizeRequest(streaming_config=rasr.StreamingRecognitionConfig(config=config)),
        rasr.StreamingRecognizeRequest(audio_content=np.zeros(1600, dtype="<i2").tobytes()),
    ]
    async with local_grpc(tmp_path, [RIVA.grpc]) as local:
        calls = local.services.calls
        calls.max_live = 1
        held = await local.hold_a_call()
        key = (("authorization", f"Bearer {local.key}"),)
        async with grpc.aio.insecure_channel(local.target) as channel:
            stub = rasr_grpc.RivaSpeechRecognitionStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                [r async for r in stub.StreamingRecognize(iter(requests), metadata=key)]
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert dict(err.value.trailing_metadata() or ())["grpc-retry-pushback-ms"] == "5000"
            assert "calls.max_live" in (err.value.details() or "")
            assert list(calls.live) == ["held"], "the call already live is not touched"
            assert not await local.services.store.call_exists("acme", "riva-full")

            await held.close(CallEnd.STOP)  # a slot frees: the same stream is taken now
            assert [r async for r in stub.StreamingRecognize(iter(requests), metadata=key)] == []
        record = await local.services.store.get_call("acme", "riva-full")
        assert record is not None and (record.status, record.end_reason) == ("completed", "stop")


# -- the pieces, without a server (the test process may import the server's protos, never the client's) --


def test_strip_punctuation() -> None:
    from media_server.ingest.riva.results import strip_punctuation

    assert (
        strip_punctuation("Hello, Mr. Dashwood! It's 3.5% (or $20) - U.S. ...")
        == "Hello Mr Dashwood It's 3.5% or $20 U.S"
    )
    assert strip_punctuation("...") == ""


def test_wav_headers_are_read_and_skipped_even_across_messages() -> None:
    from media_server.ingest.riva.audio import AudioInput
    from media_server.ingest.riva.config import AudioFormat, BadRequest
    from media_server.riva import riva_audio_pb2 as raudio

    pcm = (np.arange(4000) % 200 - 100).astype(np.int16)
    stereo = wav_bytes([pcm, -pcm], 8000)
    audio = AudioInput(AudioFormat(raudio.LINEAR_PCM, 0, 1))
    assert audio.feed(stereo[:30]) == [] and not audio.ready  # the header is not complete yet
    left, right = audio.feed(stereo[30:102])  # 58 bytes of samples: 14 frames, and half a frame waits
    assert audio.ready and audio.format == AudioFormat(raudio.LINEAR_PCM, 8000, 2) and audio.rate == 8000
    rest = audio.feed(stereo[102:])
    assert np.array_equal(np.concatenate([left, rest[0]]), pcm) and np.array_equal(
        np.concatenate([right, rest[1]]), -pcm
    )

    # No header: the config says what the audio is; 44.1 kHz is resampled to 16 kHz.
    raw = AudioInput(AudioFormat(raudio.ALAW, 44100, 1))
    (out,) = raw.feed(alaw_encode(np.zeros(44100, dtype=np.int16)))
    (tail,) = raw.flush()
    assert raw.rate == 16000 and abs(out.size + tail.size - 16000) <= 2
    with pytest.raises(BadRequest, match="sample_rate_hertz is required"):
        AudioInput(AudioFormat(raudio.LINEAR_PCM, 0, 1)).feed(b"\x00\x00")
    float_wav = bytearray(wav_bytes([pcm], 8000))
    float_wav[20:22] = (3).to_bytes(2, "little")
    with pytest.raises(BadRequest, match="format 3"):
        AudioInput(AudioFormat(raudio.LINEAR_PCM, 0, 1)).feed(bytes(float_wav))


def test_a_recognition_config_becomes_a_call() -> None:
    from media_server.calls.metadata import Consent
    from media_server.config import CompatSettings
    from media_server.ingest.riva.config import BadRequest, parse_config
    from media_server.riva import riva_asr_pb2 as rasr
    from media_server.riva import riva_audio_pb2 as raudio

    config = rasr.RecognitionConfig(
        encoding=raudio.MULAW,
        language_code="en-US",
        speech_contexts=[rasr.SpeechContext(phrases=["Acme", "Globex"], boost=10)],
        endpointing_config=rasr.EndpointingConfig(stop_history=50),
        diarization_config=rasr.SpeakerDiarizationConfig(enable_speaker_diarization=True),
        custom_configuration={"call_id": "c-1", "customer_consent": "denied", "keyterms": "Initech", "crm": "sf"},
    )
    request = parse_config(config, True, CompatSettings(consent="granted", speaker="customer"))
    assert request.format.sample_rate == 8000 and request.call_id == "c-1" and request.speaker == "mixed"
    meta = request.metadata
    # What the stream says; the rest is compat.consent, the call's consent default when it opens.
    assert (meta.rep.consent, meta.customer.consent) == (Consent.UNKNOWN, Consent.DENIED)
    assert meta.recognition.keyterms == ("Initech", "Acme", "Globex")
    assert (meta.recognition.endpointing_ms, meta.recognition.interim_results) == (100, True)
    assert meta.extra == {"crm": "sf"}
    assert request.diarized and request.channels(request.format, 8000)[0].diarize
    plain = parse_config(rasr.RecognitionConfig(sample_rate_hertz=16000), False, CompatSettings(speaker="customer"))
    assert plain.speaker == "customer" and not plain.punctuation and not plain.diarized
    # Says nothing of speakers: one voice of compat.speaker's role, not diarized; speaker=mixed: diarized.
    undeclared = parse_config(rasr.RecognitionConfig(sample_rate_hertz=8000), False, CompatSettings())
    assert (undeclared.speaker, undeclared.diarized) == ("mixed", False)
    assert not undeclared.channels(undeclared.format, 8000)[0].diarize
    mixed = parse_config(
        rasr.RecognitionConfig(sample_rate_hertz=8000, custom_configuration={"speaker": "mixed"}),
        False,
        CompatSettings(speaker="rep"),
    )
    assert (mixed.speaker, mixed.diarized, mixed.diarization) == ("mixed", True, False)
    declared = rasr.RecognitionConfig(
        sample_rate_hertz=8000,
        custom_configuration={"speaker": "customer"},
        diarization_config=rasr.SpeakerDiarizationConfig(enable_speaker_diarization=True),
    )
    assert (parse_config(declared, False, CompatSettings()).speaker, request.diarization) == ("customer", True)
    with pytest.raises(BadRequest, match="OGGOPUS"):
        parse_config(rasr.RecognitionConfig(encoding=raudio.OGGOPUS), False, CompatSettings())
    with pytest.raises(BadRequest, match="sample_rate_hertz"):
        parse_config(rasr.RecognitionConfig(sample_rate_hertz=500), False, CompatSettings())
