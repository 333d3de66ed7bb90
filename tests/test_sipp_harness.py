"""The sipp harness itself (tests/sipp.py): G.711 and pcap writers read back, scenario keys, one real sipp run."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from media_server.codecs.g711 import alaw_decode, ulaw_decode, ulaw_encode
from tests.sipp import (
    DEFAULT_KEYS,
    SCENARIOS,
    Dtmf,
    parse_sdp,
    read_rtp_pcap,
    require_sipp,
    run_sipp,
    scenario_names,
    siprec_metadata,
    siprec_multipart,
    siprec_sdp,
    write_alaw,
    write_rtp_pcap,
    write_siprec_media,
    write_ulaw,
)

NS = "{urn:ietf:params:xml:ns:recording:1}"


def tone(seconds: float, hz: float, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def test_g711_files_are_headerless_and_decode_back(tmp_path: Path) -> None:
    pcm = tone(0.5, 440)
    u = write_ulaw(tmp_path / "a.ulaw", pcm).read_bytes()
    a = write_alaw(tmp_path / "a.alaw", pcm).read_bytes()
    assert len(u) == len(a) == len(pcm)
    for decoded in (ulaw_decode(u), alaw_decode(a)):
        assert np.max(np.abs(decoded.astype(np.int32) - pcm)) < 300  # G.711 quantisation at this level


def test_rtp_pcap_round_trip(tmp_path: Path) -> None:
    rep, customer = tone(1.0, 300), tone(0.61, 700)  # 50 frames, 31 frames (the last padded)
    duration = write_rtp_pcap(tmp_path / "c.pcap", [rep, customer])
    data = (tmp_path / "c.pcap").read_bytes()
    assert struct.unpack_from("<IHHiIII", data)[0::6] == (0xA1B2C3D4, 1)  # classic pcap, Ethernet
    packets = read_rtp_pcap(tmp_path / "c.pcap")
    assert duration == pytest.approx(1.0)
    assert all(p.checksums_ok for p in packets)
    assert [p.time for p in packets] == sorted(p.time for p in packets)  # interleaved in time order
    by_port = {port: [p for p in packets if p.dst_port == port] for port in (6000, 6002)}
    assert [len(v) for v in by_port.values()] == [50, 31]
    assert len({v[0].ssrc for v in by_port.values()}) == 2
    for stream, pcm in zip(by_port.values(), (rep, customer), strict=True):
        assert {p.payload_type for p in stream} == {0}
        assert [p.marker for p in stream] == [True] + [False] * (len(stream) - 1)
        assert all(len(p.payload) == 160 for p in stream)
        assert np.diff([p.seq for p in stream]).tolist() == [1] * (len(stream) - 1)
        assert np.diff([p.timestamp for p in stream]).tolist() == [160] * (len(stream) - 1)
        assert np.allclose(np.diff([p.time for p in stream]), 0.02)
        payload = b"".join(p.payload for p in stream)
        assert payload[: len(pcm)] == ulaw_encode(pcm)
        assert set(payload[len(pcm) :]) <= {0xFF}  # silence padding


def test_pcap_pieces_continue_the_streams_and_carry_dtmf(tmp_path: Path) -> None:
    rep, customer = tone(3.0, 300), tone(3.0, 700)
    media = write_siprec_media(tmp_path, rep, customer, "PCMA", hold=(1.0, 2.0), dtmf=[Dtmf(0, 0.5, "7", 100)])
    assert set(media.files) == {"siprec.pcap", "siprec_hold.pcap", "siprec_resume.pcap"}
    assert set(media.variables) == {"siprec_ms", "siprec_hold_ms", "siprec_resume_ms"}
    rep_packets = [p for name in media.files.values() for p in read_rtp_pcap(name) if p.dst_port == 6000]
    audio = [p for p in rep_packets if p.payload_type == 8]
    events = [p for p in rep_packets if p.payload_type == 101]
    assert {p.ssrc for p in rep_packets} == {rep_packets[0].ssrc}
    assert len(audio) + len({p.seq for p in events}) == 150  # 3 s of 20 ms frames on the rep's stream
    assert np.diff(sorted({p.seq for p in rep_packets})).tolist() == [1] * 149
    assert [p for p in read_rtp_pcap(media.files["siprec_hold.pcap"]) if p.dst_port != 6000] == []
    # RFC 4733: one event, same timestamp, growing duration, end bit on the last (sent three times)
    assert len({p.timestamp for p in events}) == 1 and events[0].marker
    assert [p.payload[0] for p in events] == [7] * 7
    assert [struct.unpack("!H", p.payload[2:])[0] for p in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [bool(p.payload[1] & 0x80) for p in events] == [False] * 4 + [True] * 3


def test_siprec_bodies_and_scenario_keys() -> None:
    ctype, body = siprec_multipart(siprec_sdp(), siprec_metadata({"customer_name": "Zo&#235; Client"}))
    boundary = ctype.split("boundary=")[1]
    parts = body.decode().split(f"--{boundary}")
    assert len(parts) == 4 and parts[-1].startswith("--")
    media = parse_sdp(parts[1].partition("\r\n\r\n")[2])
    assert [(m.label, m.direction, m.payload_types) for m in media] == [
        ("1", "sendonly", [0, 8, 101]),
        ("2", "sendonly", [0, 8, 101]),
    ]
    root = ET.fromstring(parts[2].partition("\r\n\r\n")[2])
    names = [p.findtext(f"{NS}nameID/{NS}name") for p in root.iter(f"{NS}participant")]
    assert names == ["Alice Rep", "Zoë Client"]
    # Every scenario is well-formed XML and uses only sipp's own keywords and DEFAULT_KEYS.
    builtin = {"service", "remote_ip", "remote_port", "transport", "local_ip", "local_port", "branch", "pid"}
    builtin |= {"call_number", "call_id", "len", "local_ip_type", "media_ip_type", "media_ip", "media_port"}
    builtin |= {"peer_tag_param"}
    for scenario in SCENARIOS.glob("*.xml"):
        text = scenario.read_text(encoding="iso-8859-1")
        ET.fromstring(text.encode("iso-8859-1"))
        keys = scenario_names(text)[0]
        assert keys <= builtin | set(DEFAULT_KEYS), (scenario.name, keys - builtin - set(DEFAULT_KEYS))


class OptionsResponder(asyncio.DatagramProtocol):
    """Answers OPTIONS with 200 OK, copying Via, From, To, Call-ID and CSeq."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        text = data.decode(errors="replace")
        if not text.startswith("OPTIONS "):
            return
        self.requests.append(text)
        copied = [
            line for line in text.split("\r\n") if line.split(":")[0].lower() in ("via", "from", "call-id", "cseq")
        ]
        to = next(line for line in text.split("\r\n") if line.lower().startswith("to:"))
        reply = ["SIP/2.0 200 OK", *copied, f"{to};tag=responder", "Content-Length: 0", "", ""]
        self.transport.sendto("\r\n".join(reply).encode(), addr)


@pytest.mark.skipif(
    shutil.which("sipp") is None and os.environ.get("CI") != "true", reason="sipp is not installed (sip-tester)"
)
async def test_run_sipp_options_against_a_responder(tmp_path: Path) -> None:
    require_sipp()
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(OptionsResponder, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        result = await run_sipp("options.xml", f"127.0.0.1:{port}", workdir=tmp_path, calls=2, timeout_s=20)
    finally:
        transport.close()
    assert result.ok, result.explain()
    assert (result.successful, result.failed) == (2, 0)
    assert len(responder.requests) == 2
    assert [m.splitlines()[0] for m in result.responses(200, "OPTIONS")] == ["SIP/2.0 200 OK"] * 2
    assert result.message_log.exists() and result.stats_csv.exists()
