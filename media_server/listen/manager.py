"""Listen-in sessions (WHEP-style): a manager's browser offers to receive audio, the server answers with a
track that plays the live call, mixed or one channel.

Only channels whose voices may be transcribed are ever audible (``AudioTap``); a session ends on DELETE,
when the call ends, when the peer connection fails or closes, when its key is revoked or expires, or when the server
stops. Every session is
written to the audit log when it starts (who, which call, which channel) and closed there when it ends.
HTTP stays in ``media_server/api/listen.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held, KeySessions
from media_server.calls.call import Call
from media_server.calls.tap import AudioTap
from media_server.listen.track import TapTrack
from media_server.problem import HttpProblem
from media_server.store.store import Store

log = logging.getLogger(__name__)

TAP_RATE = 16000  # mixed at this rate; the Opus encoder takes it to 48 kHz


class ListenError(HttpProblem):
    """A listen-in that cannot be served."""


@dataclass
class ListenSession:
    id: str
    call: Call
    key: ApiKey
    channel: str  # "mixed" or a channel index
    pc: RTCPeerConnection
    tap: AudioTap
    answer: str = ""
    audit_id: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: bool = False
    watcher: asyncio.Task[None] | None = None
    held: Held | None = None  # its key, held while it lasts: revoking the key ends it (auth/sessions.py)


def parse_channel(value: str, call: Call) -> frozenset[int] | None:
    """``mixed`` (every channel) or one channel's index; a channel without consent cannot be chosen."""
    if value == "mixed":
        return None
    if not value.isdigit() or int(value) not in call.channels:
        known = ", ".join(str(i) for i in sorted(call.channels))
        raise ListenError(400, f"channel must be 'mixed' or one of the call's channels ({known})")
    channel = call.channels[int(value)]
    if not channel.transcribed:
        raise ListenError(403, f"channel {value} carries a participant without consent: it is never audible")
    return frozenset({int(value)})


def check_offer(sdp: str) -> None:
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0":
        raise ListenError(400, "the body is not an SDP offer (it must start with v=0)")
    if not any(line.startswith("m=audio") for line in lines):
        raise ListenError(400, "the offer has no audio m-line: listen-in sends audio")


class ListenManager:
    def __init__(
        self,
        store: Store,
        max_sessions: int = 50,
        max_delay_s: float = 0.25,
        retry_after_s: int = 5,
        rtc: RTCConfiguration | None = None,
        key_sessions: KeySessions | None = None,
    ):
        self.store = store
        self.key_sessions = key_sessions
        self._revoking: set[asyncio.Task[None]] = set()
        self.rtc = rtc
        self.max_sessions = max_sessions
        self.max_delay_s = max_delay_s
        self.retry_after_s = retry_after_s
        self.sessions: dict[str, ListenSession] = {}
        self._closing = False

    async def open(self, key: ApiKey, call: Call, offer: str, channel: str = "mixed") -> ListenSession:
        if self._closing or len(self.sessions) >= self.max_sessions:
            raise ListenError(503, "at capacity: try again later", {"Retry-After": str(self.retry_after_s)})
        check_offer(offer)
        channels = parse_channel(channel, call)
        tap = AudioTap(TAP_RATE, channels, max_delay_s=self.max_delay_s)
        pc = RTCPeerConnection(self.rtc)
        session = ListenSession(secrets.token_urlsafe(18), call, key, channel, pc, tap)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            pc.addTrack(TapTrack(tap))
            for transceiver in pc.getTransceivers():
                transceiver.direction = "sendonly" if transceiver.kind == "audio" else "inactive"
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc says what is wrong with an offer in ValueErrors (and a few others)
            await pc.close()
            raise ListenError(400, f"the offer cannot be answered: {exc}") from None
        session.answer = pc.localDescription.sdp
        if call.finished:
            await pc.close()
            raise ListenError(409, "the call has ended")
        session.audit_id = await self.store.listen_started(call.team, call.id, key, channel)
        call.add_tap(tap)
        self.sessions[session.id] = session

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and not session.ended:
                await self.end(session, "disconnected" if pc.connectionState == "closed" else "ice_failed")

        session.watcher = asyncio.create_task(self._watch(session), name=f"listen-{session.id}")
        if self.key_sessions is not None:
            session.held = self.key_sessions.hold(key.id, lambda: self._revoke(session))
        log.info("listen-in %s: key %s (%s) listens to call %s (%s)", session.id, key.id, key.role, call.id, channel)
        return session

    async def _watch(self, session: ListenSession) -> None:
        await session.tap.closed.wait()
        if not session.ended:
            await self.end(session, "call_ended")

    def _revoke(self, session: ListenSession) -> None:
        task = asyncio.create_task(self.end(session, "key_revoked"), name=f"listen-{session.id}-revoked")
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    def find(self, session_id: str, team: str) -> ListenSession | None:
        session = self.sessions.get(session_id)
        return session if session is not None and session.call.team == team else None

    async def end(self, session: ListenSession, reason: str) -> None:
        if session.ended:
            return
        session.ended = True
        self.sessions.pop(session.id, None)
        if session.held is not None:
            session.held.release()
        session.call.remove_tap(session.tap)
        if session.watcher is not None and session.watcher is not asyncio.current_task():
            session.watcher.cancel()
        with contextlib.suppress(Exception):
            await session.pc.close()
        try:
            await self.store.listen_ended(session.audit_id, reason)
        except Exception:
            log.exception("listen-in %s: the audit log entry could not be closed", session.id)
        log.info("listen-in %s on call %s ended: %s", session.id, session.call.id, reason)

    async def close(self) -> None:
        self._closing = True
        for session in list(self.sessions.values()):
            await self.end(session, "server_shutdown")
