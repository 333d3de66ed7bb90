"""RTP packet parsing: real header layouts round-trip, every malformation is a MalformedPacket, nothing else escapes."""

from __future__ import annotations

import struct

import pytest
from aiortp.packet import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.rtp.packet import MalformedPacket, RtpPacket, is_rtcp, parse_rtp, seq_delta, ts_delta

# A PCMU packet as a softphone sends it: V=2, no padding/extension/CSRC, M=1, PT=0, seq 0x1234,
# timestamp 0xDEADBEEF, SSRC 0x01020304, then four mu-law bytes.
PCMU_PACKET = bytes.fromhex("80 80 1234 deadbeef 01020304 fffe7f00")


def _header(*, version: int = 2, padding: bool = False, extension: bool = False, cc: int = 0, pt: int = 0) -> bytes:
    first = version << 6 | padding << 5 | extension << 4 | cc
    return struct.pack("!BBHLL", first, pt, 7, 1000, 42)


def test_parses_a_plain_packet() -> None:
    packet = parse_rtp(PCMU_PACKET)
    assert (packet.version, packet.marker, packet.payload_type) == (2, 1, 0)
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == (0x1234, 0xDEADBEEF, 0x01020304)
    assert packet.payload == bytes.fromhex("fffe7f00")


def test_csrc_extension_and_padding_are_skipped() -> None:
    extension = struct.pack("!HH", 0xBEDE, 1) + bytes([0x10, 0xAA, 0, 0])  # one-byte header element id 1
    data = _header(padding=True, extension=True, cc=2) + struct.pack("!LL", 11, 12) + extension + b"abcd" + b"\0\0\3"
    packet = parse_rtp(data)
    assert packet.csrc == [11, 12]
    assert packet.payload == b"abcd"
    assert packet.padding_size == 3


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (PCMU_PACKET[:11], "shorter than the fixed header"),
        (_header(version=1) + b"x", "version 1"),
        (_header(version=0) + b"x", "version 0"),
        (_header(cc=3) + b"\0" * 8, "CSRC list cut short"),
        (_header(extension=True) + b"\xbe", "extension header cut short"),
        (_header(extension=True) + struct.pack("!HH", 0xBEDE, 2) + b"\0" * 4, "extension longer than the packet"),
        (_header(extension=True) + struct.pack("!HH", 0xBEDE, 1) + b"\x13\0\0\0", "extension element cut short"),
        (_header(padding=True) + b"abc\0", "padding length 0"),
        (_header(padding=True) + b"ab\x09", "padding longer than the payload"),
    ],
)
def test_malformed_packets_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket):
        parse_rtp(data)


def test_muxed_rtcp_is_recognised_and_refused() -> None:
    sender_report = bytes(RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(0, 0, 0, 0)))
    receiver_report = bytes(RtcpRrPacket(ssrc=1))
    for data in (sender_report, receiver_report):
        assert is_rtcp(data)
        with pytest.raises(MalformedPacket):
            parse_rtp(data)
    assert not is_rtcp(PCMU_PACKET)
    assert not is_rtcp(_header(pt=96) + b"x")
    assert not is_rtcp(_header(pt=0x80 | 111) + b"x")  # opus with the marker bit: 239, above RTCP's range


def test_sequence_and_timestamp_arithmetic_wraps() -> None:
    assert seq_delta(0, 65535) == 1
    assert seq_delta(65535, 0) == -1
    assert seq_delta(5, 5) == 0
    assert seq_delta(0x8000, 0) == -0x8000
    assert ts_delta(100, 0xFFFFFF00) == 356
    assert ts_delta(0xFFFFFF00, 100) == -356


@given(st.binary(max_size=200))
@settings(max_examples=2000)
def test_fuzz_arbitrary_bytes_parse_or_raise_malformed(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except MalformedPacket:
        return
    assert packet.version == 2
    assert 0 <= packet.payload_type <= 127
    assert len(packet.payload) <= len(data) - 12


@given(
    header=st.tuples(st.integers(0, 15), st.booleans(), st.booleans(), st.booleans()),
    rest=st.binary(max_size=120),
)
@settings(max_examples=2000)
def test_fuzz_version_2_headers_with_random_flags(header: tuple[int, bool, bool, bool], rest: bytes) -> None:
    cc, padding, extension, marker = header
    data = bytes([0x80 | padding << 5 | extension << 4 | cc, marker << 7 | 8]) + rest
    try:
        parse_rtp(data)
    except MalformedPacket:
        pass


@given(
    pt=st.integers(0, 127).filter(lambda pt: not 64 <= pt <= 95),
    marker=st.integers(0, 1),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    padding=st.integers(0, 255),
)
def test_round_trip(pt: int, marker: int, seq: int, ts: int, ssrc: int, payload: bytes, padding: int) -> None:
    packet = RtpPacket(payload_type=pt, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload)
    packet.padding_size = padding
    parsed = parse_rtp(packet.serialize())
    assert (parsed.payload_type, parsed.marker, parsed.sequence_number) == (pt, marker, seq)
    assert (parsed.timestamp, parsed.ssrc, parsed.payload) == (ts, ssrc, payload)
