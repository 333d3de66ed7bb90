"""RTP packets (RFC 3550) as this receive-only server needs them: strict parsing and sequence arithmetic.

Parsing is aiortp's ``RtpPacket.parse``: it checks the version, the CSRC list, the header extension's
length (and the RFC 8285 elements inside it) and the padding length, and raises ``ValueError`` and
nothing else for any of them (the hypothesis fuzz in tests/test_rtp_packet.py holds it to that).
``parse_rtp`` only adds the muxed-RTCP test (RFC 5761) and turns every failure into ``MalformedPacket``.
"""

from __future__ import annotations

from aiortp.packet import RtpPacket

__all__ = ["MalformedPacket", "RtpPacket", "is_rtcp", "parse_rtp", "seq_delta", "ts_delta"]


class MalformedPacket(ValueError):
    """A datagram that is not a valid RTP packet for the stream."""


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on the RTP port is muxed RTCP (RFC 5761 4: second byte 192..223, version 2).

    RTCP's packet types 200-204 (and the feedback types after them) land in that range; an RTP packet can
    only get there with a payload type of 64-95 and the marker bit, which RFC 5761 forbids when muxing.
    """
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raise ``MalformedPacket`` for anything that is not one."""
    if is_rtcp(data):
        raise MalformedPacket(f"RTCP packet type {data[1]} on the RTP port")
    try:
        return RtpPacket.parse(data)
    except ValueError as exc:
        raise MalformedPacket(str(exc)) from exc


def seq_delta(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in [-32768, 32767] (wrap-around taken care of)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, in [-2**31, 2**31 - 1] (wrap-around taken care of)."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000
