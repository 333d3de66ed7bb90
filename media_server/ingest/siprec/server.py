"""The SIPREC recording server (SRS, RFC 7866): SBCs and PBXs fork calls to it; each recording session is a call.

SIP signalling is aiosipua's (transactions, dialogs, 2xx retransmission, session timers, OPTIONS, CANCEL);
every message is screened here first (allow-list: 403, malformed: 400). An INVITE carries an SDP offer with
one ``m=audio`` per participant stream and RFC 7865 metadata; the answer is ``recvonly`` with one RTP port per
stream, and each stream becomes a channel of the call (``media_server/siprec`` maps participants to roles).
RTP is received by ``media_server/rtp`` (jitter buffer, decoding, DTMF), placed on the call's timeline
and pushed into the call like any other ingest's audio. Re-INVITEs apply metadata updates, hold
(``a=inactive``), resume, codec changes and added streams. A session ends on BYE, on a session-timer expiry,
or when no RTP arrived on any active stream for ``rtp_timeout_s`` (then the SRS sends the BYE).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from aiosipua import Codec, IncomingCall, SipMessage, SipRequest, SipResponse, SipUAS

from media_server import __version__
from media_server.audio import Audio
from media_server.calls.call import Call, ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd
from media_server.calls.metadata import CallMetadata, Consent, MetadataError
from media_server.ingest.allowlist import AllowList
from media_server.rtp.formats import RtpFormat
from media_server.rtp.ports import PortAllocator, PortsExhausted
from media_server.rtp.receiver import RtpReceiver
from media_server.services import Services
from media_server.siprec.body import ACCEPTED, BodyError, split_body
from media_server.siprec.metadata import RecordingMetadata, RecordingMetadataError, parse_recording_metadata
from media_server.siprec.offer import (
    AnsweredStream,
    Answerer,
    Offer,
    OfferedStream,
    OfferError,
    choose_codec,
    codec_name,
    parse_offer,
)
from media_server.siprec.participants import RoleRule, assign
from media_server.siprec.transport import ScreenedTransport, TcpTransport, UdpTransport, tls_context
from media_server.siprec.validate import MAX_MESSAGE, check_request, error_response, reject
from models.audio import StreamResampler, int16_to_float32

log = logging.getLogger(__name__)

USER_AGENT = f"media-server/{__version__}"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
SUPPORTED = {"siprec", "timer"}
_WATCH_INTERVAL_S = 0.5


class SetupFailed(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass
class _Stream:
    """One m-line of the session: a channel of the call, fed by one RTP receiver while it is active."""

    offered: OfferedStream
    channel: int
    channel_rate: int = 8000
    port: int = 0
    codec: Codec | None = None
    dtmf: Codec | None = None
    receiver: RtpReceiver | None = None
    resampler: StreamResampler | None = None
    direction: str = "recvonly"  # as answered: recvonly, or inactive while on hold

    @property
    def label(self) -> str:
        return self.offered.label


@dataclass
class _Session:
    sip_call_id: str
    uas: SipUAS
    incoming: IncomingCall
    source: tuple[str, int]
    transport: str
    invite_key: tuple[str, str]
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call: Call | None = None
    streams: list[_Stream] = field(default_factory=list)
    answerer: Answerer | None = None
    metadata: RecordingMetadata | None = None
    headers: dict[str, str] = field(default_factory=dict)
    epoch: float = field(default_factory=time.monotonic)  # call time 0
    media_since: float = field(default_factory=time.monotonic)  # last (re)start of media, for the RTP timeout
    answered: bool = False
    cancelled: bool = False
    ended: bool = False
    watchdog: asyncio.Task[None] | None = None


class RecordingServer:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.sip
        self.allow = AllowList(self.settings.allow)
        self.rule = RoleRule(tuple(self.settings.rep_domains), self.settings.rep_label, Consent(self.settings.consent))
        self.ports = PortAllocator(
            self.settings.rtp_host or self.settings.host, self.settings.rtp_port_min, self.settings.rtp_port_max
        )
        self.sessions: dict[str, _Session] = {}
        self.agents: list[SipUAS] = []
        self.transports: dict[str, ScreenedTransport] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._binding = asyncio.Lock()

    # -- life cycle ----------------------------------------------------------------------------------

    @classmethod
    async def start(cls, services: Services) -> RecordingServer:
        server = cls(services)
        try:
            for name in server.settings.transports:
                s = server.settings  # the port may have been picked by the first transport
                if name == "udp":
                    await server._listen(UdpTransport(local_addr=(s.host, s.port), name="UDP"))
                else:
                    await server._listen(TcpTransport(local_addr=(s.host, s.port), name="TCP"))
            s = server.settings
            if s.tls_cert is not None and s.tls_key is not None:
                context = tls_context(s.tls_cert, s.tls_key)
                await server._listen(TcpTransport(local_addr=(s.host, s.tls_port), name="TLS", ssl_context=context))
        except BaseException:
            await server.close()
            raise
        s = server.settings
        log.info(
            "SIPREC recording server listening on %s (team %s, RTP ports %d-%d)",
            ", ".join(f"{t.name} {t.local_addr[0]}:{t.local_addr[1]}" for t in server.transports.values()),
            s.team,
            s.rtp_port_min,
            s.rtp_port_max,
        )
        return server

    async def _listen(self, transport: ScreenedTransport) -> None:
        uas = SipUAS(transport, user_agent=USER_AGENT, session_expires=self.settings.session_expires_s)
        uas.on_invite = partial(self._on_invite, uas)
        uas.on_reinvite = partial(self._on_reinvite, uas)
        uas.on_bye = self._on_bye
        uas.on_cancel = self._on_cancel
        uas.on_options = partial(self._on_options, transport)
        uas.on_ack_timeout = partial(self._on_gone, "no_ack")
        uas.on_session_expired = partial(self._on_gone, "session_expired")
        transport.on_raw = self.receive
        await uas.start()
        bound = transport.bound
        transport.local_addr = (transport.local_addr[0], bound[1])  # port 0 asked for any free port
        if self.settings.port == 0 and transport.name != "TLS":
            # UDP and TCP share the port that the first of them got.
            self.settings = self.settings.model_copy(update={"port": bound[1]})
        self.agents.append(uas)
        self.transports[transport.name] = transport

    def status(self) -> dict[str, Any]:
        return {
            "protocol": "siprec",
            "listening": [f"{t.name} {t.local_addr[0]}:{t.local_addr[1]}" for t in self.transports.values()],
            "sessions": len(self.sessions),
            "maxCalls": self.settings.max_calls,
            "rtpPortsInUse": len(self.ports.in_use),
        }

    async def close(self) -> None:
        """Stop listening; end every recording session (a BYE to its SRC) as interrupted."""
        self._closing = True
        sessions = list(self.sessions.values())
        await asyncio.gather(
            *(self._finish(s, "interrupted", "server_shutdown", bye=True) for s in sessions), return_exceptions=True
        )
        for uas in self.agents:
            with contextlib.suppress(Exception):
                await uas.stop()
        for task in list(self._tasks):
            task.cancel()
        self.agents.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- screening -----------------------------------------------------------------------------------

    def receive(self, transport: ScreenedTransport, data: bytes, addr: tuple[str, int]) -> None:
        """Every SIP message from every transport passes here before aiosipua sees it."""
        if not data.strip():
            return  # CRLF keep-alives (RFC 5626)
        if len(data) > MAX_MESSAGE:
            self._send_raw_error(transport, data, addr, 513, "Message Too Large")
            return
        try:
            message = SipMessage.parse(data)
        except Exception as exc:
            log.warning("SIP: unparseable message from %s:%s over %s: %s", *addr, transport.name, exc)
            self._send_raw_error(transport, data, addr, 400, "Malformed Request")
            return
        if isinstance(message, SipResponse):
            transport.deliver(message, addr)
            return
        if not self.allow.allows(addr[0]):
            log.warning("SIP: %s from %s refused: source not on the allow-list", message.method, addr[0])
            self._send_raw_error(transport, data, addr, 403, "Forbidden")
            return
        problem = check_request(data, message)
        if problem is not None:
            log.warning("SIP: malformed %s from %s:%s: %s", message.method, *addr, problem)
            self._send_raw_error(transport, data, addr, 400, problem)
            return
        transport.stamp(message, addr)
        if self._absorbed(transport, message):
            return
        transport.deliver(message, addr)

    def _send_raw_error(
        self, transport: ScreenedTransport, data: bytes, addr: tuple[str, int], status: int, reason: str
    ) -> None:
        response = error_response(data, status, reason)
        if response is not None:
            transport.send_raw(response, addr)

    def _absorbed(self, transport: ScreenedTransport, request: SipRequest) -> bool:
        """Requests answered here rather than by aiosipua: INVITE retransmissions and CANCELs that come too late."""
        session = self.sessions.get(request.call_id or "")
        if session is None:
            if request.method == "INVITE" and ";tag=" in (request.headers.get_first("to") or "").replace(" ", ""):
                # a re-INVITE of a dialog that does not exist (any more): RFC 3261 §12.2.2
                transport.send_reply(reject(request, 481, "Call/Transaction Does Not Exist"))
                return True
            return False
        if request.method == "INVITE" and _invite_key(request) == session.invite_key:
            return True  # a retransmission: the 100 went out, the 2xx is retransmitted until the ACK
        if request.method == "CANCEL" and session.answered:
            transport.send_reply(reject(request, 200, "OK"))  # RFC 3261 §9.2: no effect after the final response
            return True
        return False

    # -- new sessions --------------------------------------------------------------------------------

    def _on_invite(self, uas: SipUAS, incoming: IncomingCall) -> None:
        request = incoming.invite
        transport = uas.transport
        assert isinstance(transport, ScreenedTransport)
        session = _Session(
            sip_call_id=incoming.call_id,
            uas=uas,
            incoming=incoming,
            source=incoming.source_addr,
            transport=transport.name,
            invite_key=_invite_key(request),
            headers={
                k: v
                for k in ("x-rep-consent", "x-customer-consent", "x-recording-consent")
                if (v := request.headers.get_first(k) or "")
            },
        )
        if not _wants_timer(request):
            incoming.session_interval = None  # RFC 4028 only with SRCs that support it
        incoming.advertised_addr = (self._local_address(incoming.source_addr), transport.local_addr[1])
        if self._closing:
            self._refuse(session, SetupFailed(503, "Service Unavailable", {"Retry-After": "5"}))
            return
        if len(self.sessions) >= self.settings.max_calls:
            log.warning("SIPREC: at capacity (%d sessions): 503 to %s", len(self.sessions), incoming.source_addr[0])
            self._refuse(
                session,
                SetupFailed(503, "Service Unavailable", {"Retry-After": str(self.settings.retry_after_s)}),
            )
            return
        self.sessions[session.sip_call_id] = session
        self._spawn(self._setup(session), name=f"siprec-setup-{session.call_id}")

    async def _setup(self, session: _Session) -> None:
        request = session.incoming.invite
        try:
            unsupported = _unsupported_extensions(request)
            if unsupported:
                raise SetupFailed(420, "Bad Extension", {"Unsupported": ", ".join(unsupported)})
            offer, metadata = self._read_body(request)
            if offer is None:
                raise SetupFailed(488, "An SDP offer is required")
            session.metadata = metadata
            plan = self._plan(offer.streams)
            if not any(s.codec for s in plan):
                names = sorted({codec_name(c) for s in offer.streams for c in s.codecs}) or ["none we know"]
                raise SetupFailed(488, f"No supported codec offered ({', '.join(names)})")
            session.streams = plan
            await self._bind_streams(session)  # before the call exists: no empty call is stored for a 503
            if not session.cancelled:
                await self._open_call(session)
            if session.cancelled:
                raise SetupFailed(487, "Request Terminated")  # aiosipua already answered it; nothing more is sent
            session.answerer = Answerer(self._local_address(session.source))
            session.incoming.accept(session.answerer.answer(self._answer(session)))
            session.answered = True
            session.media_since = time.monotonic()
            session.watchdog = asyncio.create_task(self._watch(session), name=f"siprec-watch-{session.call_id}")
            log.info(
                "SIPREC session %s from %s:%s over %s: call %s, streams %s",
                session.sip_call_id,
                *session.source,
                session.transport,
                session.call_id,
                ", ".join(f"{s.label}={s.codec.encoding_name if s.codec else '-'}:{s.port}" for s in session.streams),
            )
        except SetupFailed as exc:
            log.warning("SIPREC INVITE from %s refused: %d %s", session.source[0], exc.status, exc.reason)
            await self._teardown(session, "interrupted", "setup_failed")
            self._refuse(session, exc)
        except Exception:
            log.exception("SIPREC session %s could not be set up", session.sip_call_id)
            await self._teardown(session, "interrupted", "internal_error")
            self._refuse(session, SetupFailed(500, "Server Internal Error"))

    def _read_body(self, request: SipRequest) -> tuple[Offer | None, RecordingMetadata | None]:
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

    def _plan(self, offered: list[OfferedStream], known: list[_Stream] | None = None) -> list[_Stream]:
        """The answer to each m-line: its codec (or none: rejected), keeping what an earlier offer set up."""
        known_by_label = {s.label: s for s in known or []}
        plan = []
        for stream in offered:
            previous = known_by_label.get(stream.label)
            codec = choose_codec(stream, list(self.settings.codecs)) if stream.port else None
            entry = previous or _Stream(stream, channel=stream.index)
            entry.offered = stream
            if codec is not None and entry.codec is None:
                entry.channel_rate = 8000 if _format(codec).pcm_rate == 8000 else 16000
            entry.codec = codec
            entry.dtmf = stream.dtmf if codec is not None else None
            entry.direction = "recvonly" if stream.active else "inactive"
            plan.append(entry)
        return plan

    def _assignment_specs(self, session: _Session) -> tuple[CallMetadata, list[ChannelSpec]]:
        labels = [s.label for s in session.streams if s.codec is not None or s.receiver is not None]
        extra = {"sipCallId": session.sip_call_id[:256], "src": session.source[0]}
        if session.metadata and session.metadata.session_id:
            extra["recordingSessionId"] = session.metadata.session_id[:256]
        try:
            assignment = assign(session.metadata, labels, session.headers, self.rule, extra)
        except MetadataError as exc:
            raise SetupFailed(400, f"Bad consent header: {exc}") from None
        specs = [
            ChannelSpec(s.channel, assignment.speakers[s.label], s.channel_rate)
            for s in session.streams
            if s.label in assignment.speakers
        ]
        return assignment.metadata, specs

    async def _open_call(self, session: _Session) -> None:
        metadata, specs = self._assignment_specs(session)
        try:
            live = await self.services.calls.open(
                session.call_id, self.settings.team, "siprec", metadata, specs, epoch=session.epoch
            )
            session.call = live.call  # RTP is placed on the call's timeline from the receivers' epoch
        except CallConflict as exc:
            raise SetupFailed(500, str(exc)) from None

    async def _bind_streams(self, session: _Session) -> None:
        # One session's ports are taken together, so its streams get neighbouring ports (X, X+2, ...):
        # not needed by SIP, but what simple SRCs and test tools that play a capture expect.
        async with self._binding:
            for stream in session.streams:
                if stream.codec is not None and stream.receiver is None:
                    await self._bind(session, stream)
        for stream in session.streams:
            if stream.receiver is not None:
                stream.receiver.set_paused(stream.direction != "recvonly")

    async def _bind(self, session: _Session, stream: _Stream) -> None:
        assert stream.codec is not None
        fmt = _format(stream.codec)
        receiver = RtpReceiver(
            fmt,
            dtmf_payload_type=stream.dtmf.payload_type if stream.dtmf else None,
            epoch=session.call.epoch if session.call is not None else session.epoch,
            jitter_ms=self.settings.jitter_ms,
            on_audio=partial(self._on_audio, session, stream),
            on_dtmf=partial(self._on_dtmf, session, stream),
        )
        try:
            stream.port = await self.ports.open(receiver)
        except PortsExhausted:
            raise SetupFailed(503, "No RTP ports free", {"Retry-After": str(self.settings.retry_after_s)}) from None
        stream.receiver = receiver
        stream.resampler = StreamResampler(fmt.pcm_rate, stream.channel_rate)

    def _answer(self, session: _Session) -> list[AnsweredStream]:
        return [
            AnsweredStream(s.offered, s.port if s.receiver else 0, s.codec, s.dtmf, s.direction)
            for s in session.streams
        ]

    def _refuse(self, session: _Session, exc: SetupFailed) -> None:
        incoming = session.incoming
        if not session.cancelled:
            with contextlib.suppress(Exception):
                incoming._send_response(exc.status, exc.reason[:120], extra_headers=exc.headers or None)
        incoming.dialog.terminate()
        session.uas._calls.pop(session.sip_call_id, None)

    # -- media ---------------------------------------------------------------------------------------

    def _on_audio(self, session: _Session, stream: _Stream, pcm: npt.NDArray[np.int16], start_time: float) -> None:
        call = session.call
        if call is None or session.ended or stream.receiver is None:
            return
        resampler = stream.resampler
        if resampler is not None and resampler.from_rate != resampler.to_rate:
            audio = resampler.process(int16_to_float32(pcm))
            pcm = np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)
        call.push(Audio(stream.channel, pcm, stream.channel_rate, start_time))

    def _on_dtmf(self, session: _Session, stream: _Stream, digit: str) -> None:
        if session.call is not None and not session.ended:
            self._spawn(session.call.dtmf(stream.channel, digit), name=f"siprec-dtmf-{session.call_id}")

    async def _watch(self, session: _Session) -> None:
        """End the session when no RTP arrived on any active stream for rtp_timeout_s."""
        timeout = self.settings.rtp_timeout_s
        while not session.ended:
            await asyncio.sleep(min(_WATCH_INTERVAL_S, timeout / 4))
            active = [s.receiver for s in session.streams if s.receiver is not None and s.direction == "recvonly"]
            if not active:
                continue  # everything on hold: the session timer, not RTP, tells whether the SRC is alive
            last = max([session.media_since] + [r.last_packet_at for r in active if r.last_packet_at is not None])
            if time.monotonic() - last > timeout:
                log.warning("SIPREC session %s: no RTP for %.0f s, ending it", session.sip_call_id, timeout)
                self._spawn(self._finish(session, "interrupted", "rtp_timeout", bye=True), name="siprec-timeout")
                return

    # -- in-dialog requests --------------------------------------------------------------------------

    def _on_reinvite(self, uas: SipUAS, incoming: IncomingCall) -> None:
        session = self.sessions.get(incoming.call_id)
        if session is None or session.ended:
            incoming._send_response(481, "Call/Transaction Does Not Exist")
            return
        session.invite_key = _invite_key(incoming.invite)
        self._spawn(self._update(session, incoming), name=f"siprec-update-{session.call_id}")

    async def _update(self, session: _Session, incoming: IncomingCall) -> None:
        request = incoming.invite
        try:
            offer, metadata = self._read_body(request)
            if metadata is not None:
                session.metadata = session.metadata.merged(metadata) if session.metadata else metadata
            if offer is not None:
                if len(offer.streams) < len(session.streams):
                    raise SetupFailed(488, "An offer must keep every m-line of the session (RFC 3264 §8)")
                session.streams = self._plan(offer.streams, session.streams)
                for stream in session.streams:
                    if stream.codec is None and stream.receiver is not None:
                        self._close_stream(stream)  # port 0: the stream was removed
                    elif stream.receiver is not None and stream.codec is not None:
                        stream.receiver.set_format(
                            _format(stream.codec), stream.dtmf.payload_type if stream.dtmf else None
                        )
                        resampler = stream.resampler
                        if resampler is None or resampler.from_rate != _format(stream.codec).pcm_rate:
                            stream.resampler = StreamResampler(_format(stream.codec).pcm_rate, stream.channel_rate)
                await self._bind_streams(session)
                if any(s.direction == "recvonly" for s in session.streams):
                    session.media_since = time.monotonic()
            call = session.call
            if call is not None:
                call_metadata, specs = self._assignment_specs(session)
                held = frozenset(s.channel for s in session.streams if s.direction != "recvonly")
                await call.reconfigure(call_metadata, specs, held)
            assert session.answerer is not None
            incoming.accept(session.answerer.answer(self._answer(session)))
            log.info(
                "SIPREC session %s updated: %s",
                session.sip_call_id,
                ", ".join(f"{s.label}={s.direction}" for s in session.streams),
            )
        except SetupFailed as exc:
            log.warning("SIPREC re-INVITE of %s refused: %d %s", session.sip_call_id, exc.status, exc.reason)
            incoming._send_response(exc.status, exc.reason[:120], extra_headers=exc.headers or None)
        except Exception:
            log.exception("SIPREC re-INVITE of %s failed", session.sip_call_id)
            incoming._send_response(500, "Server Internal Error")

    def _on_bye(self, incoming: IncomingCall, request: SipRequest) -> None:
        session = self.sessions.get(incoming.call_id)
        if session is not None:
            self._spawn(self._finish(session, "completed", "bye", bye=False), name=f"siprec-bye-{session.call_id}")

    def _on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        session = self.sessions.get(request.call_id or "")
        if session is not None and not session.answered:
            session.cancelled = True  # the setup in flight stops before answering

    def _on_gone(self, reason: str, incoming: IncomingCall) -> None:
        session = self.sessions.get(incoming.call_id)
        if session is not None:
            self._spawn(self._finish(session, "interrupted", reason, bye=False), name=f"siprec-{reason}")

    def _on_options(self, transport: ScreenedTransport, request: SipRequest, addr: tuple[str, int]) -> None:
        """Keep-alive pings of SBCs; at capacity the answer is 503, so that they send recordings elsewhere."""
        full = self._closing or len(self.sessions) >= self.settings.max_calls
        headers = {"Allow": ALLOW, "Accept": ACCEPTED, "Supported": ", ".join(sorted(SUPPORTED))}
        if full:
            headers["Retry-After"] = str(self.settings.retry_after_s)
        response = reject(request, 503 if full else 200, "Service Unavailable" if full else "OK", headers)
        response.headers.set_single("User-Agent", USER_AGENT)
        transport.send_reply(response)

    # -- ending --------------------------------------------------------------------------------------

    def _close_stream(self, stream: _Stream) -> None:
        if stream.receiver is not None:
            stream.receiver.flush()
            stream.receiver.close()
            self.ports.release(stream.port)
            stream.receiver = None
            stream.port = 0

    async def _teardown(self, session: _Session, status: str, reason: str) -> None:
        session.ended = True
        self.sessions.pop(session.sip_call_id, None)
        for stream in session.streams:
            self._close_stream(stream)
        if session.call is not None:
            await asyncio.shield(self.services.calls.end(session.call, CallEnd(reason)))

    async def _finish(self, session: _Session, status: str, reason: str, bye: bool) -> None:
        if session.ended:
            return
        watchdog = session.watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        if bye and session.answered:
            with contextlib.suppress(Exception):
                session.incoming.hangup()
            session.uas._calls.pop(session.sip_call_id, None)
        log.info("SIPREC session %s ended: %s (%s)", session.sip_call_id, status, reason)
        await self._teardown(session, status, reason)

    # -- helpers -------------------------------------------------------------------------------------

    def _local_address(self, peer: tuple[str, int]) -> str:
        """The address the SRC should send RTP to, and the one in our Contact."""
        s = self.settings
        for candidate in (s.advertised_address, s.rtp_host, s.host):
            if candidate and candidate not in ("0.0.0.0", "::"):
                return candidate
        family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer[0], peer[1] or 5060))  # no packet is sent: this asks the routing table
            return str(probe.getsockname()[0])
        return "127.0.0.1"


def _format(codec: Codec) -> RtpFormat:
    name = codec_name(codec)
    clock = 48000 if name == "opus" else 8000
    return RtpFormat(name, codec.payload_type, clock, codec.channels or 1)


def _invite_key(request: SipRequest) -> tuple[str, str]:
    vias = request.headers.get("via")
    branch = vias[0].split("branch=")[-1].split(";")[0] if vias and "branch=" in vias[0] else ""
    return branch, request.headers.get_first("cseq") or ""


def _tokens(request: SipRequest, name: str) -> set[str]:
    return {t.strip().lower() for value in request.headers.get(name) for t in value.split(",") if t.strip()}


def _wants_timer(request: SipRequest) -> bool:
    return bool(request.headers.get_first("session-expires")) or "timer" in _tokens(request, "supported")


def _unsupported_extensions(request: SipRequest) -> list[str]:
    return sorted(_tokens(request, "require") - SUPPORTED)
