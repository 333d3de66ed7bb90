"""SIPp as the real peer of our SIPREC recording server (SRS): G.711 and RTP pcap writers, a scenario runner.

The scenarios live in tests/sipp/*.xml; every one is a UAC (see the comment at the top of each). ``run_sipp``
copies the scenario (and the pcaps it plays) into a work directory, fills the scenario's ``[keys]`` with
``DEFAULT_KEYS`` unless the test sets them, runs ``sipp`` as an asyncio subprocess and parses what happened
(``SippResult``: rc, counts of successful and failed calls, the SIP messages, the SRS's SDP answers)::

    rep, customer = two_party()                                     # tests/speech.py programs, 8 kHz int16
    media = write_siprec_media(tmp_path, rep.pcm, customer.pcm)     # siprec.pcap: rep -> m-line 1, customer -> 2
    res = await run_sipp("siprec_call.xml", f"127.0.0.1:{sip_port}", workdir=tmp_path, files=media.files,
                         variables={**media.variables, **siprec_variables(customer_name="Dana Buyer")},
                         timeout_s=media.duration_s + 30)
    assert res.ok, res.explain()
    [rep_m, customer_m] = res.answers()[0]                          # recvonly, labels "1"/"2", ports X, X+2

How SIPp 3.6.1 plays the RTP (``play_pcap_audio``; a raw socket, so root): it reads the pcap's UDP packets
(Ethernet or Linux-cooked link type only, not raw IP: ``write_rtp_pcap`` writes Ethernet), takes the LOWEST
destination port in the file as the base, and sends each packet to ``P + (its port - base)``, where P is the
port of the FIRST ``m=audio`` line of the last SDP it received (and the address of its c= line). So a
two-stream pcap with destination ports 6000 and 6002 reaches the SRS on X and X+2: the SRS must answer the two
m-lines with consecutive even ports X, X+2. A pcap holding only the second stream would land on the FIRST
m-line's port (its port becomes the base). SIPp rewrites the UDP ports and checksum, keeps the RTP header and
payload byte for byte, and paces the packets by the pcap timestamps. The RTP leaves from ``-mi`` and from the
ports ``-mp`` + 2 + offset (seen: stream 1 from media_port + 2, stream 2 from media_port + 4), which are NOT the
ports of the SDP offer's m-lines (media_port, media_port + 2): an SRS must not match streams by source port.

SIPp traps met here (3.6.1):
- ``play_pcap_audio`` takes a literal file name (no keywords), read when the scenario is loaded, looked up next
  to the scenario and then in the current directory: the pcap must exist before sipp starts.
- A ``[key]`` that no ``-key`` supplies is a fatal "Unsupported keyword" error at load time.
- ``-set`` values are strings and ``<pause variable>`` reads a string as 0 ms: convert with ``<todouble>``.
- An ``<ereg assign_to>`` variable used only once is a fatal error.
- A message that arrives while the call is at a ``<send>`` step is unexpected and aborts the call (sipp then
  sends CANCEL/BYE by itself); an optional ``<recv>`` still waits for a message, it is not skipped when none
  comes: use ``timeout``/``ontimeout`` on a recv to move on.
- With ``start_txn="invite"`` sipp refuses to load unless some ``<send>`` has ``ack_txn="invite"``.
- Leading whitespace of each scenario line is stripped and lines end in CRLF; ``[len]`` is right (padded with a
  space: "Content-Length:  2308").
- Unexpected responses fail the call, so provisional responses are ``optional="true"``.
- ``-bg`` would detach (never used); several sipp at once need distinct ``-cp`` control ports (8888 by
  default) and ``-mp`` media ports: ``run_sipp`` picks free ones.
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
import pytest

from media_server.codecs.g711 import alaw_encode, ulaw_encode

SCENARIOS = Path(__file__).resolve().parent / "sipp"
SAMPLE_RATE = 8000
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
TELEPHONE_EVENT_PT = 101
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}

Pcm = npt.NDArray[np.int16]


def sipp_available() -> bool:
    return shutil.which("sipp") is not None


def require_sipp() -> None:
    """Skip without sipp, except under CI, where a missing sipp fails the test run."""
    if sipp_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("sipp is not installed (apt-get install sip-tester)")
    pytest.skip("sipp is not installed: apt-get install sip-tester")


def require_raw_sockets() -> None:
    """play_pcap_audio sends through a raw socket: root (or CAP_NET_RAW). Skip without, fail under CI."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError:
        if os.environ.get("CI") == "true":
            pytest.fail("sipp's play_pcap_audio needs raw sockets: run the tests as root")
        pytest.skip("sipp's play_pcap_audio needs raw sockets: run the tests as root")


# ---------------------------------------------------------------------------------------------------------------
# G.711 files (headerless), for rtp_stream="file.ulaw,loops,pt"


