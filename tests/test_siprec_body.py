from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.ingest.siprec.body import BodyError, split_body
from tests.siprec_samples import CONTENT_TYPE, metadata_xml, multipart, sdp_offer


def test_multipart_gives_the_sdp_and_the_metadata() -> None:
    body = split_body(CONTENT_TYPE, multipart(sdp_offer(), metadata_xml()))
    assert body.sdp is not None and body.sdp.startswith("v=0") and "a=label:2" in body.sdp
    assert body.metadata is not None and b"<recording" in body.metadata


def test_plain_sdp_and_quoted_boundaries_are_read() -> None:
    assert split_body("application/sdp", sdp_offer().encode()).sdp == sdp_offer()
    quoted = CONTENT_TYPE.replace("boundary=", 'boundary="') + '"'
    assert split_body(quoted, multipart(sdp_offer(), metadata_xml())).metadata is not None
    assert split_body(None, b"").sdp is None


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/html", b"<html/>", 415),
        ("multipart/mixed", b"--x\r\n\r\n--x--", 400),  # no boundary
        ("multipart/mixed;boundary=nothere", multipart("v=0", "<recording/>"), 400),
        (None, b"v=0", 400),
        ("application/sdp", b"v=0\xff\xfe", 400),
        ("garbage", b"v=0", 400),
    ],
)
def test_bodies_it_cannot_read_get_400_or_415(content_type: str | None, body: bytes, status: int) -> None:
    with pytest.raises(BodyError) as caught:
        split_body(content_type, body)
    assert caught.value.status == status


def test_compressed_bodies_are_unsupported() -> None:
    with pytest.raises(BodyError) as caught:
        split_body(CONTENT_TYPE, b"x", content_encoding="gzip")
    assert caught.value.status == 415


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([CONTENT_TYPE, "application/sdp", "multipart/mixed;boundary=a"]))
def test_fuzzed_bodies_raise_only_body_errors(body: bytes, content_type: str) -> None:
    try:
        split_body(content_type, body)
    except BodyError as exc:
        assert exc.status in (400, 415)
