"""The one runner of an ingest websocket: accept, authenticate, open the call, feed it, end it, close.

Shared by every websocket protocol (Twilio, Telnyx, L16), in the manner of Pipecat's websocket transport: the
protocol is a parser (:class:`IngestParser`: frames in, :mod:`~media_server.ingest.messages` out) and a few
facts (:class:`WebsocketProtocol`); this module owns the rest, over :mod:`media_server.calls.lifecycle`.

Nothing is processed before the API key is checked: a key in the ``Authorization`` header (or the subprotocols
``token, KEY``, or ``?token=``) is checked on connect, a key in the stream's metadata (``token``) as soon as the
start message arrives. Revoking the key ends the call (``key_revoked``, close 4401: ``auth/sessions.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketState

from media_server.audio import Audio
from media_server.auth.http import auth_subprotocol, offered_subprotocols, presented_key
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held
from media_server.calls.lifecycle import CallConflict, CallEnd, CallRefused, CallsFull, LiveCall, Unauthorized
from media_server.calls.metadata import CallMetadata, MetadataError, parse_metadata
from media_server.ingest.farewell import EndWatch, ServerEnded, farewell
from media_server.ingest.messages import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    DtmfDigit,
    IngestMessage,
    Notice,
    ProtocolError,
    StreamEnded,
    StreamStart,
    StreamStop,
)
from media_server.services import Services

log = logging.getLogger(__name__)


class IngestParser(Protocol):
    """A websocket protocol's frames as typed messages; a fatal error is a ``ProtocolError``."""

    def feed_text(self, text: str) -> list[IngestMessage]: ...

    def feed_binary(self, data: bytes) -> list[IngestMessage]: ...

    def flush(self) -> list[IngestMessage]:
        """What the parser still holds when the stream ends (frames held for reordering)."""
        ...


@dataclass(frozen=True)
class WebsocketProtocol:
    name: str  # for the logs, and the call's source when the start message names none
    subprotocols: tuple[str, ...] = ()  # accepted when the client offers one
    close_ends_call: bool = False  # a normal close is how the protocol ends a call (jambonz, mod_audio_fork)


def services_of(ws: WebSocket) -> Services:
    services: Services = ws.app.state.services
    return services