def write_ulaw(path: Path, pcm: Pcm) -> Path:
    """Headerless mu-law, 8 kHz mono: what SIPp's ``rtp_stream`` plays (it does not skip WAV headers)."""
    path.write_bytes(ulaw_encode(np.asarray(pcm, dtype=np.int16)))
    return path


def write_alaw(path: Path, pcm: Pcm) -> Path:
    """Headerless A-law, 8 kHz mono."""
    path.write_bytes(alaw_encode(np.asarray(pcm, dtype=np.int16)))
    return path


# ---------------------------------------------------------------------------------------------------------------
# RTP in a classic libpcap file (link type Ethernet), as SIPp's play_pcap_audio reads it

_PCAP_MAGIC = 0xA1B2C3D4
_LINKTYPE_ETHERNET = 1
_EPOCH = 1_700_000_000  # pcap timestamps start here (SIPp uses only their differences)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_ipv4_ethernet(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int) -> bytes:
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    udp_len = 8 + len(payload)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = _checksum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, udp_sum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0800)
    return ether + ip + udp


def default_ssrc(index: int) -> int:
    return 0x5EC0_0000 + 0x1111 * (index + 1)


def _default_seq0(index: int) -> int:
    return (1000 + 7919 * index) & 0xFFFF


def _default_ts0(index: int) -> int:
    return (160_000 + 1_000_003 * index) & 0xFFFFFFFF


@dataclass(frozen=True)
class Dtmf:
    """An RFC 4733 event on one stream: replaces that stream's audio packets from ``at_s`` for ``duration_ms``."""

    stream: int
    at_s: float
    digit: str
    duration_ms: int = 200
    volume: int = 10


def write_rtp_pcap(
    path: Path,
    streams: Sequence[Pcm],
    codec: str = "PCMU",
    dst_ports: Sequence[int] = (6000, 6002),
    ptime_ms: int = 20,
    *,
    start_s: float = 0.0,
    ssrcs: Sequence[int] | None = None,
    dtmf: Sequence[Dtmf] = (),
    src_ip: str = "192.0.2.1",
    dst_ip: str = "192.0.2.2",
    speed: float = 1.0,
) -> float:
    """One RTP stream per entry of ``streams`` (8 kHz int16 PCM), G.711 ``codec``, to ``dst_ports[i]``.

    Packets every ``ptime_ms`` in time order, streams interleaved; each stream has its own SSRC, sequence
    numbers and timestamps; marker bit on each stream's first packet; the last frame is padded with silence.
    ``start_s`` shifts the packet times and continues the sequence numbers and RTP timestamps as if the
    stream had been running since 0 with the same SSRC (for the pcaps of one call cut in pieces, e.g. around
    a hold). ``speed`` > 1 packs the packet times closer (2.0: twice real time; RTP timestamps unchanged, so
    the receiver sees audio arrive faster than it plays). UDP and IP checksums are right.
    Returns how long the pcap plays, in seconds (last packet time + one packet interval).
    """
    if codec not in PAYLOAD_TYPES:
        raise ValueError(f"codec must be one of {sorted(PAYLOAD_TYPES)}")
    if len(dst_ports) < len(streams):
        raise ValueError("one destination port per stream")
    encode = ulaw_encode if codec == "PCMU" else alaw_encode
    pt = PAYLOAD_TYPES[codec]
    spf = SAMPLE_RATE * ptime_ms // 1000
    first = round(start_s * 1000 / ptime_ms)
    packets: list[tuple[int, int, int, bytes]] = []  # (frame index, stream, order within the frame, datagram)
    for i, pcm in enumerate(streams):
        ssrc = ssrcs[i] if ssrcs is not None else default_ssrc(i)
        seq0, ts0 = _default_seq0(i), _default_ts0(i)
        pcm = np.asarray(pcm, dtype=np.int16)
        n = math.ceil(len(pcm) / spf)
        encoded = encode(np.pad(pcm, (0, n * spf - len(pcm))))
        events: dict[int, tuple[int, int, bool, int, int]] = {}  # frame -> (event, duration, end, ts, volume)
        for ev in (d for d in dtmf if d.stream == i):
            k0 = round(ev.at_s * 1000 / ptime_ms) - first
            count = max(1, ev.duration_ms // ptime_ms)
            for j in range(count):
                if 0 <= k0 + j < n:
                    ts_event = (ts0 + (first + k0) * spf) & 0xFFFFFFFF
                    events[k0 + j] = (DTMF_EVENTS[ev.digit], (j + 1) * spf, j == count - 1, ts_event, ev.volume)
        for k in range(n):
            seq = (seq0 + first + k) & 0xFFFF
            if k in events:
                event, duration, end, ts, volume = events[k]
                marker = k - 1 not in events
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)
                header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | TELEPHONE_EVENT_PT, seq, ts, ssrc)
                # The end packet goes three times (RFC 4733 2.5.1.4), with the same sequence number.
                for repeat in range(3 if end else 1):
                    packets.append((k, i, repeat, header + payload))
                continue
            ts = (ts0 + (first + k) * spf) & 0xFFFFFFFF
            marker = k == 0 or k - 1 in events
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc)
            packets.append((k, i, 0, header + encoded[k * spf : (k + 1) * spf]))
    packets.sort(key=lambda p: (p[0], p[1], p[2]))
    out = io.BytesIO()
    out.write(struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
    for ident, (k, i, _, rtp) in enumerate(packets):
        t = (start_s + k * ptime_ms / 1000) / speed
        usec_total = round(t * 1_000_000)
        frame = _udp_ipv4_ethernet(src_ip, dst_ip, 40000 + 2 * i, dst_ports[i], rtp, ident)
        out.write(
            struct.pack("<IIII", _EPOCH + usec_total // 1_000_000, usec_total % 1_000_000, len(frame), len(frame))
        )
        out.write(frame)
    path.write_bytes(out.getvalue())
    last = max((k for k, *_ in packets), default=-1)
    return (last + 1) * ptime_ms / 1000 / speed


@dataclass(frozen=True)
class RtpPacket:
    time: float  # seconds since the first packet of the file
    src_port: int
    dst_port: int
    ssrc: int
    seq: int
    timestamp: int
    payload_type: int
    marker: bool
    payload: bytes
    checksums_ok: bool  # IPv4 header and UDP checksums


def read_rtp_pcap(path: Path) -> list[RtpPacket]:
    """The RTP packets of a pcap written by ``write_rtp_pcap`` (Ethernet, IPv4, UDP), checked on the way."""
    data = path.read_bytes()
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data, 0)
    if magic != _PCAP_MAGIC or (major, minor) != (2, 4) or linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"not a little-endian microsecond Ethernet pcap: {magic:#x} {major}.{minor} {linktype}")
    packets: list[RtpPacket] = []
    offset, t0 = 24, None
    while offset < len(data):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if caplen != origlen or struct.unpack_from("!H", frame, 12)[0] != 0x0800:
            raise ValueError("truncated or non-IPv4 frame")
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ip[9] != 17:
            raise ValueError("not IPv4/UDP")
        ip_ok = _checksum(ip[:ihl]) == 0
        udp = ip[ihl : struct.unpack_from("!H", ip, 2)[0]]
        sport, dport, ulen, usum = struct.unpack_from("!HHHH", udp, 0)
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, ulen)
        udp_ok = usum == 0 or _checksum(pseudo + udp[:ulen]) == 0
        rtp = udp[8:ulen]
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", rtp, 0)
        if b0 >> 6 != 2:
            raise ValueError("not RTP version 2")
        t = sec * 1_000_000 + usec
        t0 = t if t0 is None else t0
        packets.append(
            RtpPacket(
                (t - t0) / 1_000_000,
                sport,
                dport,
                ssrc,
                seq,
                ts,
                b1 & 0x7F,
                bool(b1 & 0x80),
                rtp[12:],
                ip_ok and udp_ok,
            )
        )
    return packets


