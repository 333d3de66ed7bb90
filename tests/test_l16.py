"""Raw L16 websocket ingest (jambonz listen, FreeSWITCH mod_audio_fork): metadata frame, PCM frames, errors."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_server.audio import Audio
from media_server.calls.call import ChannelSpec
from media_server.ingest.l16.parser import L16Parser
from media_server.ingest.messages import Notice, ProtocolError, StreamStart, StreamStop


def _start(parser: L16Parser, **meta: Any) -> StreamStart:
    out = parser.feed_text(json.dumps(meta))
    assert len(out) == 1 and isinstance(out[0], StreamStart)
    return out[0]


def _error_text(parser: L16Parser, text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed_text(text)
    return info.value


def _error_binary(parser: L16Parser, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed_binary(data)
    return info.value


# -- metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "expected"), [(8000, 8000), (16000, 16000), ("16k", 16000), ("8k", 8000), ("8000", 8000)]
)
def test_sample_rate_forms(rate: Any, expected: int) -> None:
    parser = L16Parser()
    start = _start(parser, callSid="c1", sampleRate=rate, mixType="stereo")
    assert parser.sample_rate == expected
    assert [c.sample_rate for c in start.channels] == [expected, expected]
    audio = parser.feed_binary(b"\0" * 8)
    assert [(a.channel, a.sample_rate) for a in audio if isinstance(a, Audio)] == [(0, expected), (1, expected)]


def test_jambonz_stereo_metadata() -> None:
    parser = L16Parser()
    start = _start(
        parser,
        callSid="b6c5e9a0-1c1f-4d5b-9a1d-3f5f7f5f7f5f",
        sampleRate=8000,
        mixType="stereo",
        from_="+15551230000",
        direction="inbound",
    )
    assert start.call_id == "b6c5e9a0-1c1f-4d5b-9a1d-3f5f7f5f7f5f"
    assert start.source == "l16"
    assert start.channels == [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    # The format keys are consumed; everything else is call metadata.
    assert start.metadata == {"from_": "+15551230000", "direction": "inbound"}


@pytest.mark.parametrize("key", ["callSid", "callId", "call_id", "uuid", "callUuid", "call_sid"])
def test_call_id_keys(key: str) -> None:
    start = _start(L16Parser(), **{key: "the-call", "sampleRate": 16000})
    assert start.call_id == "the-call"
    assert key not in start.metadata


def test_missing_call_id_gets_a_generated_one() -> None:
    a = _start(L16Parser(), sampleRate=16000)
    b = _start(L16Parser(), sampleRate=16000)
    assert a.call_id and b.call_id and a.call_id != b.call_id


def test_snake_case_format_keys() -> None:
    parser = L16Parser()
    start = _start(parser, call_id="c", sample_rate="16000", mix_type="STEREO")
    assert parser.sample_rate == 16000 and parser.channels == 2
    assert [c.speaker for c in start.channels] == ["rep", "customer"]


@pytest.mark.parametrize(("speaker", "channel"), [(None, 1), ("customer", 1), ("rep", 0), ("REP", 0)])
def test_mono_speaker_picks_the_channel(speaker: str | None, channel: int) -> None:
    meta: dict[str, Any] = {"callSid": "c", "sampleRate": 16000, "mixType": "mono"}
    if speaker is not None:
        meta["speaker"] = speaker
    parser = L16Parser()
    start = _start(parser, **meta)
    assert start.channels == [ChannelSpec(channel, "rep" if channel == 0 else "customer", 16000)]
    (chunk,) = parser.feed_binary(np.array([1, 2, 3], dtype="<i2").tobytes())
    assert isinstance(chunk, Audio)
    assert chunk.channel == channel


def test_mono_is_the_default_mix() -> None:
    parser = L16Parser()
    start = _start(parser, callSid="c", sampleRate=8000)
    assert parser.channels == 1
    assert start.channels == [ChannelSpec(1, "customer", 8000)]


def test_mixed_is_one_channel_of_both_voices() -> None:
    parser = L16Parser()
    start = _start(parser, callSid="c", sampleRate=8000, mixType="mixed")
    assert start.channels == [ChannelSpec(0, "mixed", 8000)]
    (chunk,) = parser.feed_binary(np.array([5, -5], dtype="<i2").tobytes())
    assert isinstance(chunk, Audio)
    assert chunk.channel == 0 and chunk.pcm.tolist() == [5, -5]


def test_nested_metadata_object_is_merged() -> None:
    start = _start(
        L16Parser(),
        callSid="c",
        sampleRate=8000,
        team="acme",
        metadata={"repConsent": "granted", "customerName": "Zoe"},
    )
    assert start.metadata == {"team": "acme", "repConsent": "granted", "customerName": "Zoe"}


def test_nested_metadata_as_json_string() -> None:
    start = _start(L16Parser(), callSid="c", sampleRate=8000, metadata=json.dumps({"team": "acme"}))
    assert start.metadata == {"team": "acme"}


# -- audio -------------------------------------------------------------------------------------------


def test_stereo_is_split_left_rep_right_customer() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=8000, mixType="stereo")
    left = np.array([100, -200, 32767, -32768, 0], dtype=np.int16)
    right = np.array([1, 2, 3, 4, 5], dtype=np.int16)
    interleaved = np.empty(10, dtype="<i2")
    interleaved[0::2] = left
    interleaved[1::2] = right
    out = parser.feed_binary(interleaved.tobytes())
    assert len(out) == 2
    rep, customer = out
    assert isinstance(rep, Audio) and isinstance(customer, Audio)
    assert rep.channel == 0 and customer.channel == 1
    assert rep.pcm.dtype == np.int16 and customer.pcm.dtype == np.int16
    assert rep.pcm.tolist() == left.tolist()
    assert customer.pcm.tolist() == right.tolist()
    assert rep.start_time is None


def test_samples_are_little_endian() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=16000, mixType="mono")
    (chunk,) = parser.feed_binary(b"\x01\x00\x00\x80\xff\x7f")
    assert isinstance(chunk, Audio)
    assert chunk.pcm.tolist() == [1, -32768, 32767]


def test_empty_binary_frame() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=16000, mixType="stereo")
    out = parser.feed_binary(b"")
    assert [len(c.pcm) for c in out if isinstance(c, Audio)] == [0, 0]


def test_chunk_does_not_alias_a_later_frame() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=16000, mixType="stereo")
    data = bytearray(np.array([1, 2, 3, 4], dtype="<i2").tobytes())
    rep, _customer = parser.feed_binary(bytes(data))
    data[:] = b"\x00" * len(data)
    assert isinstance(rep, Audio)
    assert rep.pcm.tolist() == [1, 3]


@pytest.mark.parametrize("message", [{"event": "stop"}, {"type": "end"}, {"event": "hangup"}])
def test_stop_text_frame(message: dict[str, str]) -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=8000)
    assert parser.feed_text(json.dumps(message)) == [StreamStop()]


def test_other_text_after_metadata_is_a_notice() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=8000)
    (notice,) = parser.feed_text(json.dumps({"event": "dtmf", "digit": "1"}))
    assert isinstance(notice, Notice)
    assert notice.code == "unknown_event"
    # A second metadata frame does not restart the call.
    (notice,) = parser.feed_text(json.dumps({"callSid": "other", "sampleRate": 16000}))
    assert isinstance(notice, Notice)
    assert parser.sample_rate == 8000


def test_flush_returns_nothing() -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=8000)
    parser.feed_binary(b"\x00\x00")
    assert parser.flush() == []


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        {"callSid": "c"},
        {"callSid": "c", "sampleRate": 44100},
        {"callSid": "c", "sampleRate": "48k"},
        {"callSid": "c", "sampleRate": None},
        {"callSid": "c", "sampleRate": [8000]},
        {"callSid": "c", "sampleRate": {"hz": 8000}},
    ],
    ids=["missing", "44100", "48k", "null", "list", "object"],
)
def test_missing_or_unsupported_sample_rate(meta: dict[str, Any]) -> None:
    err = _error_text(L16Parser(), json.dumps(meta))
    assert (err.code, err.close_code) == ("unsupported_format", 1003)
    assert "sampleRate" in err.message


@pytest.mark.parametrize("mix", ["quad", "", "left"])
def test_bad_mix_type(mix: str) -> None:
    err = _error_text(L16Parser(), json.dumps({"callSid": "c", "sampleRate": 8000, "mixType": mix}))
    assert (err.code, err.close_code) == ("unsupported_format", 1003)
    assert "mixType" in err.message


def test_bad_mono_speaker() -> None:
    err = _error_text(L16Parser(), json.dumps({"callSid": "c", "sampleRate": 8000, "speaker": "robot"}))
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize("nested", [[1, 2], 5, "{not json", "plain text", '{"a": ' * 100_000])
def test_nested_metadata_must_be_an_object(nested: Any) -> None:
    err = _error_text(L16Parser(), json.dumps({"callSid": "c", "sampleRate": 8000, "metadata": nested}))
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize("text", ["hello", "", "[1, 2]", '"x"', "[" * 100_000])
def test_metadata_frame_not_a_json_object(text: str) -> None:
    err = _error_text(L16Parser(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


def test_binary_before_metadata() -> None:
    err = _error_binary(L16Parser(), b"\x00\x00" * 160)
    assert (err.code, err.close_code) == ("protocol_violation", 1008)


@pytest.mark.parametrize(("mix", "size"), [("mono", 3), ("stereo", 2), ("stereo", 6), ("mixed", 321)])
def test_partial_sample_frame(mix: str, size: int) -> None:
    parser = L16Parser()
    _start(parser, callSid="c", sampleRate=8000, mixType=mix)
    err = _error_binary(parser, b"\x01" * size)
    assert (err.code, err.close_code) == ("invalid_payload", 1007)


def test_oversize_frame() -> None:
    parser = L16Parser(max_frame_bytes=640)
    _start(parser, callSid="c", sampleRate=16000, mixType="stereo")
    assert len(parser.feed_binary(b"\x00" * 640)) == 2  # at the limit: fine
    err = _error_binary(parser, b"\x00" * 644)
    assert (err.code, err.close_code) == ("frame_too_large", 1009)


# -- fuzzing -----------------------------------------------------------------------------------------

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["8k", "16k", 16000, "stereo", "mixed", "mono", "rep", "{", "[", "{}", "stop"])
    | st.sampled_from([math.inf, math.nan, 8000.0, 2**64])
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_META_KEYS = ["callSid", "uuid", "sampleRate", "sample_rate", "mixType", "mix_type", "speaker", "metadata", "event"]
_METADATA = st.dictionaries(st.sampled_from(_META_KEYS) | st.text(max_size=6), _LEAVES | _JSON, max_size=6)
_FRAME = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32),
    _METADATA.map(json.dumps),
    st.sampled_from([json.dumps({"event": "stop"}), json.dumps({"sampleRate": 8000, "mixType": "stereo"})]),
)


def _feed_safely(parser: L16Parser, frames: list[str | bytes]) -> None:
    for frame in frames:
        try:
            out = parser.feed_binary(frame) if isinstance(frame, bytes) else parser.feed_text(frame)
        except ProtocolError as exc:
            assert exc.code and 1000 <= exc.close_code < 5000
            return  # the stream is closed after a protocol error
        assert isinstance(out, list)
        assert all(isinstance(m, StreamStart | Audio | StreamStop | Notice) for m in out)
        for chunk in out:
            if isinstance(chunk, Audio):
                assert chunk.pcm.dtype == np.int16
    assert parser.flush() == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAME, max_size=6))
def test_fuzz_arbitrary_frames(frames: list[str | bytes]) -> None:
    """Any text or binary frames: a list of messages or a ProtocolError, never another exception."""
    _feed_safely(L16Parser(max_frame_bytes=48), frames)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_META_KEYS), _LEAVES | _JSON, st.lists(_FRAME, max_size=3))
def test_fuzz_one_metadata_field(key: str, value: Any, frames: list[str | bytes]) -> None:
    """A valid metadata frame with one field set to arbitrary JSON, then arbitrary frames."""
    meta = {"callSid": "c", "sampleRate": 8000, "mixType": "stereo", key: value}
    _feed_safely(L16Parser(), [json.dumps(meta), *frames])
