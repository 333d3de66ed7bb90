"""Asterisk AudioSocket: the parser (round trips, every malformed case, fuzz), the life cycle in process, real speech
end to end against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_server.audio import Audio
from media_server.bus import InMemoryEventBus
from media_server.calls.call import Call, CallServices
from media_server.calls.lifecycle import CallLifecycle
from media_server.client.wav import Recording, read_wav
from media_server.config import AudioSocketSettings, IngestSettings, Settings
from media_server.events import to_json
from media_server.ingest.audiosocket.parser import (
    TERMINATE,
    AsteriskError,
    AudioSocketParser,
    CallUuid,
    Kind,
    encode,
    frame,
)
from media_server.ingest.audiosocket.server import AudioSocketServer
from media_server.ingest.messages import DtmfDigit, ProtocolError, StreamStop
from media_server.services import Services, streaming_config
from media_server.store.journal import Journal
from media_server.store.store import Store
from media_server.teams.directory import TeamDirectory
from models.asr.scheduler import DecodeScheduler
from tests.conftest import EventLog, Server, collect_events, free_port, start_server, stop_server
from tests.fakes import FakeEngine, FakeVAD, Voice
from tests.speech import SPEECH_DIR, Program, program, tel8k, wer

UUID = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")
HEADER_UUID = bytes.fromhex("010010") + UUID.bytes  # as Asterisk's ast_audiosocket_init() writes it


def pcm(n: int, seed: int = 0) -> npt.NDArray[np.int16]:
    return np.random.default_rng(seed).integers(-32768, 32767, n, dtype=np.int16)


# -- the parser ------------------------------------------------------------------------------------


def test_parses_every_message_kind() -> None:
    audio = pcm(160)
    stream = (
        HEADER_UUID
        + bytes([0x10, 0x01, 0x40])
        + audio.astype("<i2").tobytes()  # 320 bytes: 20 ms at 8 kHz
        + bytes([0x03, 0x00, 0x01])
        + b"#"
        + bytes([0xFF, 0x00, 0x01, 0x02])
        + bytes([0x00, 0x00, 0x00])
    )
    messages = AudioSocketParser().feed(stream)
    assert [type(m) for m in messages] == [CallUuid, Audio, DtmfDigit, AsteriskError, StreamStop]
    first, sound, digit, error, _ = messages
    assert isinstance(first, CallUuid) and first.call_id == "40325ec2-5efd-4bd3-805f-53576e581d13"
    assert isinstance(sound, Audio) and sound.sample_rate == 8000 and np.array_equal(sound.pcm, audio)
    assert sound.pcm.dtype == np.int16
    assert digit == DtmfDigit(0, "#")
    assert isinstance(error, AsteriskError) and error.code == 0x02 and not error.hangup
    assert "frame forwarding" in error.describe()


@pytest.mark.parametrize(
    ("kind", "rate"),
    [
        (0x10, 8000),
        (0x11, 12000),
        (0x12, 16000),
        (0x13, 24000),
        (0x14, 32000),
        (0x15, 44100),
        (0x16, 48000),
        (0x17, 96000),
        (0x18, 192000),
    ],
)
def test_audio_kinds_give_their_rate(kind: int, rate: int) -> None:
    samples = pcm(rate // 50)  # 20 ms
    messages = AudioSocketParser().feed(HEADER_UUID + frame(kind, samples.astype("<i2").tobytes()))
    audio = messages[1]
    assert isinstance(audio, Audio) and audio.sample_rate == rate and np.array_equal(audio.pcm, samples)
    assert encode(audio) == frame(kind, samples.astype("<i2").tobytes())


def test_little_endian_samples_and_big_endian_length() -> None:
    parser = AudioSocketParser()
    parser.feed(HEADER_UUID)
    (audio,) = parser.feed(bytes([0x10, 0x00, 0x04, 0x01, 0x00, 0xFF, 0x7F]))
    assert isinstance(audio, Audio) and audio.pcm.tolist() == [1, 32767]


def test_message_split_across_reads() -> None:
    stream = HEADER_UUID + frame(Kind.SLIN, pcm(160).tobytes()) + frame(Kind.DTMF, b"7") + TERMINATE
    whole = AudioSocketParser().feed(stream)
    for cut in ([1], [2], [3], [18], [19, 20], [22, 100, 300]):
        parser = AudioSocketParser()
        got: list[Any] = []
        start = 0
        for end in [*cut, len(stream)]:
            got += parser.feed(stream[start:end])
            start = end
        assert [encode(m) for m in got] == [encode(m) for m in whole]
        assert parser.pending == 0
    parser = AudioSocketParser()
    got = [m for b in stream for m in parser.feed(bytes([b]))]  # one byte at a time
    assert [encode(m) for m in got] == [encode(m) for m in whole]


def test_incomplete_message_is_held() -> None:
    parser = AudioSocketParser()
    assert parser.feed(HEADER_UUID[:10]) == []
    assert parser.pending == 10
    assert len(parser.feed(HEADER_UUID[10:])) == 1
    assert parser.feed(bytes([0x10, 0x01])) == [] and parser.pending == 2


def test_messages_before_a_malformed_one_are_handed_out_first() -> None:
    parser = AudioSocketParser()
    parser.push(HEADER_UUID + frame(Kind.SLIN, pcm(160).tobytes()) + bytes([0x10, 0x00, 0x03, 1, 2, 3]))
    assert isinstance(parser.next_message(), CallUuid)
    assert isinstance(parser.next_message(), Audio)
    with pytest.raises(ProtocolError):
        parser.next_message()
    with pytest.raises(ProtocolError):  # the stream is not trusted after an error
        parser.feed(frame(Kind.DTMF, b"1"))


@pytest.mark.parametrize(
    ("stream", "code", "words"),
    [
        (HEADER_UUID + bytes([0x02, 0x00, 0x00]), "unknown_message_type", "0x02"),
        (HEADER_UUID + bytes([0x19, 0x00, 0x02, 0, 0]), "unknown_message_type", "0x19"),
        (HEADER_UUID + bytes([0x20, 0x00, 0x00]), "unknown_message_type", "0x20"),
        (bytes([0x01, 0x00, 0x0F]) + b"x" * 15, "invalid_payload", "16 bytes"),
        (bytes([0x01, 0x00, 0x11]) + b"x" * 17, "invalid_payload", "16 bytes"),
        (bytes([0x01, 0x00, 0x00]), "invalid_payload", "16 bytes"),
        (HEADER_UUID + bytes([0x10, 0x01, 0x41]) + b"\0" * 321, "invalid_payload", "16-bit samples"),
        (HEADER_UUID + bytes([0x12, 0x00, 0x01, 0]), "invalid_payload", "16-bit samples"),
        (HEADER_UUID + bytes([0x03, 0x00, 0x01]) + b"x", "invalid_payload", "DTMF"),
        (HEADER_UUID + bytes([0x03, 0x00, 0x01]) + b"a", "invalid_payload", "DTMF"),
        (HEADER_UUID + bytes([0x03, 0x00, 0x01]) + b"\0", "invalid_payload", "DTMF"),
        (HEADER_UUID + bytes([0x03, 0x00, 0x02]) + b"12", "invalid_payload", "DTMF"),
        (HEADER_UUID + bytes([0x03, 0x00, 0x00]), "invalid_payload", "DTMF"),
        (bytes([0x10, 0x01, 0x40]) + b"\0" * 320, "protocol_violation", "before the UUID"),
        (bytes([0x03, 0x00, 0x01]) + b"1", "protocol_violation", "before the UUID"),
        (HEADER_UUID + HEADER_UUID, "protocol_violation", "second UUID"),
        (HEADER_UUID + bytes([0x10, 0x40, 0x02]), "frame_too_large", "over"),
        (HEADER_UUID + bytes([0xFF, 0xFF, 0xFF]), "frame_too_large", "over"),
        (HEADER_UUID + bytes([0x00, 0x00, 0x01, 0x00]), "invalid_payload", "terminate"),
        (HEADER_UUID + TERMINATE + frame(Kind.DTMF, b"1"), "protocol_violation", "after the terminate"),
    ],
)
def test_malformed_input_is_refused(stream: bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        AudioSocketParser().feed(stream)
    assert caught.value.code == code
    assert words in caught.value.message


def test_bad_header_is_refused_before_its_payload_arrives() -> None:
    parser = AudioSocketParser()
    parser.feed(HEADER_UUID)
    with pytest.raises(ProtocolError, match="over"):
        parser.feed(bytes([0x10, 0xFF, 0xFE]))  # 65534 bytes announced: refused without waiting for them


def test_hangup_and_errors_may_come_before_the_uuid() -> None:
    assert isinstance(AudioSocketParser().feed(TERMINATE)[0], StreamStop)
    (error,) = AudioSocketParser().feed(frame(Kind.ERROR, b"\x01"))
    assert isinstance(error, AsteriskError) and error.hangup and "hung up" in error.describe()


def test_error_payloads() -> None:
    assert AsteriskError(b"").code is None and AsteriskError(b"").describe() == "error (no code)"
    assert "memory" in AsteriskError(b"\x05").describe() and AsteriskError(b"\x05").hangup
    assert "unknown error bits 0x80" in AsteriskError(b"\x80").describe()
    assert AsteriskError(b"app-specific").code is None and not AsteriskError(b"app-specific").hangup


def test_encode_refuses_what_the_protocol_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode(Audio(0, pcm(10), 22050))
    with pytest.raises(ValueError):
        encode(DtmfDigit(0, "x"))
    with pytest.raises(ValueError):
        frame(Kind.SLIN, b"\0" * 70000)


def test_documented_call_parses_and_encodes_back_byte_for_byte() -> None:
    """tests/data/traffic/audiosocket_call.bin: one connection as the AudioSocket protocol document describes it."""
    wire = (Path(__file__).parent / "data" / "traffic" / "audiosocket_call.bin").read_bytes()
    messages = AudioSocketParser().feed(wire)
    assert [type(m) for m in messages] == [CallUuid, Audio, Audio, Audio, DtmfDigit, Audio, AsteriskError, StreamStop]
    assert isinstance(messages[0], CallUuid) and messages[0].call_id == "40325ec2-5efd-4bd3-805f-53576e581d13"
    audio = [m for m in messages if isinstance(m, Audio)]
    assert [(a.channel, a.sample_rate, a.pcm.size) for a in audio] == [(0, 8000, 160)] * 4
    assert messages[4] == DtmfDigit(0, "5")
    error = messages[6]
    assert isinstance(error, AsteriskError) and error.code == 0x02 and not error.hangup
    assert b"".join(encode(m) for m in messages) == wire


# -- fuzz ------------------------------------------------------------------------------------------


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
def test_fuzz_arbitrary_bytes_raise_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    def parse(chunks: list[bytes]) -> tuple[list[bytes], str | None]:
        parser = AudioSocketParser(max_payload=512)
        out: list[bytes] = []
        try:
            for chunk in chunks:
                parser.push(chunk)
                while (message := parser.next_message()) is not None:
                    out.append(encode(message))
        except ProtocolError as exc:
            return out, exc.code
        return out, None

    # Nothing but ProtocolError escapes, and how the bytes were cut makes no difference.
    assert parse(_chunked(data, cuts)) == parse([data])


@st.composite
def valid_streams(draw: st.DrawFn) -> list[Any]:
    messages: list[Any] = []
    if draw(st.booleans()):
        messages.append(AsteriskError(draw(st.binary(max_size=4))))
    messages.append(CallUuid(uuid.UUID(bytes=draw(st.binary(min_size=16, max_size=16)))))
    for _ in range(draw(st.integers(0, 12))):
        choice = draw(st.integers(0, 3))
        if choice <= 1:
            rate = draw(st.sampled_from([8000, 12000, 16000, 24000, 32000, 44100, 48000, 96000, 192000]))
            samples = draw(st.lists(st.integers(-32768, 32767), max_size=200))
            messages.append(Audio(0, np.array(samples, dtype=np.int16), rate))
        elif choice == 2:
            messages.append(DtmfDigit(0, draw(st.sampled_from(sorted("0123456789*#ABCD")))))
        else:
            messages.append(AsteriskError(draw(st.binary(max_size=4))))
    if draw(st.booleans()):
        messages.append(StreamStop())
    return messages


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages=valid_streams(), cuts=st.lists(st.integers(0, 5000), max_size=10))
def test_fuzz_valid_streams_round_trip(messages: list[Any], cuts: list[int]) -> None:
    wire = b"".join(encode(m) for m in messages)
    parser = AudioSocketParser()
    got = [m for chunk in _chunked(wire, cuts) for m in parser.feed(chunk)]
    assert [encode(m) for m in got] == [encode(m) for m in messages]
    assert [type(m) for m in got] == [type(m) for m in messages]
    for sent, parsed in zip(messages, got, strict=True):
        if isinstance(sent, Audio):
            assert isinstance(parsed, Audio) and parsed.sample_rate == sent.sample_rate
            assert np.array_equal(parsed.pcm, sent.pcm)
    assert parser.pending == 0


# -- a client, as Asterisk ---------------------------------------------------------------------------


@dataclass
class Sent:
    reply: bytes  # what the server sent back
    closed: bool  # the server closed the connection


async def asterisk(
    port: int,
    call_id: uuid.UUID,
    audio: npt.NDArray[np.int16] | None = None,
    rate: int = 8000,
    speed: float = 4.0,
    dtmf: str = "",
    ending: bytes | None = TERMINATE,
    abort: bool = False,
    local_host: str | None = None,
    reply_timeout: float = 10.0,
) -> Sent:
    """Stream like app_audiosocket: the UUID, 20 ms audio messages paced at ``speed`` times real time,
    digits, then ``ending`` (a hang-up by default; anything else, e.g. a malformed message, is sent as is)."""
    local = (local_host, 0) if local_host else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    received = bytearray()

    async def read_replies() -> None:  # from the start, so that a reply is read before any reset
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(1024):
                received.extend(chunk)

    replies = asyncio.create_task(read_replies())
    try:
        with contextlib.suppress(ConnectionError):  # the server may close first: what it said is in `received`
            writer.write(frame(Kind.UUID, call_id.bytes))
            step = rate // 50
            kind = {8000: Kind.SLIN, 16000: Kind.SLIN16, 24000: Kind.SLIN24, 48000: Kind.SLIN48}[rate]
            samples = audio if audio is not None else np.zeros(0, dtype=np.int16)
            for offset in range(0, len(samples), step):
                if replies.done() or received:
                    break
                writer.write(frame(kind, samples[offset : offset + step].astype("<i2").tobytes()))
                await writer.drain()
                await asyncio.sleep(0.02 / speed)
            for digit in dtmf:
                writer.write(frame(Kind.DTMF, digit.encode()))
            if abort:
                writer.transport.abort()
                return Sent(b"", True)
            if ending:
                writer.write(ending)
            await writer.drain()
        try:
            await asyncio.wait_for(asyncio.shield(replies), reply_timeout)
        except TimeoutError:
            return Sent(bytes(received), False)
        return Sent(bytes(received), True)
    finally:
        replies.cancel()
        writer.close()


# -- the life cycle, in process (consent denied: no model needed) ----------------------------------


@dataclass
class Local:
    services: Services
    server: AudioSocketServer

    async def events(self, call_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        subscription = self.services.journal.subscribe("acme", call_id, after=0)
        try:
            async with asyncio.timeout(timeout):
                async for event in subscription:
                    out.append(json.loads(to_json(event)))
                    if event.type == "call_ended":
                        break
        finally:
            subscription.close()
        return out

    async def live_call(self, call_id: str) -> Call:
        """The call once it has started (the registry holds an id from before its start: a call still opening)."""
        async with asyncio.timeout(10):
            while (call := self.services.calls.live.get(call_id)) is None or not call.announced:
                await asyncio.sleep(0.01)
        return call


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Local]:
    settings = Settings(
        data_dir=tmp_path,
        audiosocket=AudioSocketSettings(
            enabled=True, host="127.0.0.1", port=0, team="acme", consent="denied", allow=["127.0.0.1"]
        ),
        ingest=IngestSettings(idle_timeout_s=0.6, start_timeout_s=0.6),
    )
    store = Store(settings.db_url)
    await store.open()
    bus = InMemoryEventBus()
    journal = Journal(store, bus)
    await journal.start()
    vad, scheduler = FakeVAD(), DecodeScheduler(FakeEngine(Voice()))  # no model: tests/fakes.py
    call_services = CallServices(journal, vad, scheduler, streaming_config(settings), settings.consent_policy)
    teams = TeamDirectory(store)
    services = Services(
        settings, store, bus, journal, vad, scheduler, CallLifecycle(call_services, store, teams), teams
    )
    server = await AudioSocketServer.start(services)
    try:
        yield Local(services, server)
    finally:
        await server.close()
        await services.calls.shutdown()
        await journal.close()
        await bus.close()
        scheduler.close()
        await store.close()


async def test_server_binds_any_free_port(local: Local) -> None:
    assert local.server.port > 0


async def test_hangup_completes_the_call_and_stores_it(local: Local) -> None:
    call_id = uuid.uuid4()
    events = asyncio.create_task(local.events(str(call_id)))
    sent = await asterisk(local.server.port, call_id, np.zeros(8000, dtype=np.int16), speed=20, dtmf="5")
    assert sent.closed and sent.reply == b""  # Asterisk hung up: nothing to say back
    log = await events
    assert [e["type"] for e in log] == ["call_started", "dtmf", "call_ended"]
    started = log[0]["callStarted"]
    assert started["source"] == "audiosocket"
    (channel,) = started["channels"]
    assert (channel["index"], channel["speaker"], channel["sampleRate"], channel["transcribed"]) == (
        0,
        "mixed",
        8000,
        False,
    )
    assert started["metadata"]["peer"].startswith("127.0.0.1:")
    assert log[1]["dtmf"] == {"channel": 0, "digit": "5"}
    assert (log[2]["callEnded"]["status"], log[2]["callEnded"]["reason"]) == ("completed", "hangup")
    record = await local.services.store.get_call("acme", str(call_id))
    assert record is not None and record.source == "audiosocket" and record.status == "completed"
    assert {p.consent for p in record.participants} == {"denied"} and not record.segments


async def test_close_ends_live_calls_once_as_server_shutdown(local: Local) -> None:
    call_id = str(uuid.uuid4())
    events = asyncio.create_task(local.events(call_id, timeout=60))
    # Enough audio (a minute) that the client is still streaming when the server closes, however loaded the machine.
    audio = np.zeros(8000 * 60, dtype=np.int16)
    client = asyncio.create_task(asterisk(local.server.port, uuid.UUID(call_id), audio))
    await local.live_call(call_id)
    await local.server.close()
    assert call_id not in local.services.calls.live
    sent = await client
    assert sent.reply == TERMINATE and sent.closed
    log = await events
    assert [e["type"] for e in log].count("call_ended") == 1
    assert log[-1]["callEnded"]["reason"] == "server_shutdown"
    await local.services.calls.shutdown()  # what the app runs next: nothing left to end
    record = await local.services.store.get_call("acme", call_id)
    assert record is not None and (record.status, record.end_reason) == ("interrupted", "server_shutdown")
    with pytest.raises(OSError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", local.server.port)


async def test_no_audio_for_the_idle_timeout_ends_the_call(local: Local) -> None:
    call_id = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", local.server.port)
    writer.write(frame(Kind.UUID, call_id.bytes) + frame(Kind.SLIN, b"\0" * 320))
    await writer.drain()
    for _ in range(6):  # digits keep the socket busy, but they are not audio
        await asyncio.sleep(0.15)
        writer.write(frame(Kind.DTMF, b"1"))
    assert await asyncio.wait_for(reader.read(), 5) == TERMINATE
    writer.close()
    record = await local.services.store.get_call("acme", str(call_id))
    assert record is not None and (record.status, record.end_reason) == ("interrupted", "idle_timeout")


async def test_a_silent_connection_is_closed_after_the_start_timeout(local: Local) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", local.server.port)
    assert await asyncio.wait_for(reader.read(), 5) == TERMINATE
    writer.close()
    # Only a UUID, no audio: no call is opened.
    call_id = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", local.server.port)
    writer.write(frame(Kind.UUID, call_id.bytes))
    assert await asyncio.wait_for(reader.read(), 5) == TERMINATE
    writer.close()
    assert not await local.services.store.call_exists("acme", str(call_id))


async def test_hangup_before_audio_opens_no_call(local: Local) -> None:
    call_id = uuid.uuid4()
    sent = await asterisk(local.server.port, call_id, dtmf="1")
    assert sent.closed and sent.reply == b""
    assert not await local.services.store.call_exists("acme", str(call_id))


async def test_digits_before_the_first_audio_and_asterisk_errors(local: Local) -> None:
    call_id = uuid.uuid4()
    events = asyncio.create_task(local.events(str(call_id)))
    reader, writer = await asyncio.open_connection("127.0.0.1", local.server.port)
    writer.write(frame(Kind.UUID, call_id.bytes) + frame(Kind.DTMF, b"9") + frame(Kind.SLIN, b"\0" * 320))
    writer.write(frame(Kind.ERROR, b"\x02"))  # frame forwarding failed: reported, the call goes on
    writer.write(frame(Kind.SLIN, b"\0" * 320))
    writer.write(frame(Kind.ERROR, b"\x01"))  # the calling party hung up: the call is over
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    log = await events
    assert [e["type"] for e in log] == ["call_started", "dtmf", "error", "error", "call_ended"]
    assert log[1]["dtmf"]["digit"] == "9"
    assert log[2]["error"]["code"] == "asterisk_error" and "frame forwarding" in log[2]["error"]["message"]
    assert "hung up" in log[3]["error"]["message"]
    assert (log[4]["callEnded"]["status"], log[4]["callEnded"]["reason"]) == ("completed", "hangup")


async def test_a_live_or_stored_uuid_is_refused_without_harm_to_the_call(local: Local) -> None:
    call_id = uuid.uuid4()
    first = asyncio.create_task(asterisk(local.server.port, call_id, np.zeros(16000, dtype=np.int16), speed=4))
    await local.live_call(str(call_id))
    twin = await asterisk(local.server.port, call_id, np.zeros(800, dtype=np.int16), speed=20)
    assert twin.reply == TERMINATE and twin.closed
    assert str(call_id) in local.services.calls.live, "the call already streaming is not touched"
    assert (await first).closed
    record = await local.services.store.get_call("acme", str(call_id))
    assert record is not None and record.status == "completed"
    again = await asterisk(local.server.port, call_id, np.zeros(800, dtype=np.int16), speed=20)
    assert again.reply == TERMINATE  # stored already: refused too
    record = await local.services.store.get_call("acme", str(call_id))
    assert record is not None and record.status == "completed"


async def test_a_call_over_capacity_gets_a_terminate_and_is_not_opened(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    local.services.calls.max_live = 1
    first, second = uuid.uuid4(), uuid.uuid4()
    holder = asyncio.create_task(asterisk(local.server.port, first, np.zeros(16000, dtype=np.int16), speed=4))
    await local.live_call(str(first))
    refused = await asterisk(local.server.port, second, np.zeros(800, dtype=np.int16), speed=20)
    assert refused.reply == TERMINATE and refused.closed
    assert list(local.services.calls.live) == [str(first)], "the call already streaming is not touched"
    assert f"(call {second}) refused: the server holds 1 calls" in caplog.text
    assert (await holder).closed
    assert not await local.services.store.call_exists("acme", str(second))
    record = await local.services.store.get_call("acme", str(first))
    assert record is not None and record.status == "completed"


async def test_malformed_input_gets_a_terminate_and_the_call_is_kept(local: Local) -> None:
    call_id = uuid.uuid4()
    events = asyncio.create_task(local.events(str(call_id)))
    sent = await asterisk(local.server.port, call_id, np.zeros(1600, dtype=np.int16), ending=bytes([0x42, 0, 0]))
    assert sent.reply == TERMINATE and sent.closed
    log = await events
    assert log[-2]["error"]["code"] == "unknown_message_type"
    assert log[-1]["callEnded"]["reason"] == "protocol_error"


async def test_other_rates_are_resampled_to_16k_and_a_rate_change_is_followed(local: Local) -> None:
    call_id = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", local.server.port)
    writer.write(frame(Kind.UUID, call_id.bytes))
    for _ in range(50):  # 1 s at 24 kHz
        writer.write(frame(Kind.SLIN24, pcm(480).tobytes()))
    await writer.drain()
    call = await local.live_call(str(call_id))
    for _ in range(50):  # 1 s at 8 kHz: resampled to the channel's 16 kHz too
        writer.write(frame(Kind.SLIN, pcm(160).tobytes()))
    for _ in range(50):  # 1 s at 16 kHz, as it is
        writer.write(frame(Kind.SLIN16, pcm(320).tobytes()))
    writer.write(TERMINATE)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    record = await local.services.store.get_call("acme", str(call_id))
    assert record is not None and record.status == "completed"
    assert [c.sample_rate for c in record.channels] == [16000]
    assert abs(call.channels[0].samples - 48000) <= 4  # 3 s on the 16 kHz timeline, nothing lost


# -- end to end: a real server, real speech ----------------------------------------------------------


@dataclass
class Pbx:
    """A real server with AudioSocket enabled, and the port Asterisk would connect to."""

    server: Server
    port: int


def _server_with_audiosocket(path: Path, **extra: str) -> Pbx:
    port = free_port()
    env = {
        "MEDIA_SERVER_AUDIOSOCKET__ENABLED": "true",
        "MEDIA_SERVER_AUDIOSOCKET__PORT": str(port),
        "MEDIA_SERVER_AUDIOSOCKET__HOST": "127.0.0.1",
        "MEDIA_SERVER_AUDIOSOCKET__ALLOW": '["127.0.0.1/32"]',
        "MEDIA_SERVER_AUDIOSOCKET__TEAM": "acme",
        "MEDIA_SERVER_AUDIOSOCKET__CONSENT": "granted",
        "MEDIA_SERVER_INGEST__IDLE_TIMEOUT_S": "4",
        **extra,
    }
    return Pbx(start_server(path, env), port)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    srv = _server_with_audiosocket(tmp_path_factory.mktemp("audiosocket"))
    yield srv
    stop_server(srv.server)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    """Consent denied, and only 127.0.0.2 may connect."""
    srv = _server_with_audiosocket(
        tmp_path_factory.mktemp("audiosocket-guarded"),
        MEDIA_SERVER_AUDIOSOCKET__CONSENT="denied",
        MEDIA_SERVER_AUDIOSOCKET__ALLOW='["127.0.0.2"]',
    )
    yield srv
    stop_server(srv.server)


def librivox16k(indices: list[int]) -> tuple[list[str], npt.NDArray[np.int16]]:
    """Utterances of the 16 kHz LibriVox set, 1.2 s of silence after each, and their references."""
    manifest = json.loads((SPEECH_DIR / "manifest.json").read_text())
    entries = [[e for e in manifest if e["set"] == "librivox"][i] for i in indices]
    parts = []
    for entry in entries:
        recording = read_wav(SPEECH_DIR / entry["wav"])
        assert recording.sample_rate == 16000
        parts += [recording.channels[0], np.zeros(int(1.2 * 16000), dtype=np.int16)]
    return [e["ref"] for e in entries], np.concatenate(parts)


def with_silence(audio: npt.NDArray[np.int16], rate: int, lead_s: float = 0.5, tail_s: float = 1.2) -> Any:
    return np.concatenate(
        [np.zeros(int(lead_s * rate), dtype=np.int16), audio, np.zeros(int(tail_s * rate), dtype=np.int16)]
    )


async def subscribe(pbx: Pbx, call_id: uuid.UUID) -> asyncio.Task[EventLog]:
    url = f"{pbx.server.ws_url}/v1/calls/{call_id}/events?token={pbx.server.keys['admin']}"
    task = asyncio.create_task(collect_events(url, timeout=120))
    await asyncio.sleep(0.2)  # subscribed before the call starts
    return task


def stored(pbx: Pbx, call_id: uuid.UUID) -> dict[str, Any]:
    with pbx.server.http(pbx.server.keys["admin"]) as http:
        response = http.get(f"/v1/calls/{call_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def finals(log: EventLog) -> list[str]:
    return [t["text"] for t in log.transcripts(final=True)]


@pytest.mark.e2e
async def test_asterisk_call_is_transcribed_live_and_stored(pbx: Pbx) -> None:
    call_id = uuid.uuid4()
    speech: Program = program(tel8k()[:3])
    refs = [u.ref for _, _, u in speech.spans]
    events = await subscribe(pbx, call_id)
    sent = await asterisk(pbx.port, call_id, speech.pcm, dtmf="4")
    assert sent.closed and sent.reply == b""
    log = await events

    types = [e["type"] for e in log.events]
    assert types[0] == "call_started" and types[-1] == "call_ended"
    started = log.events[0]["callStarted"]
    assert started["source"] == "audiosocket"
    (channel,) = started["channels"]
    assert (channel["index"], channel["speaker"], channel["sampleRate"], channel["transcribed"]) == (
        0,
        "mixed",
        8000,
        True,
    )
    rate = wer(refs, finals(log))
    print(f"audiosocket 8 kHz WER {rate:.3f}")
    assert rate < 0.2, (rate, finals(log))
    assert [e["dtmf"] for e in log.of_type("dtmf")] == [{"channel": 0, "digit": "4"}]
    ended = log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("completed", "hangup")

    call = stored(pbx, call_id)
    assert call["source"] == "audiosocket" and call["status"] == "completed" and call["team"] == "acme"
    assert [s["text"] for s in call["transcript"]] == finals(log)
    # One channel with everyone on it: diarized, and the one voice is "speaker 1".
    assert all(s["speaker"] == "speaker 1" and s["channel"] == 0 and s["words"] for s in call["transcript"])
    assert {p["consent"] for p in call["participants"]} == {"granted"}


@pytest.mark.e2e
async def test_16k_and_48k_audio(pbx: Pbx) -> None:
    for indices, rate in (([0, 4], 16000), ([2, 3], 48000)):
        refs, audio16k = librivox16k(indices)
        audio = Recording([with_silence(audio16k, 16000, tail_s=0)], 16000).at_rate(rate).channels[0]
        call_id = uuid.uuid4()
        events = await subscribe(pbx, call_id)
        await asterisk(pbx.port, call_id, audio, rate=rate)
        log = await events
        assert log.events[0]["callStarted"]["channels"][0]["sampleRate"] == 16000
        measured = wer(refs, finals(log))
        print(f"audiosocket {rate} Hz WER {measured:.3f}")
        assert measured < 0.2, (rate, measured, finals(log))
        assert log.events[-1]["callEnded"]["status"] == "completed"


@pytest.mark.e2e
async def test_abrupt_disconnect_keeps_the_call_as_interrupted(pbx: Pbx) -> None:
    utt = tel8k()[1]
    call_id = uuid.uuid4()
    events = await subscribe(pbx, call_id)
    # Cut off right after the speech, before its utterance is endpointed: the final still comes.
    await asterisk(pbx.port, call_id, with_silence(utt.pcm, 8000, tail_s=0.1), abort=True)
    log = await events
    ended = log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("interrupted", "disconnected")
    call = stored(pbx, call_id)
    assert call["status"] == "interrupted" and call["endReason"] == "disconnected"
    assert wer([utt.ref], [s["text"] for s in call["transcript"]]) < 0.2


@pytest.mark.e2e
async def test_malformed_message_ends_only_its_own_call(pbx: Pbx) -> None:
    bad_utt, good_utt = tel8k()[1], tel8k()[5]
    bad_id, good_id = uuid.uuid4(), uuid.uuid4()
    bad_events, good_events = await subscribe(pbx, bad_id), await subscribe(pbx, good_id)
    odd = bytes([Kind.SLIN, 0x00, 0x03, 1, 2, 3])  # 3 bytes: not whole samples
    bad, good = await asyncio.gather(
        asterisk(pbx.port, bad_id, with_silence(bad_utt.pcm, 8000), ending=odd),
        asterisk(pbx.port, good_id, with_silence(good_utt.pcm, 8000, lead_s=2.0)),
    )
    assert bad.reply == TERMINATE and bad.closed
    assert good.reply == b"" and good.closed
    bad_log, good_log = await bad_events, await good_events
    errors = bad_log.of_type("error")
    assert errors and errors[0]["error"]["code"] == "invalid_payload"
    ended = bad_log.events[-1]["callEnded"]
    assert (ended["status"], ended["reason"]) == ("interrupted", "protocol_error")
    call = stored(pbx, bad_id)
    assert call["status"] == "interrupted"
    assert wer([bad_utt.ref], [s["text"] for s in call["transcript"]]) < 0.2, "what was said before is kept"
    assert good_log.events[-1]["callEnded"]["status"] == "completed"
    assert wer([good_utt.ref], finals(good_log)) < 0.2
    assert "not a whole number of 16-bit samples" in pbx.server.log()


@pytest.mark.e2e
async def test_source_not_allowed_is_refused(guarded: Pbx) -> None:
    call_id = uuid.uuid4()
    sent = await asterisk(guarded.port, call_id, np.zeros(1600, dtype=np.int16), speed=20, reply_timeout=5)
    assert sent.closed and sent.reply == b""
    with guarded.server.http(guarded.server.keys["admin"]) as http:
        assert http.get(f"/v1/calls/{call_id}").status_code == 404
    assert "refused: not in audiosocket.allow" in guarded.server.log()


@pytest.mark.e2e
async def test_an_empty_allow_list_refuses_every_source(tmp_path: Path) -> None:
    """Fail closed: no allow-list is no one, and the log says how to let the PBX in."""
    pbx = _server_with_audiosocket(tmp_path / "closed", MEDIA_SERVER_AUDIOSOCKET__ALLOW="[]")
    try:
        sent = await asterisk(pbx.port, uuid.uuid4(), np.zeros(1600, dtype=np.int16), speed=20, reply_timeout=5)
        assert sent.closed and sent.reply == b""
        log = pbx.server.log()
        assert "audiosocket.allow is empty: every source is refused" in log
        assert "refused: not in audiosocket.allow" in log
    finally:
        stop_server(pbx.server)


@pytest.mark.e2e
async def test_consent_denied_means_no_transcript(guarded: Pbx) -> None:
    utt = tel8k()[1]
    call_id = uuid.uuid4()
    events = await subscribe(guarded, call_id)
    sent = await asterisk(guarded.port, call_id, with_silence(utt.pcm, 8000), local_host="127.0.0.2")
    assert sent.closed and sent.reply == b""
    log = await events
    assert log.events[0]["callStarted"]["channels"][0]["transcribed"] is False
    assert not log.transcripts() and not log.of_type("speech_started")
    assert log.events[-1]["callEnded"]["status"] == "completed"
    call = stored(guarded, call_id)
    assert call["transcript"] == [] and {p["consent"] for p in call["participants"]} == {"denied"}
    assert not [w for w in utt.ref.split() if len(w) > 4 and w in json.dumps([*log.events, call]).lower()]
