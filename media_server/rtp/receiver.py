"""Receive-only RTP: one audio stream on one local UDP port, decoded onto the call's timeline.

What comes from aiortp and what does not (aiortp's ``RTPSession`` is built to send as well as receive and
to play out in real time; here audio is handed on as soon as it is in order, on the call's clock):

- ``RtpPacket.parse`` (packet.py) and ``DtmfEvent`` / ``PcmConcealer`` (dtmf.py, codecs.py) are used.
- ``JitterBuffer``, ``DtmfReceiver`` and ``PortAllocator`` are not; jitterbuffer.py, dtmf.py and ports.py
  say why. Nor are its codecs (codecs.py says why) or its symmetric RTP, which moves the address
  ``RTPSession`` sends to after whatever address packets last came from and filters nothing.

Time: ``epoch`` is the ``time.monotonic()`` at which the call started. The first audio packet of a
stream is placed at its arrival (``arrival - epoch`` seconds of call time), every later one at
``anchor + (timestamp - first timestamp) / clock rate``, with 32-bit timestamp wrap-around unwrapped.
A gap in timestamps with no sequence numbers missing (silence suppression, DTX) is only a jump in
``start_time``; the consumer fills it. Sequence numbers that never arrived within ``jitter_ms`` are
concealed for the time their timestamps leave open, at most one packet's length each and ``MAX_CONCEAL``
in all. A stream is re-anchored at its arrival, never before the end of the audio already handed on
(so audio comes out in order, each sample once), when it starts over: a new SSRC (SBC failover, a
re-INVITE), a new payload format, the end of a hold, or timestamps that jump: forward by more than
``MAX_AHEAD`` beyond the time that passed between the two packets' arrivals (silence suppression
advances both), or back before audio already delivered.

Source: with ``remote=None`` the receiver latches onto the address of the first packet; packets from
any other address are ignored unless they bring a new SSRC, which re-latches (RFC 4961's symmetric RTP,
kept simple). With ``remote`` set, only packets from its host are taken (any port: a sender's source port
need not be the one its SDP advertises). ``admit_source``, when given, is asked about every datagram's
source before anything else: what it refuses is counted (``refused``) and dropped, so it never latches,
changes the SSRC or keeps the stream alive; latching happens only among the sources it admits. After an
SSRC change, stray packets of the previous SSRC are ignored for ``STALE_SSRC`` seconds instead of switching
back.

SRTP: with a decrypter (``srtp``, see srtp.py) every RTP datagram from an admitted source is authenticated
and decrypted first; what fails (another key, forged, altered, replayed) is counted (``unauthentic``) and
dropped before it can latch or change the SSRC. SRTCP, like RTCP, is ignored.

Telephone-events (RFC 4733) take sequence numbers of the audio stream, as comfort noise (RFC 3389,
static payload type 13) does: both hold their place in the jitter buffer, so they are not mistaken for
loss. Telephone-events with an SSRC other than the audio's give digits but do not touch the stream.
Nothing a datagram holds can raise out of the handler: it is counted (``ReceiverStats``) and dropped.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from media_server.rtp.codecs import AudioDecoder, DecodeError, Int16Array, decoder_for
from media_server.rtp.dtmf import TelephoneEventReceiver
from media_server.rtp.formats import RtpFormat
from media_server.rtp.jitterbuffer import Arrival, JitterBuffer, Release
from media_server.rtp.packet import MalformedPacket, is_rtcp, parse_rtp, ts_delta
from media_server.rtp.srtp import SrtpDecrypter, SrtpError

__all__ = ["ReceiverStats", "RtpReceiver"]

logger = logging.getLogger(__name__)

COMFORT_NOISE_PT = 13
MAX_AHEAD = 1.0  # seconds timestamps may run ahead of the arrivals, packet to packet, before they count as jumped
MAX_CONCEAL = 1.0  # seconds of concealment at most for one gap; the rest is left as a gap
STALE_SSRC = 1.0  # seconds during which the previous SSRC's packets are ignored after a change
_DEFAULT_PTIME = 0.02


@dataclass
class ReceiverStats:
    packets: int = 0  # RTP packets taken (audio, telephone-event, comfort noise)
    bytes: int = 0  # their datagram bytes
    lost: int = 0  # sequence numbers given up as lost
    concealed_ms: float = 0.0  # audio made up for lost packets and payloads that failed to decode
    duplicates: int = 0
    late: int = 0  # arrived after their place was given up
    reordered: int = 0  # arrived behind a later packet, put back in place
    malformed: int = 0  # not RTP, broken header, unknown payload type, empty audio, short telephone-event
    ssrc_changes: int = 0
    dtmf: int = 0  # digits reported
    decode_errors: int = 0  # payloads the decoder refused (concealed like lost packets)
    timestamp_jumps: int = 0  # re-anchored within one SSRC (timestamps jumped, see the module docstring)
    comfort_noise: int = 0  # RFC 3389 packets (taken, not decoded)
    rtcp: int = 0  # RTCP datagrams, muxed or on the port above, dropped
    ignored: int = 0  # valid packets not taken: other source, stale SSRC, while on hold, sequence jump
    refused: int = 0  # datagrams from sources that admit_source refused
    unauthentic: int = 0  # SRTP packets that failed authentication or the replay check


class _Kind(enum.Enum):
    AUDIO = "audio"
    DTMF = "telephone-event"
    COMFORT_NOISE = "CN"


@dataclass
class _Timeline:
    """Where one run of a stream's timestamps sits on the call's clock. Timestamps here are extended."""

    frame_units: int  # RTP clock units of the last decoded packet (how much one lost packet stands for)
    anchor: float | None = None  # call time of first_ts
    first_ts: int = 0
    last_ts: int = 0  # of the last audio packet, the reference for unwrapping
    last_arrival: float = 0.0  # and its arrival
    end_ts: int = 0  # right after the last audio handed on
    pending_lost: int = 0  # packets lost (or undecodable) since, to conceal before the next audio

    def extend(self, timestamp: int) -> int:
        return timestamp if self.anchor is None else self.last_ts + ts_delta(timestamp, self.last_ts & 0xFFFFFFFF)


def _host_key(host: str) -> str:
    """An IP address in one spelling (IPv4-mapped IPv6 as IPv4), to compare sources; other names as given."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        logger.debug("RTP socket error: %s", exc)


