from __future__ import annotations

import pytest
from aiosipua import parse_sdp
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.ingest.siprec.offer import (
    AnsweredStream,
    Answerer,
    OfferError,
    answer_text,
    choose_codec,
    parse_offer,
)
from tests.siprec_samples import sdp_offer

PREFERENCE = ["PCMU", "PCMA", "G722", "opus"]


def test_two_labelled_sendonly_streams_with_dtmf() -> None:
    offer = parse_offer(sdp_offer())
    assert [(s.label, s.port, s.direction, s.active) for s in offer.streams] == [
        ("1", 6000, "sendonly", True),
        ("2", 6002, "sendonly", True),
    ]
    stream = offer.streams[0]
    assert [c.payload_type for c in stream.codecs] == [0, 8]
    assert stream.dtmf is not None and stream.dtmf.payload_type == 101


def test_codec_choice_follows_our_preference_and_knows_static_types() -> None:
    stream = parse_offer(sdp_offer("8 0")).streams[0]
    codec = choose_codec(stream, PREFERENCE)
    assert codec is not None and codec.payload_type == 0
    assert choose_codec(stream, ["PCMA"]).payload_type == 8  # type: ignore[union-attr]
    bare = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9\r\n"
    assert choose_codec(parse_offer(bare).streams[0], PREFERENCE).encoding_name == "G722"  # type: ignore[union-attr]
    opus = bare.replace("RTP/AVP 9", "RTP/AVP 111") + "a=rtpmap:111 opus/48000/2\r\n"
    assert choose_codec(parse_offer(opus).streams[0], PREFERENCE).payload_type == 111  # type: ignore[union-attr]


def test_only_unsupported_codecs_or_secure_media_leave_nothing_to_choose() -> None:
    assert choose_codec(parse_offer(sdp_offer("18 3")).streams[0], PREFERENCE) is None
    srtp = sdp_offer().replace("RTP/AVP", "RTP/SAVP")
    assert choose_codec(parse_offer(srtp).streams[0], PREFERENCE) is None


def test_hold_is_read_from_inactive() -> None:
    stream = parse_offer(sdp_offer(direction="inactive")).streams[0]
    assert stream.direction == "inactive" and not stream.active


def test_the_answer_is_recvonly_per_stream_with_labels_and_rejects_with_port_0() -> None:
    offer = parse_offer(sdp_offer())
    answerer = Answerer("127.0.0.1")
    first = offer.streams[0]
    streams = [
        AnsweredStream(first, 20000, choose_codec(first, PREFERENCE), first.dtmf, "recvonly"),
        AnsweredStream(offer.streams[1], 0, None, None, "recvonly"),
    ]
    text = answer_text(answerer.answer(streams))
    sdp = parse_sdp(text)
    assert [m.port for m in sdp.media] == [20000, 0]
    assert sdp.media[0].formats == ["0", "101"] and sdp.media[0].attributes["label"] == ["1"]
    assert "recvonly" in sdp.media[0].attributes
    again = parse_sdp(answer_text(answerer.answer(streams)))
    assert again.origin.session_id == sdp.origin.session_id
    assert int(again.origin.session_version) == int(sdp.origin.session_version) + 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
        "v=0\r\ns=-\r\n",  # no o=, no m=
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio notaport RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n",  # no c=
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000\r\n",
    ],
)
def test_malformed_sdp_is_a_400(text: str) -> None:
    with pytest.raises(OfferError) as caught:
        parse_offer(text)
    assert caught.value.status == 400


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzzed_sdp_raises_only_offer_errors(text: str) -> None:
    try:
        offer = parse_offer(text)
    except OfferError:
        return
    for stream in offer.streams:
        choose_codec(stream, PREFERENCE)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(1, 10), st.text(max_size=8))
def test_mutated_offers_raise_only_offer_errors(position: int, length: int, junk: str) -> None:
    text = sdp_offer()
    try:
        parse_offer(text[:position] + junk + text[position + length :])
    except OfferError:
        pass
