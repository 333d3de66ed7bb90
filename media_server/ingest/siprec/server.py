"""The SIPREC recording server (SRS, RFC 7866): SBCs and PBXs fork calls to it; each recording session is a call.

SIP signalling is aiosipua's (transactions, dialogs, 2xx retransmission, session timers, OPTIONS, CANCEL);
every message is screened here first (allow-list: 403, malformed: 400). An INVITE carries an SDP offer with
one ``m=audio`` per participant stream and RFC 7865 metadata; the answer is ``recvonly`` with one RTP port per
stream, and each stream becomes a channel of the call (``session.py``; ``participants.py`` maps participants to
roles). A stream's RTP is taken only from the offered addresses, the SRC's SIP address and ``sip.allow``
(``sources.py``); ``RTP/SAVP`` streams are SRTP keyed with SDES (``a=crypto``: ``offer.py``, ``rtp/srtp.py``).
Re-INVITEs apply metadata updates, hold (``a=inactive``), resume, codec changes, rekeying and added streams. A session
ends on BYE, on a session-timer expiry, or when no RTP arrived on any active stream for ``rtp_timeout_s`` (then the
SRS sends the BYE). A call the server has no room for (``sip.max_calls`` sessions, or ``calls.max_live`` calls) is
answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine
from functools import partial
from typing import Any

from aiosipua import IncomingCall, SipMessage, SipRequest, SipResponse, SipUAS
from aiosipua.dialog import DialogState

from media_server import __version__
from media_server.calls.lifecycle import CallEnd
from media_server.calls.metadata import Consent
from media_server.ingest.allowlist import AllowList
from media_server.ingest.farewell import SERVER_ENDS, EndWatch, ServerEnded, farewell
from media_server.ingest.siprec.body import ACCEPTED
from media_server.ingest.siprec.offer import Answerer
from media_server.ingest.siprec.participants import RoleRule
from media_server.ingest.siprec.session import RecordingSession, SessionMedia, SetupFailed, read_body
from media_server.ingest.siprec.transport import ScreenedTransport, TcpTransport, UdpTransport, tls_context
from media_server.ingest.siprec.validate import MAX_MESSAGE, check_request, error_response, reject
from media_server.rtp.ports import PortAllocator
from media_server.services import Services

log = logging.getLogger(__name__)

USER_AGENT = f"media-server/{__version__}"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
SUPPORTED = {"siprec", "timer"}


class RecordingServer:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.sip
        self.allow = AllowList(self.settings.allow, "sip.allow")
        self.rule = RoleRule(tuple(self.settings.rep_domains), self.settings.rep_label, Consent(self.settings.consent))
        self.ports = PortAllocator(
            self.settings.rtp_host or self.settings.host, self.settings.rtp_port_min, self.settings.rtp_port_max
        )
        self.sessions: dict[str, RecordingSession] = {}
        self.agents: list[SipUAS] = []
        self.transports: dict[str, ScreenedTransport] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._binding = asyncio.Lock()  # one session's RTP ports are taken together

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
                context = tls_context(s.tls_cert, s.tls_key, s.tls_client_ca)
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
        uas.on_ack_timeout = partial(self._on_gone, CallEnd.NO_ACK)
        uas.on_session_expired = partial(self._on_gone, CallEnd.SESSION_EXPIRED)
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
            *(self._finish(s, CallEnd.SERVER_SHUTDOWN, bye=True) for s in sessions), return_exceptions=True
        )
        for uas in self.agents:
            with contextlib.suppress(Exception):
                await uas.stop()
        for task in list(self._tasks):
            task.cancel()
        self.agents.clear()

    def _media(self) -> SessionMedia:
        """What a new session shares with the others (the settings as started: the SIP port may have been 0)."""
        return SessionMedia(self.settings, self.services.calls, self.ports, self.rule, self._spawn, self._binding)

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
        session = RecordingSession(
            self._media(),
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

    async def _setup(self, session: RecordingSession) -> None:
        request = session.incoming.invite
        try:
            unsupported = _unsupported_extensions(request)
            if unsupported:
                raise SetupFailed(420, "Bad Extension", {"Unsupported": ", ".join(unsupported)})
            offer, metadata = read_body(request)
            if offer is None:
                raise SetupFailed(488, "An SDP offer is required")
            await session.start(offer, metadata)
            if session.cancelled:
                raise SetupFailed(487, "Request Terminated")  # aiosipua already answered it; nothing more is sent
            session.answerer = Answerer(self._local_address(session.source))
            session.incoming.accept(session.answerer.answer(session.answer()))
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
            await self._teardown(session, CallEnd.SETUP_FAILED)
            self._refuse(session, exc)
        except Exception:
            log.exception("SIPREC session %s could not be set up", session.sip_call_id)
            await self._teardown(session, CallEnd.INTERNAL_ERROR)
            self._refuse(session, SetupFailed(500, "Server Internal Error"))

    def _refuse(self, session: RecordingSession, exc: SetupFailed) -> None:
        incoming = session.incoming
        if not session.cancelled:
            with contextlib.suppress(Exception):
                incoming._send_response(exc.status, exc.reason[:120], extra_headers=exc.headers or None)
        incoming.dialog.terminate()
        session.uas._calls.pop(session.sip_call_id, None)

    async def _watch(self, session: RecordingSession) -> None:
        """End the session when no RTP arrived on any active stream for rtp_timeout_s, or when the server ended its
        call (shutdown, storage failure): a BYE with the reason goes to the SRC at once."""
        watch = EndWatch()
        if session.call is not None:
            watch.follow(session.call)
        try:
            lapsed = await watch.next(session.rtp_lapsed())
        except ServerEnded as exc:
            log.info("SIPREC session %s: %s; sending BYE", session.sip_call_id, exc.close_reason)
            self._spawn(self._finish(session, exc.reason, bye=True), name=f"siprec-{exc.reason}")
            return
        finally:
            watch.close()
        if lapsed:
            timeout = self.settings.rtp_timeout_s
            log.warning("SIPREC session %s: no RTP for %.0f s, ending it", session.sip_call_id, timeout)
            self._spawn(self._finish(session, CallEnd.RTP_TIMEOUT, bye=True), name="siprec-timeout")

    # -- in-dialog requests --------------------------------------------------------------------------

    def _on_reinvite(self, uas: SipUAS, incoming: IncomingCall) -> None:
        session = self.sessions.get(incoming.call_id)
        if session is None or session.ended:
            incoming._send_response(481, "Call/Transaction Does Not Exist")
            return
        session.invite_key = _invite_key(incoming.invite)
        self._spawn(self._update(session, incoming), name=f"siprec-update-{session.call_id}")

    async def _update(self, session: RecordingSession, incoming: IncomingCall) -> None:
        try:
            offer, metadata = read_body(incoming.invite)
            await session.apply(offer, metadata)
            assert session.answerer is not None
            incoming.accept(session.answerer.answer(session.answer()))
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
            self._spawn(self._finish(session, CallEnd.BYE, bye=False), name=f"siprec-bye-{session.call_id}")

    def _on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        session = self.sessions.get(request.call_id or "")
        if session is not None and not session.answered:
            session.cancelled = True  # the setup in flight stops before answering

    def _on_gone(self, reason: CallEnd, incoming: IncomingCall) -> None:
        session = self.sessions.get(incoming.call_id)
        if session is not None:
            self._spawn(self._finish(session, reason, bye=False), name=f"siprec-{reason}")

    def _on_options(self, transport: ScreenedTransport, request: SipRequest, addr: tuple[str, int]) -> None:
        """Keep-alive pings of SBCs; at capacity the answer is 503, so that they send recordings elsewhere."""
        full = self._closing or len(self.sessions) >= self.settings.max_calls or self.services.calls.full
        headers = {"Allow": ALLOW, "Accept": ACCEPTED, "Supported": ", ".join(sorted(SUPPORTED))}
        if full:
            headers["Retry-After"] = str(self.settings.retry_after_s)
        response = reject(request, 503 if full else 200, "Service Unavailable" if full else "OK", headers)
        response.headers.set_single("User-Agent", USER_AGENT)
        transport.send_reply(response)

    # -- ending --------------------------------------------------------------------------------------

    async def _teardown(self, session: RecordingSession, reason: CallEnd) -> None:
        self.sessions.pop(session.sip_call_id, None)
        await session.end(reason)

    async def _finish(self, session: RecordingSession, reason: CallEnd, bye: bool) -> None:
        if session.ended:
            return
        watchdog = session.watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        if bye and session.answered:
            with contextlib.suppress(Exception):
                send_bye(session.incoming, farewell(reason).sip_reason if reason in SERVER_ENDS else None)
            session.uas._calls.pop(session.sip_call_id, None)
        log.info("SIPREC session %s ended: %s (%s)", session.sip_call_id, reason.status, reason)
        await self._teardown(session, reason)

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


def send_bye(incoming: IncomingCall, reason: str | None = None) -> None:
    """``IncomingCall.hangup`` with a ``Reason`` header (RFC 3326) that says why the SRS ends the session."""
    if incoming.dialog.state != DialogState.CONFIRMED:
        return
    host, port = incoming._signaling_addr()
    bye = incoming.dialog.create_request("BYE", via_host=host, via_port=port)
    if reason:
        bye.headers.set_single("Reason", reason)
    incoming.dialog.terminate()
    if incoming.transport is not None:
        incoming.transport.send(bye, incoming.source_addr)


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