class WebsocketIngest:
    """One ingest websocket, from accept to close."""

    def __init__(self, ws: WebSocket, parser: IngestParser, services: Services, protocol: WebsocketProtocol) -> None:
        self.ws = ws
        self.parser = parser
        self.services = services
        self.protocol = protocol
        self.settings = services.settings.ingest
        self.call: LiveCall | None = None
        self._watch = EndWatch()  # the server may end the call (shutdown, storage failure) while a frame is awaited
        self._channels: frozenset[int] = frozenset()
        self.peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        self._held: Held | None = None  # the call's key, held while it is live: revoking it ends the call

    async def run(self) -> None:
        offered = offered_subprotocols(self.ws)
        ours = next((p for p in offered if p in self.protocol.subprotocols), None)
        await self.ws.accept(subprotocol=ours or auth_subprotocol(self.ws))  # (or the key's, from a browser)
        ended = StreamEnded(CallEnd.SERVER_SHUTDOWN, CLOSE_GOING_AWAY, "server shutting down")
        try:
            ended = await self._serve()
            if isinstance(ended, ServerEnded):
                await self._close(ended)  # the peer is told at once; the call is stored meanwhile
        finally:
            self._watch.close()
            if self._held is not None:
                self._held.release()
            if self.call is not None:
                await self.call.close(ended.reason)  # stored even if this handler is cancelled
        if self.call is not None and self.call.end_reason is CallEnd.STORAGE_FAILED and ended.close_code is not None:
            ended = ServerEnded(farewell(CallEnd.STORAGE_FAILED))  # it ended as asked, but could not be stored
        await self._close(ended)

    async def _serve(self) -> StreamEnded:
        name = self.protocol.name
        try:
            header_key = presented_key(self.ws)
            if header_key is not None:
                await self._authorize(header_key, None)  # a wrong key is refused before any message is read
            start = await self._await_start()
            await self._open(start, header_key)
            return await self._stream()
        except ProtocolError as exc:
            log.warning("%s ingest from %s: %s (%s)", name, self.peer, exc.message, exc.code)
            return StreamEnded(CallEnd.PROTOCOL_ERROR, exc.close_code, f"{exc.code}: {exc.message}")
        except CallsFull as exc:
            log.warning("%s ingest from %s refused: %s", name, self.peer, exc.message)
            return StreamEnded(
                CallEnd.PROTOCOL_ERROR, CLOSE_TRY_AGAIN, f"try again later (in {exc.retry_after_s} s): {exc.message}"
            )
        except StreamEnded as exc:
            return exc
        except Exception:
            log.exception("%s ingest from %s failed", name, self.peer)
            return StreamEnded(CallEnd.INTERNAL_ERROR, CLOSE_INTERNAL, "internal error")

    # -- phases --------------------------------------------------------------------------------------

    async def _await_start(self) -> StreamStart:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            for message in await self._receive(deadline, "no start message"):
                if isinstance(message, StreamStart):
                    return message
                if isinstance(message, Notice):
                    log.warning("%s ingest from %s: %s", self.protocol.name, self.peer, message.message)
                elif isinstance(message, StreamStop):
                    raise StreamEnded(CallEnd.STOP, CLOSE_NORMAL, "stopped before start")

    async def _authorize(self, secret: str | None, team: str | None) -> ApiKey:
        """The key; refusals as the protocol errors a client reads in the close frame."""
        try:
            return await self.services.calls.authorize(secret, team)
        except Unauthorized as exc:
            message = exc.message if secret else "missing API key (Authorization header or token)"
            raise ProtocolError(exc.code, message, CLOSE_POLICY) from None
        except CallRefused as exc:
            raise ProtocolError(exc.code, exc.message, CLOSE_POLICY) from None

    async def _open(self, start: StreamStart, header_key: str | None) -> None:
        metadata = _metadata(start)
        key = await self._authorize(header_key if header_key is not None else metadata.token, metadata.team)
        metadata.token = None
        try:
            self.call = await self.services.calls.open(
                start.call_id, key.team, start.source or self.protocol.name, metadata, start.channels
            )
        except CallConflict as exc:  # CallsFull goes on up: the client is told to come back later
            raise ProtocolError(exc.code, exc.message, CLOSE_POLICY) from None
        call = self.call
        self._held = self.services.sessions.hold(key.id, lambda: call.end(CallEnd.KEY_REVOKED))
        self._channels = frozenset(channel.index for channel in start.channels)
        self._watch.follow(self.call)

    async def _stream(self) -> StreamEnded:
        call = self.call
        assert call is not None
        while True:
            deadline = call.last_audio + self.settings.idle_timeout_s
            try:
                messages = await self._receive(deadline, "no audio")
            except ProtocolError as exc:
                await call.notice(exc.code, exc.message)
                raise
            for message in messages:
                if isinstance(message, Audio):
                    self._push(message)
                elif isinstance(message, DtmfDigit):
                    await call.dtmf(message.channel, message.digit)
                elif isinstance(message, StreamStop):
                    return StreamEnded(CallEnd.STOP, CLOSE_NORMAL, "stream stopped")
                elif isinstance(message, Notice):
                    log.warning("call %s (%s): %s", call.id, self.protocol.name, message.message)
                    await call.notice(message.code, message.message)

    async def _receive(self, deadline: float, what: str) -> list[IngestMessage]:
        timeout = max(0.0, deadline - time.monotonic())
        try:
            frame = await self._watch.next(self.ws.receive(), timeout)
        except TimeoutError:
            raise StreamEnded(
                CallEnd.IDLE_TIMEOUT, CLOSE_GOING_AWAY, f"{what} for {self.settings.idle_timeout_s:g} s"
            ) from None
        if frame["type"] == "websocket.disconnect":
            for message in self.parser.flush():  # audio still held by the parser when the client went away
                if isinstance(message, Audio) and self.call is not None and message.channel in self._channels:
                    self._push(message)
            if frame.get("code", 1006) == CLOSE_NORMAL and self.protocol.close_ends_call:
                raise StreamEnded(CallEnd.CLOSED)
            raise StreamEnded(CallEnd.DISCONNECTED)
        if frame.get("text") is not None:
            text = frame["text"]
            if len(text) > self.settings.max_frame_bytes:
                raise ProtocolError(
                    "frame_too_large", f"text frame over {self.settings.max_frame_bytes} bytes", CLOSE_TOO_BIG
                )
            return self.parser.feed_text(text)
        if frame.get("bytes") is not None:
            return self.parser.feed_binary(frame["bytes"])
        return []

    def _push(self, audio: Audio) -> None:
        assert self.call is not None
        if audio.channel not in self._channels:
            raise ProtocolError(
                "protocol_violation",
                f"audio for channel {audio.channel}, which the start did not declare",
                CLOSE_POLICY,
            )
        self.call.push(audio)

    async def _close(self, ended: StreamEnded) -> None:
        connected = WebSocketState.CONNECTED
        if ended.close_code is None or connected != self.ws.client_state or connected != self.ws.application_state:
            return  # nothing to say, or said already (a server end is told before the call is stored)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(ended.close_code, ended.close_reason[:120]), 2.0)


def _metadata(start: StreamStart) -> CallMetadata:
    try:
        return parse_metadata(start.metadata)
    except MetadataError as exc:
        raise ProtocolError("invalid_metadata", str(exc)) from None