class RtpReceiver:
    """One receive-only RTP stream on one local UDP port (RTCP, if sent to port+1 or muxed, is ignored).

    ``on_audio(pcm, start_time)`` gets mono int16 PCM at ``format.pcm_rate`` and where it starts, in
    seconds of call time; ``on_dtmf(digit)`` gets "0"-"9", "*", "#", "A"-"D", once per key press. Both
    are called from the event loop, in order. Call ``flush()`` before ``close()`` to have the last
    ``jitter_ms`` of audio handed on.
    """

    def __init__(
        self,
        fmt: RtpFormat,
        *,
        dtmf_payload_type: int | None,
        epoch: float,
        jitter_ms: int,
        on_audio: Callable[[Int16Array, float], None],
        on_dtmf: Callable[[str], None],
        remote: tuple[str, int] | None = None,
        admit_source: Callable[[tuple[str, int]], bool] | None = None,
        srtp: SrtpDecrypter | None = None,
    ) -> None:
        if jitter_ms < 0:
            raise ValueError(f"jitter_ms must be 0 or more, not {jitter_ms}")
        self.stats = ReceiverStats()
        self.local_port = 0
        self.last_packet_at: float | None = None
        self._epoch = epoch
        self._on_audio = on_audio
        self._on_dtmf = on_dtmf
        self._remote_host = _host_key(remote[0]) if remote is not None else None
        self._admit_source = admit_source
        self._srtp = srtp
        self._fmt = fmt
        self._decoder: AudioDecoder = decoder_for(fmt)
        self._dtmf_pt = dtmf_payload_type
        self._buffer = JitterBuffer(jitter_ms / 1000)
        self._events = TelephoneEventReceiver(self._report_digit)
        self._timeline = self._new_timeline()
        self._timeline_end = 0.0  # call time at which the audio handed on so far ends
        self._source: tuple[str, int] | None = None
        self._ssrc: int | None = None
        self._retired: tuple[int, float] | None = None  # previous SSRC and when it was replaced
        self._paused = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._transports: list[asyncio.DatagramTransport] = []

    @property
    def format(self) -> RtpFormat:
        return self._fmt

    @property
    def ssrc(self) -> int | None:
        """SSRC of the audio stream being received, once one has arrived."""
        return self._ssrc

    @property
    def source(self) -> tuple[str, int] | None:
        """The (host, port) packets are taken from, once latched."""
        return self._source

    async def bind(self, host: str, port: int) -> None:
        """Listen on ``host``:``port``; for an even, non-zero port, also swallow RTCP on ``port + 1``.

        Raises ``OSError`` if either port is taken. Port 0 lets the system choose (and binds no RTCP port).
        """
        if self._transports:
            raise RuntimeError(f"RTP receiver is already bound to port {self.local_port}")
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
        # Plain sockets first: if the RTCP port is taken, the RTP one is closed at once (a transport would
        # only close on a later loop iteration, and the port would still look taken to the next attempt).
        sockets = [socket.socket(family, socket.SOCK_DGRAM)]
        try:
            sockets[0].bind(address)
            self.local_port = int(sockets[0].getsockname()[1])
            if port and port % 2 == 0:
                sockets.append(socket.socket(family, socket.SOCK_DGRAM))
                sockets[1].bind((address[0], port + 1, *address[2:]))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        try:
            for sock, handler in zip(sockets, [self.handle_datagram, self._rtcp_datagram], strict=False):
                transport, _ = await loop.create_datagram_endpoint(functools.partial(_Datagrams, handler), sock=sock)
                self._transports.append(transport)
        except BaseException:
            for opened in self._transports:
                opened.close()
            self._transports.clear()
            for sock in sockets:
                sock.close()
            raise

    def set_format(self, fmt: RtpFormat, dtmf_payload_type: int | None) -> None:
        """Switch payload format (a re-INVITE): what is buffered is decoded with the old one.

        A new codec or clock starts the timeline afresh (re-anchored at the next packet's arrival); a
        payload type renumbered for the same codec changes nothing else. ``UnsupportedCodec`` leaves
        the receiver as it was.
        """
        self._dtmf_pt = dtmf_payload_type
        if (fmt.name, fmt.clock_rate, fmt.channels) == (self._fmt.name, self._fmt.clock_rate, self._fmt.channels):
            self._fmt = fmt  # at most renumbered: the stream goes on as it was
            return
        decoder = decoder_for(fmt)
        self._deliver(self._buffer.drain())
        self._fmt = fmt
        self._decoder = decoder
        self._timeline = self._new_timeline()

    def set_srtp(self, srtp: SrtpDecrypter | None) -> None:
        """Decrypt with another key from now on (a re-INVITE that rekeyed the stream), or take plain RTP."""
        self._srtp = srtp

    def set_paused(self, paused: bool) -> None:
        """Hold (True): hand on what is buffered, then ignore packets. Resume (False): start afresh."""
        if paused == self._paused:
            return
        if paused:
            self.flush()
        else:
            self._buffer.reset()
            self._timeline = self._new_timeline()
        self._paused = paused

    def flush(self) -> None:
        """Hand on everything buffered now, concealing what is still missing between (the call is ending)."""
        self._cancel_timer()
        self._deliver(self._buffer.drain())
        self._events.flush()

    def close(self) -> None:
        """Stop listening; buffered audio is dropped (``flush()`` first to keep it). Idempotent."""
        self._closed = True
        self._cancel_timer()
        for transport in self._transports:
            transport.close()

    def handle_datagram(self, data: bytes, addr: tuple[str, int], arrival: float | None = None) -> None:
        """Take one datagram that arrived on the RTP port (``arrival``: its ``time.monotonic()``, default now)."""
        if self._closed:
            return
        try:
            self._handle(data, addr, time.monotonic() if arrival is None else arrival)
        except Exception:
            logger.exception("RTP receiver on port %s failed on a %d-byte datagram", self.local_port, len(data))

    # Receiving

    def _handle(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self._admit_source is not None and not self._admit_source(addr):
            self.stats.refused += 1
            return
        if is_rtcp(data):
            self.stats.rtcp += 1
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except SrtpError:
                self.stats.unauthentic += 1
                return
        try:
            packet = parse_rtp(data)
        except MalformedPacket:
            self.stats.malformed += 1
            return
        kind = self._kind(packet.payload_type)
        if kind is None or not packet.payload or (kind is _Kind.DTMF and len(packet.payload) < 4):
            self.stats.malformed += 1
            return
        if self._paused:
            if self._remote_host is None or _host_key(addr[0]) == self._remote_host:
                self.last_packet_at = now
            self.stats.ignored += 1
            return
        if not self._admit(addr, packet.ssrc, kind, now):
            self.stats.ignored += 1
            return
        self.last_packet_at = now
        self.stats.packets += 1
        self.stats.bytes += len(data)
        if kind is _Kind.DTMF:
            self._events.handle(packet.ssrc, packet.timestamp, packet.payload)
            if packet.ssrc != self._ssrc:
                return
        elif kind is _Kind.COMFORT_NOISE:
            self.stats.comfort_noise += 1
        result = self._buffer.push(
            packet.sequence_number, packet.timestamp, packet.payload, now, media=kind is _Kind.AUDIO
        )
        if result is Arrival.REORDERED:
            self.stats.reordered += 1
        elif result is Arrival.DUPLICATE:
            self.stats.duplicates += 1
        elif result is Arrival.LATE:
            self.stats.late += 1
        elif result is Arrival.JUMP:
            self.stats.ignored += 1
        self._release(now)

    def _kind(self, payload_type: int) -> _Kind | None:
        if payload_type == self._fmt.payload_type:
            return _Kind.AUDIO
        if payload_type == self._dtmf_pt:
            return _Kind.DTMF
        if payload_type == COMFORT_NOISE_PT:
            return _Kind.COMFORT_NOISE
        return None

    def _admit(self, source: tuple[str, int], ssrc: int, kind: _Kind, now: float) -> bool:
        """Whether a packet's source may feed this stream; latches, and switches SSRC, as it goes."""
        if self._remote_host is not None and _host_key(source[0]) != self._remote_host:
            return False
        if kind is _Kind.DTMF or ssrc == self._ssrc:
            if self._source is None:
                self._source = source
            return source == self._source
        if self._retired is not None and ssrc == self._retired[0] and now - self._retired[1] < STALE_SSRC:
            return False
        if self._ssrc is not None:
            logger.info("RTP port %s: SSRC %08x replaced by %08x from %s", self.local_port, self._ssrc, ssrc, source)
            self._cancel_timer()
            self._deliver(self._buffer.drain())
            self._retired = (self._ssrc, now)
            self.stats.ssrc_changes += 1
            self._decoder = decoder_for(self._fmt)
        self._buffer.reset()
        self._timeline = self._new_timeline()
        self._ssrc = ssrc
        self._source = source
        return True

    def _release(self, now: float) -> None:
        self._deliver(self._buffer.pop(now))
        self._schedule()

    def _schedule(self) -> None:
        self._cancel_timer()
        deadline = self._buffer.deadline()
        if deadline is None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven without a loop (tests): flush() releases the rest
            return
        self._timer = loop.call_later(max(0.0, deadline - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self._release(time.monotonic())
        except Exception:
            logger.exception("RTP receiver on port %s failed to release buffered audio", self.local_port)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _rtcp_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._admit_source is not None and not self._admit_source(addr):
            self.stats.refused += 1
            return
        self.stats.rtcp += 1

    # Decoding onto the call's timeline

    def _deliver(self, releases: list[Release]) -> None:
        for release in releases:
            self._take(release)

    def _take(self, release: Release) -> None:
        packet, timeline = release.packet, self._timeline
        if release.lost_before:
            self.stats.lost += release.lost_before
            timeline.pending_lost += release.lost_before
        if not packet.media:
            return
        clock = self._fmt.clock_rate
        ts = timeline.extend(packet.timestamp)
        if timeline.anchor is None:
            self._anchor(ts, packet.arrival)
        else:
            ahead = (ts - timeline.last_ts) / clock - (packet.arrival - timeline.last_arrival)
            if ahead > MAX_AHEAD or ts <= timeline.end_ts - timeline.frame_units:
                logger.info("RTP port %s: timestamps of SSRC %08x jumped; re-anchored", self.local_port, self._ssrc)
                self.stats.timestamp_jumps += 1
                self._anchor(ts, packet.arrival)
            elif timeline.pending_lost:
                self._conceal(min(ts - timeline.end_ts, timeline.pending_lost * timeline.frame_units))
        timeline.pending_lost = 0
        timeline.last_ts, timeline.last_arrival = ts, packet.arrival
        try:
            pcm = self._decoder.decode(packet.payload)
        except DecodeError as exc:
            logger.debug("RTP port %s: undecodable %s payload: %s", self.local_port, self._fmt.name, exc)
            self.stats.decode_errors += 1
            timeline.pending_lost = 1
            return
        if not len(pcm):
            return
        rate = self._fmt.pcm_rate
        units = len(pcm) * clock // rate
        start = max(ts, timeline.end_ts)
        pcm = pcm[(start - ts) * rate // clock :]
        self._emit(pcm, start)
        timeline.end_ts = max(timeline.end_ts, ts + units)
        timeline.frame_units = units or timeline.frame_units

    def _anchor(self, ts: int, arrival: float) -> None:
        timeline = self._timeline
        timeline.anchor = max(arrival - self._epoch, self._timeline_end)
        timeline.first_ts = timeline.last_ts = timeline.end_ts = ts
        timeline.last_arrival = arrival
        timeline.pending_lost = 0

    def _conceal(self, units: int) -> None:
        clock, rate = self._fmt.clock_rate, self._fmt.pcm_rate
        units = min(units, int(MAX_CONCEAL * clock))
        samples = units * rate // clock
        if samples <= 0:
            return
        try:
            pcm = self._decoder.conceal(samples)
        except Exception:
            logger.exception("RTP port %s: %s concealment failed; silence instead", self.local_port, self._fmt.name)
            pcm = np.zeros(samples, dtype=np.int16)
        self._emit(pcm[:samples], self._timeline.end_ts)
        self._timeline.end_ts += units
        self.stats.concealed_ms += 1000.0 * samples / rate

    def _emit(self, pcm: Int16Array, start_ts: int) -> None:
        if not len(pcm):
            return
        timeline = self._timeline
        assert timeline.anchor is not None
        start = timeline.anchor + (start_ts - timeline.first_ts) / self._fmt.clock_rate
        self._timeline_end = start + len(pcm) / self._fmt.pcm_rate
        try:
            self._on_audio(pcm, start)
        except Exception:
            logger.exception("on_audio failed on RTP port %s", self.local_port)

    def _report_digit(self, digit: str) -> None:
        self.stats.dtmf += 1
        try:
            self._on_dtmf(digit)
        except Exception:
            logger.exception("on_dtmf failed on RTP port %s", self.local_port)

    def _new_timeline(self) -> _Timeline:
        return _Timeline(frame_units=max(1, round(self._fmt.clock_rate * _DEFAULT_PTIME)))