def pcap_duration_s(path: Path) -> float:
    """How long SIPp takes to play the pcap: from the first packet to the last, plus one packet interval."""
    times = sorted({p.time for p in read_rtp_pcap(path)})
    if not times:
        return 0.0
    steps = [b - a for a, b in pairwise(times)]
    return times[-1] + (min(steps) if steps else 0.02)


# ---------------------------------------------------------------------------------------------------------------
# Scenario values

# Every [key] the scenarios use, with its default. Ids are base64-looking prefixes: the scenarios append
# [call_number], so each call of a multi-call run has its own (RFC 7865 ids are base64 of 128-bit UUIDs; ours
# are opaque strings of the same alphabet).
DEFAULT_KEYS: dict[str, str] = {
    "boundary": "OurSipRecBoundary7b1c",
    "offer_pts": "0 8 101",
    "rep_name": "Alice Rep",
    "rep_aor": "sip:alice@acme.example",
    "customer_name": "Bob Customer",
    "customer_aor": "sip:bob@customer.example",
    "customer_name_update": "Robert Customer",  # siprec_reinvite.xml: the name in the re-INVITEs' metadata
    "rep_label": "1",  # the stream label (m-line, 1 or 2) the rep's stream has; the customer has the other
    "customer_label": "2",
    "group_id": "7+OTCyoxTmqmqyA/1weDA",
    "session_id": "hVpd7YQgRW2nD22h7q60J",
    "rep_id": "srfBElmCRp2QB23b7Mpk0",
    "customer_id": "zSfPoSvdSDCmU3A3TRDxA",
    "rep_stream_id": "UAAMm5GRQKSCMVvLyl4rF",
    "customer_stream_id": "i1Pz3to5hGk8fuXl+PbwC",
}
# Pause variables (<Global variables>) named after a pcap, "<stem>_ms", default to that pcap's length + this.
PAUSE_MARGIN_MS = 300
SEGMENT_MARGIN_MS = 40  # write_siprec_media: the pause after a pcap that another one follows


