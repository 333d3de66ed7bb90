"""Traffic captured from sipp, the SIPREC peer the end-to-end tests run (tests/data/traffic/sipp_*, captured as
its README says): the SIPREC parsers read sipp's INVITE as the recording server does, and its RTP packets parse
to the header fields sipp sent and serialise back to the same bytes, as aiortc's tests/test_rtp.py does with its
``.bin`` files.
"""

from __future__ import annotations

import struct
from pathlib import Path

from aiortp.dtmf import DtmfEvent
from aiosipua import SipMessage, SipRequest

from media_server.codecs.g711 import ulaw_decode
from media_server.ingest.siprec.body import split_body
from media_server.ingest.siprec.metadata import parse_recording_metadata
from media_server.ingest.siprec.offer import choose_codec, codec_name, parse_offer
from media_server.ingest.siprec.participants import RoleRule, assign
from media_server.ingest.siprec.validate import check_request
from media_server.rtp.packet import RtpPacket, parse_rtp

TRAFFIC = Path(__file__).parent / "data" / "traffic"
INVITE = (TRAFFIC / "sipp_siprec_invite.txt").read_bytes()


def invite() -> SipRequest:
    message = SipMessage.parse(INVITE)
    assert isinstance(message, SipRequest)
    return message


def rtp_datagrams(name: str) -> list[bytes]:
    """The datagrams of a ``.bin`` file, each after its 16-bit length (RFC 4571 framing)."""
    data = (TRAFFIC / name).read_bytes()
    datagrams, position = [], 0
    while position < len(data):
        (length,) = struct.unpack_from("!H", data, position)
        datagrams.append(data[position + 2 : position + 2 + length])
        position += 2 + length
    assert position == len(data), "the file ends inside a datagram"
    return datagrams


def test_sipps_invite_passes_the_screening_as_it_came() -> None:
    request = invite()
    assert request.method == "INVITE" and request.headers.get_first("require") == "siprec"
    assert check_request(INVITE, request) is None
    assert INVITE.count(b"\r\n") > 60 and b"\n" not in INVITE.replace(b"\r\n", b""), "CRLF line ends, as sent"


def test_the_body_splits_into_the_sdp_offer_and_the_recording_metadata() -> None:
    request = invite()
    assert request.content_type == "multipart/mixed;boundary=OurSipRecBoundary7b1c"
    body = split_body(request.content_type, request.body)
    assert body.sdp is not None and body.sdp.startswith("v=0\r\no=SRC 2890844526")
    assert body.metadata is not None and body.metadata.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_the_metadata_names_both_participants_and_whose_voice_is_on_which_stream() -> None:
    request = invite()
    metadata = split_body(request.content_type, request.body).metadata
    assert metadata is not None
    meta = parse_recording_metadata(metadata)
    assert meta.datamode == "complete" and meta.session_id == "hVpd7YQgRW2nD22h7q60J1"
    assert meta.sip_session_ids == [request.call_id]
    people = [(p.id, p.name, p.aor) for p in meta.participants.values()]
    assert people == [
        ("srfBElmCRp2QB23b7Mpk01", "Alice Rep", "sip:alice@acme.example"),
        ("zSfPoSvdSDCmU3A3TRDxA1", "Bob Customer", "sip:bob@customer.example"),
    ]
    assert {s.label for s in meta.streams.values()} == {"1", "2"}
    assert [p.name for p in meta.participants_on("1")] == ["Alice Rep"]
    assert [p.name for p in meta.participants_on("2")] == ["Bob Customer"]
    roles = assign(meta, ["1", "2"], {}, RoleRule(("acme.example",)), {})
    assert roles.speakers == {"1": "rep", "2": "customer"}
    assert (roles.metadata.rep.name, roles.metadata.customer.name) == ("Alice Rep", "Bob Customer")


def test_the_offer_has_one_sendonly_stream_per_participant() -> None:
    request = invite()
    sdp = split_body(request.content_type, request.body).sdp
    assert sdp is not None
    offer = parse_offer(sdp)
    assert [(s.label, s.port, s.proto, s.direction, s.active) for s in offer.streams] == [
        ("1", 35500, "RTP/AVP", "sendonly", True),
        ("2", 35502, "RTP/AVP", "sendonly", True),
    ]
    for stream in offer.streams:
        assert [codec_name(c) for c in stream.codecs] == ["PCMU", "PCMA"]
        assert stream.dtmf is not None and stream.dtmf.payload_type == 101
        chosen = choose_codec(stream, ["PCMA", "PCMU"])
        assert chosen is not None and chosen.payload_type == 8, "our preference picks among what is offered"


def test_rtp_header_fields_of_the_first_stream() -> None:
    packets = [parse_rtp(d) for d in rtp_datagrams("sipp_rtp_pcmu.bin")]
    assert [(p.sequence_number, p.timestamp, p.marker) for p in packets] == [
        (1000 + i, 160000 + 160 * i, 1 if i == 0 else 0) for i in range(5)
    ]
    assert {(p.version, p.payload_type, p.ssrc, len(p.payload), len(p.csrc)) for p in packets} == {
        (2, 0, 0x5EC01111, 160, 0)
    }
    tone = ulaw_decode(packets[1].payload)  # a 440 Hz tone at 8000 of full scale, mu-law encoded
    assert 7000 < abs(tone).max() < 9000


def test_a_telephone_event_between_the_audio_of_the_second_stream() -> None:
    packets = [parse_rtp(d) for d in rtp_datagrams("sipp_rtp_pcmu_dtmf.bin")]
    assert {p.ssrc for p in packets} == {0x5EC02222}
    assert [p.payload_type for p in packets] == [0, 0, 101, 101, 101, 101, 0]
    events = [DtmfEvent.parse(p.payload) for p in packets if p.payload_type == 101]
    assert {e.event for e in events} == {7}
    assert [e.end for e in events] == [False, True, True, True], "the end packet is sent three times (RFC 4733)"
    assert len({p.timestamp for p in packets if p.payload_type == 101}) == 1, "one event, one timestamp"


def test_every_captured_rtp_packet_serialises_back_to_the_same_bytes() -> None:
    for name in ("sipp_rtp_pcmu.bin", "sipp_rtp_pcmu_dtmf.bin"):
        for datagram in rtp_datagrams(name):
            assert RtpPacket.parse(datagram).serialize() == datagram
