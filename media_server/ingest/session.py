"""Runs one ingest websocket: authenticate, open the call, feed it, end it, whatever the client does.

Shared by every websocket protocol; the protocol itself is a parser (``twilio.py``, ``l16.py``).
Nothing is processed before the API key is checked: a key in the ``Authorization`` header is
checked on connect (as is ``?token=``), a key in the stream's metadata (``token``) as soon as the start message arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketState

from media_server.audio import Audio
from media_server.auth.http import presented_key
from media_server.auth.keys import ApiKey
from media_server.calls.call import Call
from media_server.calls.lifecycle import CallConflict, CallEnd
from media_server.calls.metadata import MetadataError, parse_metadata
from media_server.ingest.messages import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    AudioChunk,
    DtmfDigit,
    IngestMessage,
    Notice,
    ProtocolError,
    StreamStart,
    StreamStop,
)
from media_server.services import Services

log = logging.getLogger(__name__)


class IngestParser(Protocol):
    def feed_text(self, text: str) -> list[IngestMessage]: ...

    def feed_binary(self, data: bytes) -> list[IngestMessage]: ...

    def flush(self) -> list[IngestMessage]: ...


class _Ended(Exception):
    def __init__(self, status: str, reason: str, close_code: int | None = None, close_reason: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.close_code = close_code
        self.close_reason = close_reason


class IngestSession:
    def __init__(
        self,
        ws: WebSocket,
        parser: IngestParser,
        services: Services,
        protocol: str,
        subprotocols: tuple[str, ...] = (),
    ) -> None:
        self.ws = ws
        self.subprotocols = subprotocols
        self.parser = parser
        self.services = services
        self.protocol = protocol
        self.settings = services.settings.ingest
        self.key: ApiKey | None = None
        self.call: Call | None = None
        self.peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"

    async def run(self) -> None:
        offered = [p.strip() for p in self.ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        await self.ws.accept(subprotocol=next((p for p in offered if p in self.subprotocols), None))
        ended = _Ended("interrupted", "server_shutdown", CLOSE_GOING_AWAY, "server shutting down")
        try:
            ended = await self._serve()
        finally:
            if self.call is not None:
                # The call is finalized (and stored) even if this handler is cancelled.
                task = self.services.calls.end(self.call, CallEnd(ended.reason))
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
        await self._close(ended)

    async def _serve(self) -> _Ended:
        try:
            header_key = presented_key(self.ws)
            if header_key is not None:
                self.key = await self.services.authenticate(header_key)
                if self.key is None or not self.key.can("ingest"):
                    raise ProtocolError("unauthorized", "invalid API key", CLOSE_POLICY)
            start = await self._await_start()
            await self._open(start)
            return await self._stream()
        except ProtocolError as exc:
            log.warning("%s ingest from %s: %s (%s)", self.protocol, self.peer, exc.message, exc.code)
            return _Ended("interrupted", "protocol_error", exc.close_code, f"{exc.code}: {exc.message}")
        except _Ended as exc:
            return exc
        except Exception:
            log.exception("%s ingest from %s failed", self.protocol, self.peer)
            return _Ended("interrupted", "internal_error", CLOSE_INTERNAL, "internal error")

    # -- phases --------------------------------------------------------------------------------------

    async def _await_start(self) -> StreamStart:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            for message in await self._receive(deadline, "no start message"):
                if isinstance(message, StreamStart):
                    return message
                if isinstance(message, Notice):
                    log.warning("%s ingest from %s: %s", self.protocol, self.peer, message.message)
                elif isinstance(message, StreamStop):
                    raise _Ended("interrupted", "stop", CLOSE_NORMAL, "stopped before start")

    async def _open(self, start: StreamStart) -> None:
        try:
            metadata = parse_metadata(start.metadata)
        except MetadataError as exc:
            raise ProtocolError("invalid_metadata", str(exc)) from None
        if self.key is None:
            self.key = await self.services.authenticate(metadata.token)
            if self.key is None or not self.key.can("ingest"):
                what = "invalid API key" if metadata.token else "missing API key (Authorization header or token)"
                raise ProtocolError("unauthorized", what, CLOSE_POLICY)
        metadata.token = None
        if metadata.team and metadata.team != self.key.team:
            raise ProtocolError(
                "forbidden",
                f"this key belongs to team {self.key.team!r}, not {metadata.team!r}",
                CLOSE_POLICY,
            )
        try:
            live = await self.services.calls.open(
                start.call_id, self.key.team, start.source or self.protocol, metadata, start.channels
            )
            self.call = live.call
        except CallConflict as exc:
            raise ProtocolError("call_conflict", str(exc), CLOSE_POLICY) from None

    async def _stream(self) -> _Ended:
        call = self.call
        assert call is not None
        while True:
            deadline = call.last_audio + self.settings.idle_timeout_s
            try:
                messages = await self._receive(deadline, "no audio")
            except ProtocolError as exc:
                await call.error(exc.code, exc.message)
                raise
            for message in messages:
                if isinstance(message, AudioChunk):
                    self._push(message)
                elif isinstance(message, DtmfDigit):
                    await call.dtmf(message.channel, message.digit)
                elif isinstance(message, StreamStop):
                    return _Ended("completed", "stop", CLOSE_NORMAL, "stream stopped")
                elif isinstance(message, Notice):
                    log.warning("call %s (%s): %s", call.id, self.protocol, message.message)
                    await call.error(message.code, message.message)

    async def _receive(self, deadline: float, what: str) -> list[IngestMessage]:
        timeout = max(0.0, deadline - time.monotonic())
        try:
            frame = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            raise _Ended(
                "interrupted",
                "idle_timeout",
                CLOSE_GOING_AWAY,
                f"{what} for {self.settings.idle_timeout_s:g} s",
            ) from None
        if frame["type"] == "websocket.disconnect":
            code = frame.get("code", 1006)
            messages = self.parser.flush()
            self._apply_tail(messages)
            if code == CLOSE_NORMAL and self.protocol == "l16":
                raise _Ended("completed", "closed")  # jambonz and mod_audio_fork end a call by closing
            raise _Ended("interrupted", "disconnected")
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

    def _apply_tail(self, messages: list[IngestMessage]) -> None:
        """Audio still held by the parser when the client went away."""
        for message in messages:
            if isinstance(message, AudioChunk) and self.call is not None and message.channel in self.call.channels:
                self._push(message)

    def _push(self, chunk: AudioChunk) -> None:
        call = self.call
        assert call is not None
        channel = call.channels.get(chunk.channel)
        if channel is None:
            raise ProtocolError(
                "protocol_violation",
                f"audio for channel {chunk.channel}, which the start did not declare",
                CLOSE_POLICY,
            )
        call.push(Audio(chunk.channel, chunk.pcm, channel.spec.sample_rate, chunk.start_time))

    # -- errors and closing --------------------------------------------------------------------------

    async def _close(self, ended: _Ended) -> None:
        if ended.close_code is None or self.ws.client_state != WebSocketState.CONNECTED:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(ended.close_code, ended.close_reason[:120]), 2.0)
