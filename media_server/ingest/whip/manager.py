"""WHIP (RFC 9725) ingest: browsers and WebRTC softphones publish a call leg's audio over WebRTC.

One WHIP session is one leg (one participant's microphone) and one channel of a call. aiortc terminates the
media (ICE, DTLS-SRTP, RTP, Opus at 48 kHz, or G.711/G.722); every decoded frame is mixed down to mono,
resampled to 16 kHz (``ToCallRate``) and pushed into the call, on the call's timeline by its RTP timestamps (lost
packets and gaps become silence). Two sessions with the same call id and different roles make one call: the first
opens it, the second adds its channel (``LiveCall.update``). The call ends when its last leg does.

A leg ends on DELETE of its session (``completed``/``whip_delete``), when ICE or DTLS fails or consent
freshness lapses (``interrupted``/``ice_failed``), when the remote track ends (``interrupted``/
``disconnected``), or when no audio arrived for ``ingest.idle_timeout_s`` (``interrupted``/``idle_timeout``).

HTTP is ``routes.py``; this module knows sessions, peers and calls. A call the server has no room for
(``whip.max_sessions`` legs, or ``calls.max_live`` calls) is refused with 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field, replace

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media_server.audio import DEFAULT_CALL_RATE, Audio, ToCallRate
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd, CallsFull, LiveCall
from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, Role
from media_server.ice import rtc_configuration
from media_server.ingest.farewell import EndWatch, ServerEnded
from media_server.problem import HttpProblem
from media_server.services import Services

log = logging.getLogger(__name__)

SAMPLE_RATE = DEFAULT_CALL_RATE  # what every WHIP channel carries into the call, whatever the codec
CHANNEL_OF_ROLE = {Role.REP: 0, Role.CUSTOMER: 1}  # the same convention as the other adapters
_RTP_TIMESTAMP_WRAP = 1 << 32
CLOSE_TIMEOUT_S = 5.0  # a leg's pump and peer connection get this long to stop when it ends


class WhipError(HttpProblem):
    """A WHIP request that cannot be served."""


@dataclass
class WhipSession:
    """One published leg: a peer connection whose one audio track feeds one channel of a call."""

    id: str
    etag: str
    team: str
    role: Role
    pc: RTCPeerConnection
    answer: str
    call: LiveCall | None = None
    track: MediaStreamTrack | None = None
    pump: asyncio.Task[None] | None = None
    ended: bool = False
    key_hold: Held | None = None  # its key, held while it lasts: revoking the key ends the leg (auth/sessions.py)

    @property
    def channel(self) -> int:
        return CHANNEL_OF_ROLE[self.role]


@dataclass
class _WhipCall:
    """The WHIP legs of one call."""

    call: LiveCall
    legs: dict[Role, WhipSession] = field(default_factory=dict)
    held: set[int] = field(default_factory=set)  # the channels of legs that ended while another leg goes on


def check_offer(sdp: str) -> None:
    """The checks aiortc does not make: it reads almost anything as an empty description."""
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0":
        raise WhipError(400, "the body is not an SDP offer (it must start with v=0)")
    media = [line.split()[0][2:] for line in lines if line.startswith("m=") and line.split()]
    audio = media.count("audio")
    if audio == 0:
        raise WhipError(400, "the offer has no audio m-line: this endpoint takes audio")
    if audio > 1:
        raise WhipError(406, "the offer has more than one audio m-line; WHIP allows one track per kind")


def merge_metadata(current: CallMetadata, joining: CallMetadata) -> CallMetadata:
    """What a joining leg says about the participants is added to what the call knows; blanks change nothing."""

    def merged(old: ParticipantInfo, new: ParticipantInfo) -> ParticipantInfo:
        return ParticipantInfo(
            old.role,
            id=new.id or old.id,
            name=new.name or old.name,
            phone=new.phone or old.phone,
            email=new.email or old.email,
            consent=old.consent if new.consent is Consent.UNKNOWN else new.consent,
        )

    return replace(
        current,
        rep=merged(current.rep, joining.rep),
        customer=merged(current.customer, joining.customer),
        extra={**current.extra, **joining.extra},
    )


class WhipManager:
    """The live WHIP sessions of this server, and the calls they feed."""

    def __init__(self, services: Services, max_sessions: int = 200, retry_after_s: int = 5) -> None:
        self.services = services
        self.max_sessions = max_sessions
        self.retry_after_s = retry_after_s
        self.sessions: dict[str, WhipSession] = {}
        self._calls: dict[str, _WhipCall] = {}
        self._lock = asyncio.Lock()  # opening and joining calls, so that two legs of one call do not race
        self._revoking: set[asyncio.Task[None]] = set()
        self._closing = False

    # -- publishing ----------------------------------------------------------------------------------

    async def publish(self, key: ApiKey, call_id: str, role: Role, metadata: CallMetadata, offer: str) -> WhipSession:
        """Answer an offer and attach its audio to the call; raises ``WhipError`` with the status to answer."""
        if self._closing or len(self.sessions) >= self.max_sessions:
            raise WhipError(503, "at capacity: try again later", {"Retry-After": str(self.retry_after_s)})
        check_offer(offer)
        session = await self._negotiate(key.team, role, offer)
        self.sessions[session.id] = session
        try:
            await self._attach(session, call_id, role, metadata)
        except BaseException:
            self.sessions.pop(session.id, None)
            session.ended = True
            await session.pc.close()
            raise
        session.key_hold = self.services.sessions.hold(key.id, lambda: self._revoke(session))
        return session

    def _revoke(self, session: WhipSession) -> None:
        task = asyncio.create_task(self.end(session, CallEnd.KEY_REVOKED), name=f"whip-{session.id}-revoked")
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def _negotiate(self, team: str, role: Role, offer: str) -> WhipSession:
        pc = RTCPeerConnection(rtc_configuration(self.services.settings.webrtc))
        session = WhipSession(secrets.token_urlsafe(18), f'"{secrets.token_hex(8)}"', team, role, pc, "")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and session.track is None:
                session.track = track

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "failed" and not session.ended:
                log.warning("WHIP session %s: ICE or DTLS failed", session.id)
                await self.end(session, CallEnd.ICE_FAILED)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            for transceiver in pc.getTransceivers():
                # The answer is recvonly (RFC 9725 §4.2); video, if offered, is declined rather than decoded.
                transceiver.direction = "recvonly" if transceiver.kind == "audio" else "inactive"
            await pc.setLocalDescription(await pc.createAnswer())
        except WhipError:
            await pc.close()
            raise
        except Exception as exc:  # aiortc says what is wrong with the offer in ValueErrors (and a few others)
            await pc.close()
            raise WhipError(400, f"the offer cannot be answered: {exc}") from None
        if session.track is None:
            await pc.close()
            raise WhipError(400, "the offer sends no audio (its audio m-line is recvonly or inactive)")
        session.answer = pc.localDescription.sdp
        return session

    async def _attach(self, session: WhipSession, call_id: str, role: Role, metadata: CallMetadata) -> None:
        spec = ChannelSpec(session.channel, role.value, SAMPLE_RATE)
        async with self._lock:
            if session.ended:  # ICE or DTLS failed before the call was joined
                raise WhipError(400, "the peer connection failed while it was being set up")
            existing = self._calls.get(call_id)
            if existing is not None and not existing.call.live:
                del self._calls[call_id]  # ended elsewhere; its legs notice at their next frame
                existing = None
            if existing is None:
                try:
                    call = await self.services.calls.open(call_id, session.team, "whip", metadata, [spec])
                except CallConflict as exc:
                    raise WhipError(409, str(exc)) from None
                except CallsFull as exc:
                    log.warning("WHIP call %s refused: %s", call_id, exc.message)
                    raise WhipError(
                        503, f"at capacity: try again later ({exc.message})", {"Retry-After": str(exc.retry_after_s)}
                    ) from None
                existing = self._calls[call_id] = _WhipCall(call)
            else:
                call = existing.call
                if call.team != session.team:
                    raise WhipError(409, f"call {call_id!r} is already live")  # never say whose
                if role in existing.legs:
                    raise WhipError(409, f"call {call_id!r} already has a live {role.value} leg; DELETE it first")
                specs = [s for index, s in call.channels.items() if index != spec.index] + [spec]
                existing.held.discard(spec.index)
                await call.update(merge_metadata(call.metadata, metadata), specs, frozenset(existing.held))
            existing.legs[role] = session
            session.call = call
        session.pump = asyncio.create_task(self._pump(session), name=f"whip-{call_id}-{role.value}")
        log.info("WHIP session %s: %s leg of call %s", session.id, role.value, call_id)

    # -- media ---------------------------------------------------------------------------------------

    async def _pump(self, session: WhipSession) -> None:
        call, track = session.call, session.track
        assert call is not None and track is not None
        ingest = self.services.settings.ingest
        to_call_rate: ToCallRate | None = None
        first_pts: int | None = None
        offset = 0.0  # call time of the first frame
        reason: CallEnd | None = CallEnd.DISCONNECTED  # None: ended by someone else, who says how
        watch = EndWatch()  # the server may end the call (shutdown, storage failure): the peer connection is closed
        watch.follow(call)
        try:
            timeout = ingest.start_timeout_s
            while True:
                try:
                    frame = await watch.next(track.recv(), timeout)
                except ServerEnded as exc:
                    log.info("WHIP session %s: %s; closing the peer connection", session.id, exc.close_reason)
                    reason, to_call_rate = exc.reason, None  # nothing more goes into the call
                    return
                except TimeoutError:
                    reason = CallEnd.IDLE_TIMEOUT
                    log.warning("WHIP session %s: no audio for %g s", session.id, timeout)
                    return
                timeout = ingest.idle_timeout_s
                if not call.live:
                    return  # ended elsewhere (erased, server shutdown): end() says so
                if not isinstance(frame, av.AudioFrame):
                    continue
                if to_call_rate is None or to_call_rate.rate != frame.sample_rate:
                    to_call_rate = ToCallRate(frame.sample_rate, SAMPLE_RATE)
                pcm = to_call_rate.float32(mono_float(frame))
                if frame.pts is None:
                    self._push(session, call, pcm, None)
                    continue
                if first_pts is None:  # RTP timestamps place the rest: packets lost or not sent become silence
                    first_pts, offset = frame.pts, time.monotonic() - call.epoch
                elapsed = (frame.pts - first_pts) % _RTP_TIMESTAMP_WRAP / frame.sample_rate
                self._push(session, call, pcm, offset + elapsed)
        except MediaStreamError:
            pass  # the peer connection was closed, or the remote side stopped sending
        except asyncio.CancelledError:
            reason = None
            raise
        except Exception:
            log.exception("WHIP session %s failed", session.id)
            reason = CallEnd.INTERNAL_ERROR
        finally:
            watch.close()
            if reason is not None:
                if to_call_rate is not None:
                    self._push(session, call, to_call_rate.flush(), None)
                await self.end(session, reason)

    def _push(self, session: WhipSession, call: LiveCall, pcm: npt.NDArray[np.int16], start: float | None) -> None:
        if pcm.size and call.live:
            call.push(Audio(session.channel, pcm, SAMPLE_RATE, start))

    # -- ending --------------------------------------------------------------------------------------

    def find(self, session_id: str, team: str) -> WhipSession | None:
        """The team's session with this id; another team's sessions do not exist for it."""
        session = self.sessions.get(session_id)
        return session if session is not None and session.team == team else None

    async def end(self, session: WhipSession, reason: CallEnd) -> None:
        """End one leg; the call ends with its last leg, and is stored."""
        if session.ended:
            return
        session.ended = True
        self.sessions.pop(session.id, None)
        if session.key_hold is not None:
            session.key_hold.release()
        if session.pump is not None and session.pump is not asyncio.current_task():
            session.pump.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(session.pump, CLOSE_TIMEOUT_S)
        with contextlib.suppress(Exception):  # a peer connection that will not close must not hold up the DELETE
            await asyncio.wait_for(session.pc.close(), CLOSE_TIMEOUT_S)
        call = session.call
        if call is None:
            return
        if call.live:
            log.info("WHIP session %s ended: %s (%s)", session.id, reason.status, reason)
        else:
            log.info("WHIP session %s ended: interrupted (call_ended)", session.id)  # ended elsewhere
        async with self._lock:
            entry = self._calls.get(call.id)
            if entry is None or entry.call is not call:
                return
            entry.legs.pop(session.role, None)
            if entry.legs:
                # The other leg goes on; this channel is on hold until its role publishes again.
                entry.held.add(session.channel)
                if call.live:
                    await call.update(call.metadata, list(call.channels.values()), frozenset(entry.held))
                return
            del self._calls[call.id]
        if call.live:  # not already ended elsewhere
            await call.close(reason)

    async def close(self) -> None:
        """Server shutdown: every leg ends as interrupted, and so do their calls."""
        self._closing = True
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self.end(s, CallEnd.SERVER_SHUTDOWN) for s in sessions), return_exceptions=True)


def mono_float(frame: av.AudioFrame) -> npt.NDArray[np.float32]:
    """A decoded frame (s16 or float, packed or planar, any layout) as mono float32 in [-1, 1]."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    shape = (channels, -1) if frame.format.is_planar else (-1, channels)
    mixed: npt.NDArray[np.float32] = (
        data.reshape(shape).astype(np.float32).mean(axis=0 if frame.format.is_planar else 1)
    )
    if data.dtype == np.int16:
        mixed /= 32768.0
    elif data.dtype == np.int32:
        mixed /= 2147483648.0
    return mixed
