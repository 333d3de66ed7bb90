"""One SIPREC recording session's media: its streams (one per m-line, each a channel of the call, fed by one RTP
receiver while it is active) and the call they feed, through its :class:`LiveCall`.

The server (``server.py``) runs the SIP side: it makes a :class:`RecordingSession` for each INVITE, and asks it to
set the media up (:meth:`RecordingSession.start`), to apply a re-INVITE (:meth:`RecordingSession.apply`), to tell
when RTP has stopped (:meth:`RecordingSession.rtp_lapsed`) and to end (:meth:`RecordingSession.end`).
RTP is received by ``media_server/rtp`` (jitter buffer, decoding, DTMF, SRTP) and placed on the call's timeline:
the receivers count from the session's epoch, which the call is opened with. Only the sources ``sources.py``
admits (the offered addresses, the SRC's SIP address, ``sip.allow``) feed a stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from aiosipua import Codec, IncomingCall, SipRequest, SipUAS

from media_server.audio import Audio, ToCallRate, call_rate
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd, CallLifecycle, CallsFull, LiveCall
from media_server.calls.metadata import CallMetadata, MetadataError
from media_server.config import SipSettings
from media_server.ingest.siprec.body import ACCEPTED, BodyError, split_body
from media_server.ingest.siprec.metadata import RecordingMetadata, RecordingMetadataError, parse_recording_metadata
from media_server.ingest.siprec.offer import (
    AnsweredStream,
    Answerer,
    Offer,
    OfferedStream,
    OfferError,
    choose_codec,
    codec_name,
    parse_offer,
)
from media_server.ingest.siprec.participants import RoleRule, assign
from media_server.ingest.siprec.sources import MediaSources, resolve
from media_server.rtp.formats import RtpFormat
from media_server.rtp.ports import PortAllocator, PortsExhausted
from media_server.rtp.receiver import RtpReceiver
from media_server.rtp.srtp import SUITES, CryptoError, SdesCrypto, SrtpDecrypter

log = logging.getLogger(__name__)

_WATCH_INTERVAL_S = 0.5


class SetupFailed(Exception):
    """A request the session cannot take: ``status``, ``reason`` and ``headers`` are the SIP answer."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass
class SessionMedia:
    """What the sessions of one server share."""

    settings: SipSettings
    calls: CallLifecycle
    ports: PortAllocator
    rule: RoleRule
    spawn: Callable[[Coroutine[Any, Any, Any], str], None]  # the server's tasks, cancelled when it closes
    binding: asyncio.Lock = field(default_factory=asyncio.Lock)  # one session's ports are taken together


@dataclass
class Stream:
    """One m-line of the session: a channel of the call, fed by one RTP receiver while it is active."""

    offered: OfferedStream
    channel: int
    channel_rate: int = 8000
    port: int = 0
    codec: Codec | None = None
    dtmf: Codec | None = None
    receiver: RtpReceiver | None = None
    to_call_rate: ToCallRate | None = None
    direction: str = "recvonly"  # as answered: recvonly, or inactive while on hold
    crypto: SdesCrypto | None = None  # SRTP: the SRC's key (None: plain RTP)
    local_crypto: SdesCrypto | None = None  # and ours, for the answer
    problem: str | None = None  # why the stream was refused, when it was for a reason beyond its codecs

    @property
    def label(self) -> str:
        return self.offered.label