def siprec_variables(
    *,
    rep_name: str | None = None,
    rep_aor: str | None = None,
    customer_name: str | None = None,
    customer_aor: str | None = None,
    customer_name_update: str | None = None,
    rep_label: int | None = None,
    offer_pts: str | None = None,
    **others: str,
) -> dict[str, str]:
    """Values for the SIPREC scenarios' keys, XML-escaped where they land in the metadata."""
    values: dict[str, str] = {}
    for key, value in (
        ("rep_name", rep_name),
        ("rep_aor", rep_aor),
        ("customer_name", customer_name),
        ("customer_aor", customer_aor),
        ("customer_name_update", customer_name_update),
    ):
        if value is not None:
            values[key] = escape(value, {'"': "&quot;"})
    if rep_label is not None:
        if rep_label not in (1, 2):
            raise ValueError("rep_label is 1 or 2")
        values["rep_label"], values["customer_label"] = str(rep_label), str(3 - rep_label)
    if offer_pts is not None:
        values["offer_pts"] = offer_pts
    values.update(others)
    return values


@dataclass(frozen=True)
class SiprecMedia:
    """The pcaps of one recording session and the pause lengths that go with them."""

    files: dict[str, Path]
    variables: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0


def write_siprec_media(
    workdir: Path,
    rep: Pcm,
    customer: Pcm,
    codec: str = "PCMU",
    *,
    hold: tuple[float, float] | None = None,
    dtmf: Sequence[Dtmf] = (),
    speed: float = 1.0,
) -> SiprecMedia:
    """siprec.pcap: rep on the first m-line (label 1), customer on the second, as long as the longer one.

    With ``hold=(start_s, end_s)`` (for siprec_reinvite.xml): siprec.pcap covers [0, start), then the
    customer's stream is put on hold: siprec_hold.pcap carries only the rep's stream over [start, end), and
    siprec_resume.pcap both streams from ``end`` on, with the SSRCs, sequence numbers and timestamps running
    on; the customer's audio during the hold is not sent. ``variables`` then holds the three pause lengths
    (run_sipp would compute the same). ``dtmf`` times are from the start of the call.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    n = max(len(rep), len(customer))
    rep = np.pad(np.asarray(rep, dtype=np.int16), (0, n - len(rep)))
    customer = np.pad(np.asarray(customer, dtype=np.int16), (0, n - len(customer)))
    files: dict[str, Path] = {}
    if hold is None:
        files["siprec.pcap"] = workdir / "siprec.pcap"
        write_rtp_pcap(files["siprec.pcap"], [rep, customer], codec, dtmf=dtmf, speed=speed)
        return SiprecMedia(files, {}, n / SAMPLE_RATE)
    start, end = (round(x * 1000 / 20) * 20 * SAMPLE_RATE // 1000 for x in hold)  # whole 20 ms frames
    if not 0 < start < end < n:
        raise ValueError("hold must lie inside the call")
    pieces = {
        "siprec.pcap": ([rep[:start], customer[:start]], 0.0),
        "siprec_hold.pcap": ([rep[start:end]], start / SAMPLE_RATE),
        "siprec_resume.pcap": ([rep[end:], customer[end:]], end / SAMPLE_RATE),
    }
    variables: dict[str, str] = {}
    for name, (streams, offset) in pieces.items():
        files[name] = workdir / name
        own = [d for d in dtmf if d.stream < len(streams)]
        length = write_rtp_pcap(files[name], streams, codec, start_s=offset, dtmf=own, speed=speed)
        # Between pieces only a short margin, so the RTP goes on nearly without a gap across the re-INVITEs.
        margin = PAUSE_MARGIN_MS if name == "siprec_resume.pcap" else SEGMENT_MARGIN_MS
        variables[f"{Path(name).stem}_ms"] = str(round(length * 1000) + margin)
    return SiprecMedia(files, variables, n / SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------------------------
# SIPREC bodies built in Python (for tests that talk SIP themselves, or to compare with what sipp sent)


def siprec_sdp(
    media_ip: str = "127.0.0.1",
    media_port: int = 6000,
    pts: str = "0 8 101",
    directions: Sequence[str] = ("sendonly",) * 2,
) -> str:
    lines = ["v=0", f"o=SRC 2890844526 2890844526 IN IP4 {media_ip}", "s=SIPREC", f"c=IN IP4 {media_ip}", "t=0 0"]
    for i, direction in enumerate(directions):
        lines += [
            f"m=audio {media_port + 2 * i} RTP/AVP {pts}",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:20",
            f"a=label:{i + 1}",
            f"a={direction}",
        ]
    return "\r\n".join(lines) + "\r\n"


def siprec_metadata(values: Mapping[str, str] | None = None, call_number: int = 1, sip_session_id: str = "x") -> str:
    """The RFC 7865 metadata siprec_call.xml sends, from the same keys (already XML-escaped values)."""
    v = {**DEFAULT_KEYS, **(values or {})}
    ids = {k: f"{v[k]}{call_number}" for k in DEFAULT_KEYS if k.endswith("_id")}
    parties = [("rep", "customer"), ("customer", "rep")]
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">',
        "<datamode>complete</datamode>",
        f'<group group_id="{ids["group_id"]}"><associate-time>2024-05-01T10:00:00Z</associate-time></group>',
        f'<session session_id="{ids["session_id"]}"><sipSessionID>{escape(sip_session_id)}</sipSessionID>'
        f"<group-ref>{ids['group_id']}</group-ref></session>",
    ]
    for who, _ in parties:
        out.append(
            f'<participant participant_id="{ids[who + "_id"]}"><nameID aor="{v[who + "_aor"]}">'
            f'<name xml:lang="en">{v[who + "_name"]}</name></nameID></participant>'
        )
    for who, _ in parties:
        out.append(
            f'<stream stream_id="{ids[who + "_stream_id"]}" session_id="{ids["session_id"]}">'
            f"<label>{v[who + '_label']}</label></stream>"
        )
    for who, other in parties:
        out.append(
            f'<participantstreamassoc participant_id="{ids[who + "_id"]}"><send>{ids[who + "_stream_id"]}</send>'
            f"<recv>{ids[other + '_stream_id']}</recv></participantstreamassoc>"
        )
    out.append("</recording>")
    return "\r\n".join(out) + "\r\n"


def siprec_multipart(sdp: str, metadata: str, boundary: str = DEFAULT_KEYS["boundary"]) -> tuple[str, bytes]:
    """(Content-Type header value, body) of a SIPREC INVITE."""
    body = (
        f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{boundary}\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
        f"{metadata}--{boundary}--\r\n"
    )
    return f"multipart/mixed;boundary={boundary}", body.encode()


# ---------------------------------------------------------------------------------------------------------------
# Running sipp


@dataclass
class SippResult:
    rc: int
    stdout: str
    stderr: str
    command: list[str]
    scenario: Path  # the copy that ran, in the work directory
    error_log: Path  # -trace_err: unexpected messages and errors
    message_log: Path  # -trace_msg: every SIP message sent and received
    stats_csv: Path  # -trace_stat
    successful: int
    failed: int
    counters: dict[str, int]  # the cumulative "(C)" counters of the stats file: FailedUnexpectedMessage, ...
    calls: int = 1  # asked for (-m)
    killed: bool = False  # sipp outlived timeout_s + grace and was killed

    @property
    def ok(self) -> bool:
        """Every call went through the scenario to its end."""
        return self.rc == 0 and self.failed == 0 and self.successful == self.calls

    def messages(self) -> str:
        return self.message_log.read_text(errors="replace") if self.message_log.exists() else ""

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def received(self) -> list[str]:
        """The SIP messages sipp received, in order (from the message log)."""
        return _messages(self.messages(), "received")

    def sent(self) -> list[str]:
        return _messages(self.messages(), "sent")

    def responses(self, status: int | None = None, method: str | None = None) -> list[str]:
        """Received responses, optionally only those with this status code and CSeq method."""
        out = []
        for message in self.received():
            m = re.match(r"SIP/2\.0 (\d{3})", message)
            cseq = re.search(r"^CSeq:\s*\d+\s+(\S+)", message, flags=re.M | re.I)
            if not m or (status is not None and int(m.group(1)) != status):
                continue
            if method is not None and (cseq is None or cseq.group(1).upper() != method.upper()):
                continue
            out.append(message)
        return out

    def answers(self) -> list[list[SdpMedia]]:
        """The SDP of each 200 OK to an INVITE, in order (the initial answer, then the re-INVITEs')."""
        return [parse_sdp(message.partition("\n\n")[2]) for message in self.responses(200, "INVITE")]

    def explain(self) -> str:
        tail = "\n".join(self.stdout.splitlines()[-40:])
        return (
            f"sipp rc={self.rc} successful={self.successful} failed={self.failed} killed={self.killed}\n"
            f"command: {' '.join(self.command)}\nstderr:\n{self.stderr[-3000:]}\nerrors:\n{self.errors()[-4000:]}\n"
            f"screen:\n{tail}\nmessages:\n{self.messages()[-6000:]}"
        )


def _messages(log: str, direction: str) -> list[str]:
    """Messages of a -trace_msg log. Blocks start with a line of dashes, then "UDP message sent (N bytes):" or
    "TCP message received [N] bytes :"; "Unexpected UDP message received:" blocks repeat a message, skipped."""
    out = []
    for block in re.split(r"^-{20,}.*\n", log.replace("\r\n", "\n"), flags=re.M):
        head, _, rest = block.partition("\n")
        if re.match(rf"(UDP|TCP|TLS|SCTP) message {direction}", head):
            out.append(rest.strip("\n"))
    return out


@dataclass(frozen=True)
class SdpMedia:
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str]  # pt -> "PCMU/8000"
    direction: str  # sendrecv unless an a=sendonly/recvonly/inactive says otherwise
    label: str | None
    connection: str | None  # the c= address that applies to it


