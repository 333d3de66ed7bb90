"""Twilio Media Streams (and the Telnyx variant) parsing: sessions, reordering, errors and fuzzing."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_server.audio import Audio
from media_server.calls.call import ChannelSpec
from media_server.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media_server.ingest.messages import (
    DtmfDigit,
    IngestMessage,
    Notice,
    ProtocolError,
    StreamStart,
    StreamStop,
)
from media_server.ingest.twilio.parser import TwilioParser

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA5c6d0a4cc9d8a1c42a1d03b13e3b9b4e"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
CUSTOM = {"team": "acme", "repConsent": "granted", "customerConsent": "granted", "repName": "Ann"}


def _mulaw(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return ulaw_encode(rng.integers(-20000, 20000, n).astype(np.int16))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- Twilio messages, as documented -------------------------------------------------------------------


def tw_connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def tw_start(
    seq: int = 1,
    tracks: list[str] | None = None,
    media_format: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(seq),
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": STREAM_SID,
                "callSid": CALL_SID,
                "tracks": tracks if tracks is not None else ["inbound", "outbound"],
                "customParameters": CUSTOM if custom is None else custom,
                "mediaFormat": media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": STREAM_SID,
        }
    )


def tw_media(seq: int | None, track: str, chunk: int, timestamp_ms: int | None, payload: bytes | str) -> str:
    media: dict[str, Any] = {
        "track": track,
        "chunk": str(chunk),
        "payload": payload if isinstance(payload, str) else _b64(payload),
    }
    if timestamp_ms is not None:
        media["timestamp"] = str(timestamp_ms)
    message: dict[str, Any] = {"event": "media", "media": media, "streamSid": STREAM_SID}
    if seq is not None:
        message["sequenceNumber"] = str(seq)
    return json.dumps(message)


def tw_dtmf(seq: int, digit: str, track: str = "inbound_track") -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "streamSid": STREAM_SID,
            "sequenceNumber": str(seq),
            "dtmf": {"track": track, "digit": digit},
        }
    )


def tw_mark(seq: int, name: str = "greeting") -> str:
    return json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": STREAM_SID, "mark": {"name": name}})


def tw_stop(seq: int) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(seq),
            "streamSid": STREAM_SID,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
        }
    )


# -- Telnyx messages ----------------------------------------------------------------------------------

TELNYX_STREAM = "32de0dea-53cb-4b21-89a4-9e1819c043bc"
TELNYX_CALL = "v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO"


def tx_start(
    seq: int = 1,
    encoding: str = "PCMU",
    sample_rate: Any = 8000,
    custom: dict[str, Any] | None = None,
    client_state: str | None = None,
) -> str:
    start: dict[str, Any] = {
        "user_id": "3e6f995f-85f7-4705-9741-53b116d28237",
        "call_control_id": TELNYX_CALL,
        "media_format": {"encoding": encoding, "sample_rate": sample_rate, "channels": 1},
    }
    if custom is not None:
        start["custom_parameters"] = custom
    if client_state is not None:
        start["client_state"] = client_state
    return json.dumps({"event": "start", "sequence_number": str(seq), "start": start, "stream_id": TELNYX_STREAM})


def tx_media(seq: int, payload: bytes, track: str = "inbound", timestamp_ms: int = 0) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequence_number": str(seq),
            "media": {"track": track, "chunk": str(seq - 1), "timestamp": str(timestamp_ms), "payload": _b64(payload)},
            "stream_id": TELNYX_STREAM,
        }
    )


def tx_stop(seq: int) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequence_number": str(seq),
            "stop": {"call_control_id": TELNYX_CALL},
            "stream_id": TELNYX_STREAM,
        }
    )


def feed_all(parser: TwilioParser, frames: list[str]) -> list[IngestMessage]:
    out: list[IngestMessage] = []
    for frame in frames:
        out.extend(parser.feed(frame))
    return out


def chunks(out: list[IngestMessage]) -> list[Audio]:
    """The messages, which must all be audio."""
    assert all(isinstance(m, Audio) for m in out), out
    return [m for m in out if isinstance(m, Audio)]


def started(**kwargs: Any) -> TwilioParser:
    parser = TwilioParser(**kwargs)
    parser.feed(tw_start())
    return parser


# -- a full Twilio session ----------------------------------------------------------------------------


def test_full_twilio_session() -> None:
    inbound = [_mulaw(160, i) for i in range(3)]
    outbound = [_mulaw(160, 10 + i) for i in range(2)]
    frames = [
        tw_connected(),
        tw_start(seq=1),
        tw_media(2, "inbound", 1, 5, inbound[0]),
        tw_media(3, "outbound", 1, 5, outbound[0]),
        tw_media(4, "inbound", 2, 25, inbound[1]),
        tw_dtmf(5, "7"),
        tw_mark(6),
        tw_media(7, "outbound", 2, 25, outbound[1]),
        tw_media(8, "inbound", 3, 45, inbound[2]),
        tw_stop(9),
    ]
    parser = TwilioParser()
    assert parser.feed(frames[0]) == []
    out = feed_all(parser, frames[1:])

    start = out[0]
    assert isinstance(start, StreamStart)
    assert start.call_id == CALL_SID
    assert start.source == "twilio"
    assert start.channels == [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    # Every custom parameter comes through untouched; the stream's identifiers are added alongside.
    assert start.metadata == {**CUSTOM, "accountSid": ACCOUNT_SID, "streamSid": STREAM_SID}

    kinds = [type(m).__name__ for m in out[1:]]
    assert kinds == ["Audio"] * 3 + ["DtmfDigit"] + ["Audio"] * 2 + ["StreamStop"]

    chunks = [m for m in out if isinstance(m, Audio)]
    assert [c.channel for c in chunks] == [1, 0, 1, 0, 1]
    assert [c.start_time for c in chunks] == pytest.approx([0.005, 0.005, 0.025, 0.025, 0.045])
    expected = [inbound[0], outbound[0], inbound[1], outbound[1], inbound[2]]
    for chunk, payload in zip(chunks, expected, strict=True):
        assert chunk.pcm.dtype == np.int16
        assert np.array_equal(chunk.pcm, ulaw_decode(payload))

    assert out[4] == DtmfDigit(channel=1, digit="7")
    assert isinstance(out[-1], StreamStop)
    assert parser.flush() == []


def test_mark_does_not_hold_back_later_frames_or_stop() -> None:
    """Marks carry a sequence number too; skipping it must not stall the stream until the window fills."""
    parser = started()
    assert parser.feed(tw_mark(2)) == []
    out = parser.feed(tw_media(3, "inbound", 1, 0, _mulaw(160, 0)))
    assert len(out) == 1 and isinstance(out[0], Audio)
    assert parser.feed(tw_mark(4)) == []
    assert [type(m) for m in parser.feed(tw_stop(5))] == [StreamStop]


def test_empty_track_list_means_both_tracks() -> None:
    start = TwilioParser().feed(tw_start(tracks=[]))[0]
    assert isinstance(start, StreamStart)
    assert [c.index for c in start.channels] == [0, 1]


def test_start_with_only_inbound_track() -> None:
    start = TwilioParser().feed(tw_start(tracks=["inbound"]))[0]
    assert isinstance(start, StreamStart)
    assert start.channels == [ChannelSpec(1, "customer", 8000)]


def test_media_without_sequence_numbers_or_timestamp() -> None:
    parser = started()
    payload = _mulaw(80, 3)
    (chunk,) = parser.feed(tw_media(None, "outbound", 1, None, payload))
    assert isinstance(chunk, Audio)
    assert chunk.channel == 0
    assert chunk.start_time is None
    assert np.array_equal(chunk.pcm, ulaw_decode(payload))


def test_empty_payload_gives_empty_chunk() -> None:
    (chunk,) = started().feed(tw_media(2, "inbound", 1, 0, b""))
    assert isinstance(chunk, Audio)
    assert chunk.pcm.shape == (0,) and chunk.pcm.dtype == np.int16


def test_dtmf_outbound_track_and_first_character_only() -> None:
    parser = started()
    assert parser.feed(tw_dtmf(2, "#", track="outbound_track")) == [DtmfDigit(channel=0, digit="#")]
    assert parser.feed(tw_dtmf(3, "12")) == [DtmfDigit(channel=1, digit="1")]


@pytest.mark.parametrize("when", ["before_start", "after_start"])
def test_unknown_event_is_a_notice_not_an_error(when: str) -> None:
    parser = TwilioParser() if when == "before_start" else started()
    out = parser.feed(json.dumps({"event": "clear", "streamSid": STREAM_SID}))
    assert len(out) == 1
    assert isinstance(out[0], Notice)
    assert out[0].code == "unknown_event"
    assert "clear" in out[0].message


# -- Telnyx ------------------------------------------------------------------------------------------


def test_telnyx_start_snake_case() -> None:
    start = TwilioParser().feed(tx_start(custom={"team": "acme", "rep_consent": "granted"}))[0]
    assert isinstance(start, StreamStart)
    assert start.source == "telnyx"
    assert start.call_id == TELNYX_CALL
    # Telnyx sends no track list: both parties.
    assert start.channels == [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    assert start.metadata == {"team": "acme", "rep_consent": "granted"}


def test_telnyx_client_state_is_base64_json_metadata() -> None:
    state = base64.b64encode(json.dumps({"team": "acme", "repName": "Bob", "customerConsent": "yes"}).encode()).decode()
    start = TwilioParser().feed(tx_start(client_state=state, custom={"repName": "Ann"}))[0]
    assert isinstance(start, StreamStart)
    # custom_parameters win over client_state where both set a key.
    assert start.metadata == {"team": "acme", "repName": "Ann", "customerConsent": "yes"}


def test_telnyx_client_state_that_is_not_json_is_ignored() -> None:
    start = TwilioParser().feed(tx_start(client_state=base64.b64encode(b"opaque state").decode()))[0]
    assert isinstance(start, StreamStart)
    assert start.metadata == {}


def test_telnyx_out_of_order_frames_released_in_sequence_order() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(seq=1))
    payloads = {seq: _mulaw(160, seq) for seq in range(2, 8)}
    released: list[Audio] = []
    for seq in [3, 2, 5, 6, 4, 7]:
        for message in parser.feed(tx_media(seq, payloads[seq], timestamp_ms=(seq - 2) * 20)):
            assert isinstance(message, Audio)
            released.append(message)
    assert [c.start_time for c in released] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.1])
    for chunk, seq in zip(released, range(2, 8), strict=True):
        assert np.array_equal(chunk.pcm, ulaw_decode(payloads[seq]))
    assert [type(m) for m in parser.feed(tx_stop(8))] == [StreamStop]


def test_telnyx_frame_is_held_until_the_gap_fills() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(seq=1))
    assert parser.feed(tx_media(3, _mulaw(160, 3))) == []
    assert parser.feed(tx_media(4, _mulaw(160, 4))) == []
    out = chunks(parser.feed(tx_media(2, _mulaw(160, 2))))
    assert len(out) == 3
    for chunk, seq in zip(out, [2, 3, 4], strict=True):
        assert np.array_equal(chunk.pcm, ulaw_decode(_mulaw(160, seq)))


def test_telnyx_duplicates_are_dropped() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(seq=1))
    assert len(parser.feed(tx_media(2, _mulaw(160, 2)))) == 1
    assert parser.feed(tx_media(2, _mulaw(160, 2))) == []  # already released
    assert parser.feed(tx_media(4, _mulaw(160, 4))) == []
    assert parser.feed(tx_media(4, _mulaw(160, 4))) == []  # duplicate of a held frame
    out = chunks(parser.feed(tx_media(3, _mulaw(160, 3))))
    assert len(out) == 2
    assert np.array_equal(out[0].pcm, ulaw_decode(_mulaw(160, 3)))
    assert np.array_equal(out[1].pcm, ulaw_decode(_mulaw(160, 4)))
    assert [type(m) for m in parser.feed(tx_stop(5))] == [StreamStop]


def test_telnyx_lost_frame_is_skipped_once_the_window_is_full() -> None:
    parser = TwilioParser(reorder_window=4)
    parser.feed(tx_start(seq=1))
    out: list[IngestMessage] = []
    for seq in range(3, 8):  # seq 2 never arrives
        out.extend(parser.feed(tx_media(seq, _mulaw(10, seq))))
    assert len(out) == 5
    for chunk, seq in zip(out, range(3, 8), strict=True):
        assert isinstance(chunk, Audio)
        assert np.array_equal(chunk.pcm, ulaw_decode(_mulaw(10, seq)))
    assert parser.feed(tx_media(2, _mulaw(10, 2))) == []  # too late: dropped rather than replayed out of order


def test_telnyx_stop_releases_held_frames_without_waiting_for_a_lost_one() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(seq=1))
    parser.feed(tx_media(4, _mulaw(10, 4)))  # seq 2 and 3 are lost
    parser.feed(tx_media(5, _mulaw(10, 5)))
    out = parser.feed(tx_stop(6))
    assert [type(m) for m in out] == [Audio, Audio, StreamStop]
    assert isinstance(out[0], Audio) and np.array_equal(out[0].pcm, ulaw_decode(_mulaw(10, 4)))


def test_flush_releases_held_frames_in_order() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(seq=1))
    parser.feed(tx_media(5, _mulaw(10, 5)))
    parser.feed(tx_media(3, _mulaw(10, 3)))
    out = chunks(parser.flush())
    assert len(out) == 2
    assert np.array_equal(out[0].pcm, ulaw_decode(_mulaw(10, 3)))
    assert np.array_equal(out[1].pcm, ulaw_decode(_mulaw(10, 5)))
    assert parser.flush() == []


def test_telnyx_pcma_is_decoded_as_alaw() -> None:
    parser = TwilioParser()
    parser.feed(tx_start(encoding="PCMA"))
    pcm = (np.sin(np.arange(160) / 5) * 8000).astype(np.int16)
    (chunk,) = parser.feed(tx_media(2, alaw_encode(pcm)))
    assert isinstance(chunk, Audio)
    assert np.array_equal(chunk.pcm, alaw_decode(alaw_encode(pcm)))


def test_reorder_window_zero_passes_frames_through_as_they_come() -> None:
    parser = TwilioParser(reorder_window=0)
    parser.feed(tx_start(seq=1))
    assert len(parser.feed(tx_media(4, _mulaw(10, 4)))) == 1
    assert len(parser.feed(tx_media(2, _mulaw(10, 2)))) == 1


# -- documented traffic (tests/data/traffic) ---------------------------------------------------------

TRAFFIC = Path(__file__).parent / "data" / "traffic"


def _frames(name: str) -> list[str]:
    return (TRAFFIC / name).read_text().splitlines()


def _reencoded(frames: list[str]) -> list[str]:
    """Each frame as written back from what was parsed: the fixture is compact JSON, media as mu-law of the PCM."""
    return [json.dumps(json.loads(frame), separators=(",", ":")) for frame in frames]


def test_twilio_documented_stream() -> None:
    frames = _frames("twilio_media_stream.jsonl")
    assert _reencoded(frames) == frames
    out = feed_all(TwilioParser(), frames)
    start, *rest = out
    assert isinstance(start, StreamStart)
    assert (start.call_id, start.source) == ("CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "twilio")
    assert start.channels == [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    assert start.metadata == {
        "FirstName": "Jane",
        "LastName": "Doe",
        "RemoteParty": "Bob",
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    }
    assert [type(m) for m in rest] == [Audio] * 6 + [DtmfDigit, StreamStop]
    audio = [m for m in rest if isinstance(m, Audio)]
    assert [(a.channel, a.sample_rate, a.start_time) for a in audio] == [
        (channel, 8000, pytest.approx(t)) for t in (0.005, 0.025, 0.045) for channel in (1, 0)
    ]
    media = [json.loads(f)["media"] for f in frames if json.loads(f)["event"] == "media"]
    for chunk, sent in zip(audio, media, strict=True):  # the payload, byte for byte, from the decoded samples
        assert chunk.pcm.size == 160 and _b64(ulaw_encode(chunk.pcm)) == sent["payload"]
    assert rest[6] == DtmfDigit(channel=1, digit="1")


def test_telnyx_documented_stream_out_of_order() -> None:
    frames = _frames("telnyx_media_stream.jsonl")
    assert _reencoded(frames) == frames
    out = feed_all(TwilioParser(), frames)
    start, *rest = out
    assert isinstance(start, StreamStart)
    assert (start.call_id, start.source) == ("v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg", "telnyx")
    assert start.channels == [ChannelSpec(0, "rep", 8000), ChannelSpec(1, "customer", 8000)]
    assert start.metadata == {}  # the documents' client_state is base64 text, not a JSON object: ignored
    assert [type(m) for m in rest] == [Audio] * 4 + [DtmfDigit, StreamStop]
    audio = [m for m in rest if isinstance(m, Audio)]
    # Sent as 2, 4, 3, 5: handed on in sequence order.
    assert [a.start_time for a in audio] == pytest.approx([0.0, 0.02, 0.04, 0.06])
    sent = [json.loads(f) for f in frames]
    by_seq = {int(m["sequence_number"]): m["media"]["payload"] for m in sent if m["event"] == "media"}
    assert [_b64(ulaw_encode(a.pcm)) for a in audio] == [by_seq[seq] for seq in (2, 3, 4, 5)]
    assert rest[4] == DtmfDigit(channel=1, digit="1")


# -- errors -------------------------------------------------------------------------------------------


def _error(parser: TwilioParser, text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parser.feed(text)
    return info.value


@pytest.mark.parametrize("text", ["not json", "{", '{"event": "start"', "", "[" * 100_000])
def test_invalid_json(text: str) -> None:
    err = _error(TwilioParser(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize("text", ["[]", '"start"', "42", "{}", '{"event": 5}'])
def test_not_an_event_object(text: str) -> None:
    err = _error(TwilioParser(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize(
    "text",
    [tw_media(2, "inbound", 1, 0, b"\xff"), tw_dtmf(2, "1"), tw_stop(2)],
    ids=["media", "dtmf", "stop"],
)
def test_event_before_start_is_a_protocol_violation(text: str) -> None:
    err = _error(TwilioParser(), text)
    assert (err.code, err.close_code) == ("protocol_violation", 1008)


def test_second_start_is_a_protocol_violation() -> None:
    err = _error(started(), tw_start())
    assert (err.code, err.close_code) == ("protocol_violation", 1008)


@pytest.mark.parametrize("payload", ["!!!!", "AAA", "AA=A", "ÿÿÿÿ"])
def test_invalid_base64_payload(payload: str) -> None:
    err = _error(started(), tw_media(2, "inbound", 1, 0, payload))
    assert (err.code, err.close_code) == ("invalid_payload", 1007)


@pytest.mark.parametrize(
    "media_format",
    [
        {"encoding": "audio/l16", "sampleRate": 8000, "channels": 1},
        {"encoding": "opus", "sampleRate": 8000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": "48000", "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
    ],
)
def test_unsupported_media_format(media_format: dict[str, Any]) -> None:
    err = _error(TwilioParser(), tw_start(media_format=media_format))
    assert (err.code, err.close_code) == ("unsupported_format", 1003)


@pytest.mark.parametrize(("encoding", "rate"), [("L16", 8000), ("PCMU", 16000)])
def test_telnyx_unsupported_media_format(encoding: str, rate: int) -> None:
    err = _error(TwilioParser(), tx_start(encoding=encoding, sample_rate=rate))
    assert (err.code, err.close_code) == ("unsupported_format", 1003)


def test_string_sample_rate_8000_is_accepted() -> None:
    start = TwilioParser().feed(tx_start(sample_rate="8000"))[0]
    assert isinstance(start, StreamStart)


def test_oversize_payload() -> None:
    parser = started(max_payload_bytes=160)
    assert len(parser.feed(tw_media(2, "inbound", 1, 0, _mulaw(160, 0)))) == 1  # at the limit: fine
    err = _error(parser, tw_media(3, "inbound", 2, 20, _mulaw(400, 0)))
    assert (err.code, err.close_code) == ("frame_too_large", 1009)


def test_binary_frame_is_rejected() -> None:
    for parser in (TwilioParser(), started()):
        with pytest.raises(ProtocolError) as info:
            parser.feed_binary(b"\xff" * 160)
        assert info.value.close_code == 1003
        assert info.value.code == "unsupported_format"


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"event": "start", "streamSid": STREAM_SID}),  # no start object
        json.dumps({"event": "start", "start": {"tracks": ["inbound"]}}),  # no call id anywhere
        tw_start(tracks=["sideways"]),
        tw_start(tracks="inbound"),  # type: ignore[arg-type]
        tw_start(custom=["a", "b"]),  # type: ignore[arg-type]
    ],
    ids=["no_start_object", "no_call_id", "unknown_track", "tracks_not_a_list", "params_not_object"],
)
def test_malformed_start(text: str) -> None:
    err = _error(TwilioParser(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"event": "media", "sequenceNumber": "2"}),
        json.dumps({"event": "media", "sequenceNumber": "2", "media": {"track": "inbound"}}),
        tw_media(2, "sideways", 1, 0, b"\xff"),
        json.dumps({"event": "media", "sequenceNumber": "two", "media": {"payload": ""}}),
        json.dumps({"event": "media", "media": {"payload": "", "timestamp": "soon"}}),
        json.dumps({"event": "dtmf", "sequenceNumber": "2", "dtmf": {}}),
    ],
    ids=["no_media", "no_payload", "unknown_track", "bad_sequence", "bad_timestamp", "dtmf_no_digit"],
)
def test_malformed_media_and_dtmf(text: str) -> None:
    err = _error(started(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


@pytest.mark.parametrize(
    "text",
    [
        '{"event": "media", "sequenceNumber": Infinity, "media": {"payload": ""}}',
        '{"event": "media", "sequenceNumber": NaN, "media": {"payload": ""}}',
        '{"event": "media", "media": {"payload": "", "timestamp": -Infinity}}',
    ],
)
def test_non_finite_numbers_are_malformed(text: str) -> None:
    err = _error(started(), text)
    assert (err.code, err.close_code) == ("malformed_message", 1007)


def test_non_ascii_digit_start_sequence_number_does_not_crash() -> None:
    out = TwilioParser().feed(json.dumps({"event": "start", "sequenceNumber": "²", "start": {"callSid": CALL_SID}}))
    assert isinstance(out[0], StreamStart)


# -- fuzzing ------------------------------------------------------------------------------------------

_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["inbound", "outbound", "PCMA", "audio/x-alaw", 8000, "8000", "2", "AAAA", "²", "-1"])
    | st.sampled_from([math.inf, -math.inf, math.nan, 1e300, 2**64])
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_START_TEMPLATES = [
    tw_start(),
    tx_start(custom={"team": "acme"}, client_state=base64.b64encode(b'{"repName": "Ann"}').decode()),
]
_TEMPLATES = [
    tw_connected(),
    tw_media(2, "inbound", 1, 0, b"\xff" * 8),
    tx_media(3, b"\x7f" * 8),
    tw_media(4, "outbound", 2, 20, b"\x00" * 8),
    tw_dtmf(5, "5"),
    tw_mark(6),
    tw_stop(7),
    json.dumps({"event": "clear", "streamSid": STREAM_SID}),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value that a mutation may replace."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*prefix, i)))
    return out


@st.composite
def _mutated_message(draw: st.DrawFn, templates: list[str]) -> str:
    """A documented message with a few of its fields replaced by arbitrary JSON, or removed."""
    message = json.loads(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(_paths(message)))
        if not path:
            continue
        parent = message
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_JSON)
    return json.dumps(message)


def _feed_safely(parser: TwilioParser, frames: list[str]) -> None:
    for text in frames:
        try:
            out = parser.feed(text)
        except ProtocolError as exc:
            assert exc.code and 1000 <= exc.close_code < 5000
            return  # the stream is closed after a protocol error
        assert isinstance(out, list)
        assert all(isinstance(m, StreamStart | Audio | DtmfDigit | StreamStop | Notice) for m in out)
    try:
        parser.flush()
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=64), max_size=4))
def test_fuzz_arbitrary_text(frames: list[str]) -> None:
    _feed_safely(TwilioParser(), frames)
    _feed_safely(started(), frames)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), _mutated_message(_START_TEMPLATES)), st.lists(_mutated_message(_TEMPLATES), max_size=8))
def test_fuzz_mutated_session(start: str | None, frames: list[str]) -> None:
    """Documented messages with fields replaced by arbitrary JSON: a list or a ProtocolError, nothing else."""
    _feed_safely(TwilioParser(reorder_window=2), [start, *frames] if start else frames)


_FIELDS = [
    (template, path)
    for template in _START_TEMPLATES + _TEMPLATES
    for path in _paths(json.loads(template))
    if path and path != ("event",)
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FIELDS), _LEAVES | _JSON)
def test_fuzz_one_field_of_a_valid_session(field: tuple[str, tuple[Any, ...]], value: Any) -> None:
    """Each field of each documented message, set to arbitrary JSON, inside an otherwise valid session."""
    template, path = field
    message = json.loads(template)
    parent = message
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    text = json.dumps(message)
    frames = [text] if message["event"] == "start" else [tw_start(), text]
    _feed_safely(TwilioParser(reorder_window=2), [*frames, tw_media(9, "inbound", 9, 160, b"\xff"), tw_stop(10)])