@dataclass
class RecordingSession:
    media: SessionMedia
    sip_call_id: str
    uas: SipUAS
    incoming: IncomingCall
    source: tuple[str, int]
    transport: str
    invite_key: tuple[str, str]
    headers: dict[str, str] = field(default_factory=dict)  # the consent headers of the INVITE
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call: LiveCall | None = None
    streams: list[Stream] = field(default_factory=list)
    answerer: Answerer | None = None
    metadata: RecordingMetadata | None = None
    epoch: float = field(default_factory=time.monotonic)  # call time 0
    media_since: float = field(default_factory=time.monotonic)  # last (re)start of media, for the RTP timeout
    answered: bool = False
    cancelled: bool = False
    ended: bool = False
    watchdog: asyncio.Task[None] | None = None
    sources: MediaSources = field(init=False)

    def __post_init__(self) -> None:
        self.sources = MediaSources(self.call_id, self.source[0], list(self.media.settings.allow))

    # -- setting up ----------------------------------------------------------------------------------

    async def start(self, offer: Offer, metadata: RecordingMetadata | None) -> None:
        """Receivers for the offered streams, then the call (unless the INVITE was cancelled meanwhile)."""
        self.metadata = metadata
        plan = self._plan(offer.streams)
        if not any(s.codec for s in plan):
            problem = next((s.problem for s in plan if s.problem), None)
            if problem is not None:
                warning = f'305 media-server "SRTP crypto suites taken: {", ".join(SUITES)}"'
                raise SetupFailed(488, problem, {"Warning": warning})
            names = sorted({codec_name(c) for s in offer.streams for c in s.codecs}) or ["none we know"]
            raise SetupFailed(488, f"No supported codec offered ({', '.join(names)})")
        self.streams = plan
        self.sources.offer(await resolve(s.offered.address for s in plan))
        await self._bind_streams()  # before the call exists: no empty call is stored for a 503
        if not self.cancelled:
            await self._open_call()

    async def apply(self, offer: Offer | None, metadata: RecordingMetadata | None) -> None:
        """A re-INVITE: metadata updates, hold (``a=inactive``), resume, codec changes, added or removed streams."""
        if metadata is not None:
            self.metadata = self.metadata.merged(metadata) if self.metadata else metadata
        if offer is not None:
            if len(offer.streams) < len(self.streams):
                raise SetupFailed(488, "An offer must keep every m-line of the session (RFC 3264 §8)")
            keys = {s.label: s.crypto for s in self.streams}
            self.streams = self._plan(offer.streams)
            self.sources.offer(await resolve(s.offered.address for s in self.streams))
            for stream in self.streams:
                if stream.codec is None and stream.receiver is not None:
                    self._close_stream(stream)  # port 0: the stream was removed
                elif stream.receiver is not None and stream.codec is not None:
                    before = keys.get(stream.label)
                    if stream.crypto is not None and not stream.crypto.same_key(before):
                        stream.receiver.set_srtp(SrtpDecrypter(stream.crypto))  # rekeyed (or SRTP from now on)
                    elif stream.crypto is None and before is not None:
                        stream.receiver.set_srtp(None)  # plain RTP from now on
                    fmt = rtp_format(stream.codec)
                    stream.receiver.set_format(fmt, stream.dtmf.payload_type if stream.dtmf else None)
                    if stream.to_call_rate is None or stream.to_call_rate.rate != fmt.pcm_rate:
                        stream.to_call_rate = ToCallRate(fmt.pcm_rate, stream.channel_rate)
            await self._bind_streams()
            if any(s.direction == "recvonly" for s in self.streams):
                self.media_since = time.monotonic()
        if self.call is not None:
            call_metadata, specs = self._assignment_specs()
            held = frozenset(s.channel for s in self.streams if s.direction != "recvonly")
            await self.call.update(call_metadata, specs, held)

    def answer(self) -> list[AnsweredStream]:
        return [
            AnsweredStream(s.offered, s.port if s.receiver else 0, s.codec, s.dtmf, s.direction, s.local_crypto)
            for s in self.streams
        ]

    def _plan(self, offered: list[OfferedStream]) -> list[Stream]:
        """The answer to each m-line: its codec (or none: rejected), keeping what an earlier offer set up."""
        known_by_label = {s.label: s for s in self.streams}
        plan = []
        for stream in offered:
            previous = known_by_label.get(stream.label)
            codec = choose_codec(stream, list(self.media.settings.codecs)) if stream.port else None
            entry = previous or Stream(stream, channel=stream.index)
            entry.offered = stream
            entry.problem = None
            try:
                crypto = stream.stream_crypto() if codec is not None else None
            except CryptoError as exc:
                codec, crypto, entry.problem = None, None, str(exc)
            ours = entry.local_crypto
            if crypto is None or ours is None or (ours.tag, ours.suite) != (crypto.tag, crypto.suite):
                entry.local_crypto = crypto.answer() if crypto else None  # else ours stays (we send nothing with it)
            entry.crypto = crypto
            if codec is not None and entry.codec is None:
                entry.channel_rate = call_rate(rtp_format(codec).pcm_rate)
            entry.codec = codec
            entry.dtmf = stream.dtmf if codec is not None else None
            entry.direction = "recvonly" if stream.active else "inactive"
            plan.append(entry)
        return plan

    def _assignment_specs(self) -> tuple[CallMetadata, list[ChannelSpec]]:
        labels = [s.label for s in self.streams if s.codec is not None or s.receiver is not None]
        extra = {"sipCallId": self.sip_call_id[:256], "src": self.source[0]}
        if self.metadata and self.metadata.session_id:
            extra["recordingSessionId"] = self.metadata.session_id[:256]
        try:
            assignment = assign(self.metadata, labels, self.headers, self.media.rule, extra)
        except MetadataError as exc:
            raise SetupFailed(400, f"Bad consent header: {exc}") from None
        specs = [
            ChannelSpec(s.channel, assignment.speakers[s.label], s.channel_rate)
            for s in self.streams
            if s.label in assignment.speakers
        ]
        return assignment.metadata, specs

    async def _open_call(self) -> None:
        metadata, specs = self._assignment_specs()
        settings = self.media.settings
        try:
            self.call = await self.media.calls.open(
                self.call_id, settings.team, "siprec", metadata, specs, epoch=self.epoch
            )
        except CallConflict as exc:
            raise SetupFailed(500, str(exc)) from None
        except CallsFull as exc:
            log.warning("SIPREC: at capacity (%s): 503 to %s", exc.message, self.source[0])
            raise SetupFailed(503, "Service Unavailable", {"Retry-After": str(exc.retry_after_s)}) from None

    async def _bind_streams(self) -> None:
        # One session's ports are taken together, so its streams get neighbouring ports (X, X+2, ...):
        # not needed by SIP, but what simple SRCs and test tools that play a capture expect.
        async with self.media.binding:
            for stream in self.streams:
                if stream.codec is not None and stream.receiver is None:
                    await self._bind(stream)
        for stream in self.streams:
            if stream.receiver is not None:
                stream.receiver.set_paused(stream.direction != "recvonly")

    async def _bind(self, stream: Stream) -> None:
        assert stream.codec is not None
        fmt = rtp_format(stream.codec)
        settings = self.media.settings
        receiver = RtpReceiver(
            fmt,
            dtmf_payload_type=stream.dtmf.payload_type if stream.dtmf else None,
            epoch=self.epoch,
            jitter_ms=settings.jitter_ms,
            on_audio=partial(self._on_audio, stream),
            on_dtmf=partial(self._on_dtmf, stream),
            admit_source=partial(self.sources.admits, stream.label),
            srtp=SrtpDecrypter(stream.crypto) if stream.crypto else None,
        )
        try:
            stream.port = await self.media.ports.open(receiver)
        except PortsExhausted:
            raise SetupFailed(503, "No RTP ports free", {"Retry-After": str(settings.retry_after_s)}) from None
        stream.receiver = receiver
        stream.to_call_rate = ToCallRate(fmt.pcm_rate, stream.channel_rate)

    # -- media ---------------------------------------------------------------------------------------

    def _on_audio(self, stream: Stream, pcm: npt.NDArray[np.int16], start_time: float) -> None:
        if self.call is None or self.ended or stream.receiver is None:
            return
        if stream.to_call_rate is not None:
            pcm = stream.to_call_rate(pcm)
        self.call.push(Audio(stream.channel, pcm, stream.channel_rate, start_time))

    def _on_dtmf(self, stream: Stream, digit: str) -> None:
        if self.call is not None and not self.ended:
            self.media.spawn(self.call.dtmf(stream.channel, digit), f"siprec-dtmf-{self.call_id}")

    async def rtp_lapsed(self) -> bool:
        """Wait until no RTP arrived on any active stream for ``rtp_timeout_s`` (True), or the session ends."""
        timeout = self.media.settings.rtp_timeout_s
        while not self.ended:
            await asyncio.sleep(min(_WATCH_INTERVAL_S, timeout / 4))
            active = [s.receiver for s in self.streams if s.receiver is not None and s.direction == "recvonly"]
            if not active:
                continue  # everything on hold: the session timer, not RTP, tells whether the SRC is alive
            last = max([self.media_since] + [r.last_packet_at for r in active if r.last_packet_at is not None])
            if time.monotonic() - last > timeout:
                return True
        return False

    # -- ending --------------------------------------------------------------------------------------

    def _close_stream(self, stream: Stream) -> None:
        if stream.receiver is not None:
            stream.receiver.flush()
            stream.receiver.close()
            self.media.ports.release(stream.port)
            stream.receiver = None
            stream.port = 0

    async def end(self, reason: CallEnd) -> None:
        """Close the receivers (what they hold is handed on first) and end the call, stored before this returns."""
        self.ended = True
        for stream in self.streams:
            self._close_stream(stream)
        if self.sources.refused:
            log.warning(
                "SIPREC call %s: %d RTP datagrams from other sources dropped", self.call_id, self.sources.refused
            )
        if self.call is not None and self.call.live:  # not ended elsewhere meanwhile (erased, shut down)
            await self.call.close(reason)


def read_body(request: SipRequest) -> tuple[Offer | None, RecordingMetadata | None]:
    """The SDP offer and the recording metadata of an INVITE or re-INVITE; :class:`SetupFailed` if unreadable."""
    try:
        body = split_body(request.content_type, request.body, request.headers.get_first("content-encoding"))
    except BodyError as exc:
        raise SetupFailed(exc.status, str(exc), {"Accept": ACCEPTED} if exc.status == 415 else None) from None
    try:
        metadata = parse_recording_metadata(body.metadata) if body.metadata is not None else None
    except RecordingMetadataError as exc:
        raise SetupFailed(400, f"Bad recording metadata: {exc}") from None
    try:
        offer = parse_offer(body.sdp) if body.sdp is not None else None
    except OfferError as exc:
        raise SetupFailed(exc.status, str(exc)) from None
    return offer, metadata


def rtp_format(codec: Codec) -> RtpFormat:
    name = codec_name(codec)
    clock = 48000 if name == "opus" else 8000
    return RtpFormat(name, codec.payload_type, clock, codec.channels or 1)
