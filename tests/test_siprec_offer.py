from __future__ import annotations

import base64
import re

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
from media_server.rtp.srtp import CryptoError
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


def test_only_unsupported_codecs_leave_nothing_to_choose() -> None:
    assert choose_codec(parse_offer(sdp_offer("18 3")).streams[0], PREFERENCE) is None
    dtls = sdp_offer().replace("RTP/AVP", "UDP/TLS/RTP/SAVP")
    assert choose_codec(parse_offer(dtls).streams[0], PREFERENCE) is None


KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # RFC 4568's example key: 30 bytes


def test_srtp_is_keyed_by_the_first_usable_crypto_line_and_answered_with_our_own_key() -> None:
    crypto = (
        "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + KEY + "\r\n"
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20|1:4 UNENCRYPTED_SRTCP\r\n"
        f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
    )
    offer = sdp_offer().replace("RTP/AVP", "RTP/SAVP").replace("a=sendonly\r\n", "a=sendonly\r\n" + crypto)
    stream = parse_offer(offer).streams[0]
    assert stream.secure and choose_codec(stream, PREFERENCE) is not None
    theirs = stream.stream_crypto()
    assert theirs is not None and (theirs.tag, theirs.suite) == (2, "AES_CM_128_HMAC_SHA1_32")
    assert theirs.mki == b"\x00\x00\x00\x01"
    ours = theirs.answer()
    answered = AnsweredStream(stream, 20000, choose_codec(stream, PREFERENCE), None, "recvonly", ours)
    media = parse_sdp(answer_text(Answerer("127.0.0.1").answer([answered]))).media[0]
    assert media.proto == "RTP/SAVP"
    [line] = media.attributes["crypto"]
    tag, suite, key, param = line.split()
    assert (tag, suite, param) == ("2", "AES_CM_128_HMAC_SHA1_32", "UNENCRYPTED_SRTCP")
    assert key.startswith("inline:") and KEY not in key and len(base64.b64decode(key[7:])) == 30


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([], "without an a=crypto"),
        ([f"1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"], "AES_256_CM_HMAC_SHA1_80 not supported"),
        (["1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ="], "5 bytes, not 30"),
        ([f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"], "UNENCRYPTED_SRTP not supported"),
        ([f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=24"], "KDR=24 not supported"),
        ([f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^31|1:1;inline:{KEY}|2^31|2:1"], "several keys"),
        (["1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!"], "not base64"),
        ([f"one AES_CM_128_HMAC_SHA1_80 inline:{KEY}"], "malformed crypto attribute"),
    ],
)
def test_unusable_srtp_keys_are_refused_with_the_reason(lines: list[str], reason: str) -> None:
    crypto = "".join(f"a=crypto:{line}\r\n" for line in lines)
    offer = sdp_offer().replace("RTP/AVP", "RTP/SAVP").replace("a=sendonly\r\n", "a=sendonly\r\n" + crypto)
    with pytest.raises(CryptoError, match=re.escape(reason)) as refused:
        parse_offer(offer).streams[0].stream_crypto()
    assert KEY not in str(refused.value), "the reason goes into a SIP response and the log: never the key"


def test_crypto_on_plain_rtp_is_best_effort_srtp_answered_plain() -> None:
    offer = sdp_offer().replace("a=sendonly\r\n", f"a=sendonly\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n")
    stream = parse_offer(offer).streams[0]
    assert stream.crypto and not stream.secure and stream.stream_crypto() is None


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