def parse_sdp(text: str) -> list[SdpMedia]:
    """The m= sections of an SDP body (enough to check the SRS's answer)."""
    session_c: str | None = None
    media: list[SdpMedia] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        kind, _, value = line.strip().partition("=")
        fields = value.split()
        if kind == "c" and fields:
            if media:
                media[-1] = replace(media[-1], connection=fields[-1])
            else:
                session_c = fields[-1]
        elif kind == "m" and len(fields) >= 3:
            pts = [int(p) for p in fields[3:] if p.isdigit()]
            media.append(SdpMedia(int(fields[1]), pts, {}, "sendrecv", None, session_c))
        elif kind == "a" and media:
            name, _, arg = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                media[-1] = replace(media[-1], direction=name)
            elif name == "label":
                media[-1] = replace(media[-1], label=arg)
            elif name == "rtpmap":
                pt, _, codec = arg.partition(" ")
                media[-1].rtpmap[int(pt)] = codec
    return media


def free_udp_port(pair: bool = False) -> int:
    """A free UDP port (even, with port + 2 free as well when ``pair``), that is also free on TCP."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if pair and (port % 2 or port + 2 > 65535):
            continue
        wanted = [port, port + 2] if pair else [port]
        try:
            socks = []
            for p in wanted:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return port
    raise RuntimeError("no free port")


def scenario_names(text: str) -> tuple[set[str], set[str], set[str]]:
    """([keys], <Global variables>, play_pcap_audio files) a scenario uses, comments left out."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    keys = set(re.findall(r"\[([A-Za-z_][A-Za-z0-9_]*)\]", text))
    globals_ = {
        name.strip()
        for m in re.findall(r'<Global\s+variables="([^"]*)"', text)
        for name in m.split(",")
        if name.strip()
    }
    pcaps = set(re.findall(r'play_pcap_audio="([^"]+)"', text))
    return keys, globals_, pcaps


