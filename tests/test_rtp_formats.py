"""RTP payload formats as the SDP side builds them."""

from __future__ import annotations

import pytest

from media_server.rtp.formats import SUPPORTED_CODECS, RtpFormat


def test_names_match_case_insensitively_and_keep_their_usual_spelling() -> None:
    assert RtpFormat("pcmu", 0, 8000).name == "PCMU"
    assert RtpFormat("OPUS", 111, 48000, 2).name == "opus"
    assert RtpFormat("Telephone-Event", 101, 8000).name == "telephone-event"
    assert RtpFormat("g722", 9, 8000) == RtpFormat("G722", 9, 8000)
    assert RtpFormat("iLBC", 97, 8000).name == "iLBC"  # unknown names are kept as they are


def test_pcm_rates() -> None:
    assert RtpFormat("PCMU", 0, 8000).pcm_rate == 8000
    assert RtpFormat("PCMA", 8, 8000).pcm_rate == 8000
    assert RtpFormat("G722", 9, 8000).pcm_rate == 16000  # RTP clock 8000, audio 16 kHz (RFC 3551)
    assert RtpFormat("opus", 111, 48000, 2).pcm_rate == 48000


def test_supported() -> None:
    assert SUPPORTED_CODECS == ("PCMU", "PCMA", "G722", "opus")
    assert RtpFormat("opus", 111, 48000).supported
    assert not RtpFormat("telephone-event", 101, 8000).supported
    assert not RtpFormat("G729", 18, 8000).supported


def test_from_rtpmap_and_static_payload_types() -> None:
    assert RtpFormat.from_rtpmap(111, "opus/48000/2") == RtpFormat("opus", 111, 48000, 2)
    assert RtpFormat.from_rtpmap(101, " telephone-event/8000 ") == RtpFormat("telephone-event", 101, 8000)
    assert RtpFormat.static(0) == RtpFormat("PCMU", 0, 8000)
    assert RtpFormat.static(8) == RtpFormat("PCMA", 8, 8000)
    assert RtpFormat.static(9) == RtpFormat("G722", 9, 8000)
    assert RtpFormat.static(18) is None


@pytest.mark.parametrize("rtpmap", ["PCMU", "PCMU/", "PCMU/eight", "/8000", "opus/48000/2/1", "opus/48000/x"])
def test_bad_rtpmap_values_are_refused(rtpmap: str) -> None:
    with pytest.raises(ValueError, match="rtpmap"):
        RtpFormat.from_rtpmap(96, rtpmap)


@pytest.mark.parametrize(("pt", "clock", "channels"), [(-1, 8000, 1), (128, 8000, 1), (0, 0, 1), (0, 8000, 0)])
def test_impossible_formats_are_refused(pt: int, clock: int, channels: int) -> None:
    with pytest.raises(ValueError):
        RtpFormat("PCMU", pt, clock, channels)