def _parse_stats(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    if len(rows) < 2:
        return {}
    counters = {}
    for name, value in zip(rows[0], rows[-1], strict=False):
        if name.endswith("(C)"):
            try:
                counters[name[:-3]] = int(value)
            except ValueError:
                continue
    return counters


def _screen_count(stdout: str, label: str) -> int | None:
    found = re.findall(rf"^\s*{label}\s*\|\s*\d+\s*\|\s*(\d+)", stdout, flags=re.M)
    return int(found[-1]) if found else None


@dataclass(frozen=True)
class SippRun:
    """A sipp command ready to run in its work directory (``prepare_sipp``)."""

    command: list[str]
    workdir: Path
    scenario: Path
    error_log: Path
    message_log: Path
    stats_csv: Path
    calls: int


def prepare_sipp(
    scenario: Path | str,
    target: str,
    *,
    workdir: Path,
    variables: Mapping[str, str] | None = None,
    files: Mapping[str, Path] | None = None,
    calls: int = 1,
    rate: float | None = None,
    max_concurrent: int | None = None,
    transport: str = "u1",
    timeout_s: float = 60,
    recv_timeout_ms: int = 10_000,
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    media_port: int | None = None,
    service: str = "srs",
    extra_args: Sequence[str] = (),
) -> SippRun:
    """Copy the scenario and its files into ``workdir`` and build the sipp command: see ``run_sipp``."""
    require_sipp()
    if transport not in ("u1", "un", "t1", "tn"):
        raise ValueError("transport is u1, un, t1 or tn")
    source = SCENARIOS / scenario if (SCENARIOS / scenario).is_file() else Path(scenario)
    text = source.read_text(encoding="iso-8859-1")
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / source.name
    if copy.resolve() != source.resolve():
        copy.write_text(text, encoding="iso-8859-1")
    for name, path in (files or {}).items():
        dest = workdir / name
        if dest.resolve() != Path(path).resolve():
            shutil.copyfile(path, dest)
    keys, globals_, pcaps = scenario_names(text)
    missing = sorted(p for p in pcaps if not (workdir / p).exists())
    if missing:
        raise FileNotFoundError(f"{source.name} plays {missing}: pass them in files= (or write them into {workdir})")
    if pcaps:
        require_raw_sockets()

    given = dict(variables or {})
    sets: dict[str, str] = {}
    for name in sorted(globals_):
        if name in given:
            sets[name] = given.pop(name)
        elif name.endswith("_ms") and (workdir / f"{name[:-3]}.pcap").exists():
            sets[name] = str(round(pcap_duration_s(workdir / f"{name[:-3]}.pcap") * 1000) + PAUSE_MARGIN_MS)
        else:
            raise ValueError(f"{source.name} needs a value for its variable {name!r}")
    values = {k: v for k, v in DEFAULT_KEYS.items() if k in keys}
    values.update(given)

    run = 0
    while (workdir / f"{copy.stem}.{run}.messages.log").exists() or (workdir / f"{copy.stem}.{run}.stats.csv").exists():
        run += 1
    base = f"{copy.stem}.{run}"
    error_log = workdir / f"{base}.errors.log"
    message_log = workdir / f"{base}.messages.log"
    stats_csv = workdir / f"{base}.stats.csv"
    command = [
        shutil.which("sipp") or "sipp",
        target,
        *("-sf", str(copy), "-t", transport),
        *("-i", local_ip, "-mi", local_ip, "-bind_local"),
        *("-p", str(local_port or free_udp_port()), "-mp", str(media_port or free_udp_port(pair=True))),
        *("-cp", str(free_udp_port())),  # the UDP control port, 8888 by default: one per sipp at once
        *("-s", service, "-m", str(calls)),
        *("-r", str(rate if rate is not None else max(calls, 1)), "-l", str(max_concurrent or max(calls, 1))),
        *("-timeout", f"{math.ceil(timeout_s)}s", "-timeout_error", "-recv_timeout", str(recv_timeout_ms)),
        *("-nostdin", "-aa"),  # -aa: 200 to in-dialog INFO, NOTIFY, OPTIONS, UPDATE
        *("-trace_err", "-error_file", str(error_log), "-trace_msg", "-message_file", str(message_log)),
        *("-trace_stat", "-stf", str(stats_csv), "-f", "5"),
    ]
    for name, value in values.items():
        command += ["-key", name, value]
    for name, value in sets.items():
        command += ["-set", name, value]
    command += list(extra_args)
    return SippRun(command, workdir, copy, error_log, message_log, stats_csv, calls)


def _result(run: SippRun, rc: int | None, out: bytes, err: bytes, killed: bool) -> SippResult:
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    counters = _parse_stats(run.stats_csv)
    successful = counters.get("SuccessfulCall", _screen_count(stdout, "Successful call") or 0)
    failed = counters.get("FailedCall", _screen_count(stdout, "Failed call") or 0)
    return SippResult(
        rc if rc is not None else -9,
        stdout,
        stderr,
        run.command,
        run.scenario,
        run.error_log,
        run.message_log,
        run.stats_csv,
        successful,
        failed,
        counters,
        run.calls,
        killed,
    )


async def run_sipp(
    scenario: Path | str,
    target: str,
    *,
    workdir: Path,
    variables: Mapping[str, str] | None = None,
    files: Mapping[str, Path] | None = None,
    calls: int = 1,
    rate: float | None = None,
    max_concurrent: int | None = None,
    transport: str = "u1",
    timeout_s: float = 60,
    recv_timeout_ms: int = 10_000,
    local_ip: str = "127.0.0.1",
    local_port: int | None = None,
    media_port: int | None = None,
    service: str = "srs",
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Run one sipp UAC scenario against ``target`` ("host:port") and wait for it to end.

    ``scenario``: a file name in tests/sipp, or a path. It is copied into ``workdir`` with ``files``
    (name -> path: the pcaps it plays, e.g. ``{"siprec.pcap": ...}``), and sipp runs there; its logs are
    ``<stem>.<n>.messages.log`` / ``.errors.log`` / ``.stats.csv`` there (n counts the runs in that directory).
    ``variables``: name -> value. Names the scenario declares in ``<Global variables>`` go as ``-set``
    (pause lengths in ms); all others as ``-key`` (``[name]`` in the scenario). Keys the scenario uses and
    the test does not give come from ``DEFAULT_KEYS``; a pause variable ``<stem>_ms`` not given is the length
    of ``<stem>.pcap`` + ``PAUSE_MARGIN_MS``.
    ``calls`` (-m), ``rate`` calls/s (-r; default ``calls``: all start within a second), ``max_concurrent``
    (-l, default ``calls``), ``transport`` u1|un|t1|tn (UDP or TCP, one socket or one per call),
    ``timeout_s`` (sipp's -timeout with -timeout_error; sipp is killed 10 s after it if still running),
    ``recv_timeout_ms`` (-recv_timeout: a response that does not come within it fails the call),
    ``local_ip`` (-i, -mi and -bind_local: SIP and RTP leave from it; any 127.x.y.z works on Linux),
    ``local_port`` (-p) and ``media_port`` (-mp: the SDP offer's first port) default to free ports.
    ``service``: the user part of the Request-URI. ``extra_args`` go last on sipp's command line.
    """
    run = prepare_sipp(
        scenario,
        target,
        workdir=workdir,
        variables=variables,
        files=files,
        calls=calls,
        rate=rate,
        max_concurrent=max_concurrent,
        transport=transport,
        timeout_s=timeout_s,
        recv_timeout_ms=recv_timeout_ms,
        local_ip=local_ip,
        local_port=local_port,
        media_port=media_port,
        service=service,
        extra_args=extra_args,
    )
    process = await asyncio.create_subprocess_exec(
        *run.command,
        cwd=run.workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    killed = False
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s + 10)
    except TimeoutError:
        killed = True
        process.kill()
        out, err = await process.communicate()
    except BaseException:  # cancelled: do not leave sipp behind
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return _result(run, process.returncode, out, err, killed)


# ---------------------------------------------------------------------------------------------------------------
# Capturing sipp's traffic for the fixtures in tests/data/traffic


@dataclass
class CapturedSession:
    invite: bytes  # the INVITE datagram as sipp sent it
    rtp: dict[int, list[bytes]]  # RTP datagrams as they arrived, by m-line (0: label 1, 1: label 2)


async def capture_siprec_session(workdir: Path, rep: Pcm, customer: Pcm, dtmf: Sequence[Dtmf] = ()) -> CapturedSession:
    """Run siprec_call.xml against a minimal SRS of this function's own (UDP; 200 OK with two recvonly m-lines on
    ports X, X+2 of its own, 200 OK to the BYE) and keep what sipp sent: the INVITE, and the RTP it played."""
    loop = asyncio.get_running_loop()
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.setblocking(False)
    port = free_udp_port(pair=True)
    rtp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for index, sock in enumerate(rtp):
        sock.bind(("127.0.0.1", port + 2 * index))
        sock.setblocking(False)
    media = write_siprec_media(workdir, rep, customer, dtmf=dtmf)
    target = f"127.0.0.1:{sip.getsockname()[1]}"
    run = asyncio.create_task(run_sipp("siprec_call.xml", target, workdir=workdir, files=media.files))
    received: dict[int, list[bytes]] = {0: [], 1: []}

    async def collect(index: int) -> None:
        while True:
            received[index].append(await loop.sock_recv(rtp[index], 2048))

    collectors = [asyncio.create_task(collect(i)) for i in range(2)]
    invite = b""
    try:
        async with asyncio.timeout(30):
            while True:
                data, addr = await loop.sock_recvfrom(sip, 65535)
                method = data.split(b" ", 1)[0]
                if method == b"INVITE":
                    invite = data
                    answer = siprec_answer(port)
                    sip.sendto(_response(data, b"200 OK", b"application/sdp", answer.encode()), addr)
                elif method == b"BYE":
                    sip.sendto(_response(data, b"200 OK"), addr)
                    break
        result = await run
        assert result.ok, result.explain()
    finally:
        run.cancel()
        for task in collectors:
            task.cancel()
        for sock in [sip, *rtp]:
            sock.close()
    return CapturedSession(invite, received)


def siprec_answer(port: int) -> str:
    lines = ["v=0", "o=srs 1 1 IN IP4 127.0.0.1", "s=capture", "c=IN IP4 127.0.0.1", "t=0 0"]
    for index in range(2):
        lines += [f"m=audio {port + 2 * index} RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000"]
        lines += ["a=rtpmap:101 telephone-event/8000", f"a=label:{index + 1}", "a=recvonly"]
    return "\r\n".join(lines) + "\r\n"


def _response(request: bytes, status: bytes, content_type: bytes = b"", body: bytes = b"") -> bytes:
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    lines = [b"SIP/2.0 " + status]
    for line in head[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if name in (b"via", b"from", b"call-id", b"cseq"):
            lines.append(line)
        elif name == b"to":
            lines.append(line if b";tag=" in line else line + b";tag=capture")
    lines.append(b"Contact: <sip:srs@127.0.0.1>")
    if body:
        lines.append(b"Content-Type: " + content_type)
    lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def write_traffic_fixtures(directory: Path) -> None:
    """tests/data/traffic/sipp_*: ``python -m tests.sipp tests/data/traffic`` (needs sipp and raw sockets)."""
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE  # 100 ms of each party: five 20 ms packets per stream
    rep = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    customer = (8000 * np.sin(2 * np.pi * 660 * t)).astype(np.int16)
    with tempfile.TemporaryDirectory() as work:
        session = asyncio.run(
            capture_siprec_session(
                Path(work), rep, customer, dtmf=[Dtmf(stream=1, at_s=0.04, digit="7", duration_ms=40)]
            )
        )
    (directory / "sipp_siprec_invite.txt").write_bytes(session.invite)
    for name, packets in (("sipp_rtp_pcmu.bin", session.rtp[0]), ("sipp_rtp_pcmu_dtmf.bin", session.rtp[1])):
        (directory / name).write_bytes(b"".join(struct.pack("!H", len(p)) + p for p in packets))


if __name__ == "__main__":
    write_traffic_fixtures(Path(sys.argv[1]))
