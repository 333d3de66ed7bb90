"""One AudioSocket connection: await the UUID, open the call at the first audio, feed it, end it.

AudioSocket carries no API key (the server checks the source, ``server.py``): every call belongs to
``audiosocket.team``, with ``audiosocket.consent`` for the participants and one channel whose voice is
``audiosocket.speaker``. The call (id: the UUID) is opened at the first audio message, whose kind gives the
rate, and its channel's rate is :func:`~media_server.audio.call_rate` of it. Should the rate change in the
middle of a call (Asterisk's channel driver follows the codec it is given), the audio is resampled to the
channel's rate, so the channel's timeline stays whole.

The life cycle is the websocket ingest's (``ingest/websocket.py``): hang-up (``0x00``, or an error message
with the hang-up bit) ends the call ``hangup``; a dropped connection ``disconnected``; no audio for
``ingest.idle_timeout_s`` ``idle_timeout``; malformed input gets a terminate message back, the connection
closed and the call ended ``protocol_error`` with what was transcribed. A call refused (its UUID is live or
stored, the server is full) gets a terminate message before any audio is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from media_server.audio import Audio, ToCallRate, call_rate
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd, CallsFull, LiveCall
from media_server.calls.metadata import CallMetadata, Consent
from media_server.ingest.audiosocket.parser import (
    MAX_PAYLOAD,
    TERMINATE,
    AsteriskError,
    AudioSocketMessage,
    AudioSocketParser,
    CallUuid,
)
from media_server.ingest.farewell import EndWatch, ServerEnded
from media_server.ingest.messages import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    DtmfDigit,
    ProtocolError,
    StreamEnded,
    StreamStop,
)
from media_server.services import Services

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
_LINGER_S = 1.0  # how long a connection this side ends may take to close from the other side


class AudioSocketSession:
    """Runs one AudioSocket connection; a :class:`StreamEnded` with a close code makes it send a terminate."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, services: Services, peer: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.services = services
        self.peer = peer
        self.where = peer  # for the logs: the peer, and the call once its UUID is known
        self.settings = services.settings.ingest
        self.parser = AudioSocketParser(min(MAX_PAYLOAD, self.settings.max_frame_bytes))
        self.connected_at = time.monotonic()
        self.call: LiveCall | None = None
        self.sample_rate = 0  # the channel's rate
        self._to_channel: ToCallRate | None = None  # from the rate of the last audio message
        self._watch = EndWatch()  # the server may end the call (shutdown, storage failure) while a read waits

    async def run(self) -> None:
        ended = StreamEnded(CallEnd.SERVER_SHUTDOWN, CLOSE_GOING_AWAY)
        try:
            ended = await self._serve()
            if isinstance(ended, ServerEnded):
                log.info("audiosocket from %s: %s; hanging up", self.where, ended.close_reason)
                await self._close(ended)  # the peer is told at once; the call is stored meanwhile
        finally:
            self._watch.close()
            if self.call is not None:
                with contextlib.suppress(Exception):
                    self._flush()
                await self.call.close(ended.reason)  # stored even if this handler is cancelled
            await self._close(ended)

    async def _serve(self) -> StreamEnded:
        try:
            call_uuid = await self._await_uuid()
            self.where = f"{self.peer} (call {call_uuid.call_id})"
            first, digits = await self._await_audio()
            await self._open(call_uuid, first.sample_rate)
            self._push(first)
            for digit in digits:
                await self._dtmf(digit)
            return await self._stream()
        except ProtocolError as exc:
            log.warning("audiosocket from %s: %s (%s)", self.where, exc.message, exc.code)
            if self.call is not None:
                with contextlib.suppress(Exception):
                    await self.call.notice(exc.code, exc.message)
            return StreamEnded(CallEnd.PROTOCOL_ERROR, exc.close_code, exc.message)
        except CallsFull as exc:
            log.warning("audiosocket from %s refused: %s; hung up", self.where, exc.message)
            return StreamEnded(CallEnd.PROTOCOL_ERROR, CLOSE_TRY_AGAIN, exc.message)
        except StreamEnded as exc:
            return exc
        except Exception:
            log.exception("audiosocket from %s failed", self.where)
            return StreamEnded(CallEnd.INTERNAL_ERROR, CLOSE_INTERNAL)

    # -- phases --------------------------------------------------------------------------------------

    async def _await_uuid(self) -> CallUuid:
        deadline = self.connected_at + self.settings.start_timeout_s
        while True:
            message = await self._next(deadline, "no UUID message", start=True)
            if isinstance(message, CallUuid):
                return message
            self._before_call(message)

    async def _await_audio(self) -> tuple[Audio, list[DtmfDigit]]:
        """The first audio message, which says the rate; digits pressed before it are kept for the call."""
        deadline = self.connected_at + self.settings.start_timeout_s
        digits: list[DtmfDigit] = []
        while True:
            message = await self._next(deadline, "no audio", start=True)
            if isinstance(message, Audio):
                return message, digits
            if isinstance(message, DtmfDigit):
                digits.append(message)
            else:
                self._before_call(message)

    def _before_call(self, message: AudioSocketMessage) -> None:
        if isinstance(message, StreamStop):
            log.info("audiosocket from %s: hung up before any audio", self.where)
            raise StreamEnded(CallEnd.HANGUP)
        if isinstance(message, AsteriskError):
            log.warning("audiosocket from %s: Asterisk reported %s", self.where, message.describe())
            if message.hangup:
                raise StreamEnded(CallEnd.HANGUP)

    async def _open(self, call_uuid: CallUuid, rate: int) -> None:
        settings = self.services.settings.audiosocket
        self.sample_rate = call_rate(rate)
        try:
            self.call = await self.services.calls.open(
                call_uuid.call_id,
                settings.team,
                "audiosocket",
                CallMetadata(extra={"peer": self.peer}),
                [ChannelSpec(0, settings.speaker, self.sample_rate)],
                consent_default=Consent(settings.consent),
            )
        except CallConflict as exc:
            raise ProtocolError(exc.code, exc.message, CLOSE_POLICY) from None
        self._watch.follow(self.call)
        if rate != self.sample_rate:
            log.info("call %s: audiosocket audio at %d Hz is resampled to %d Hz", self.call.id, rate, self.sample_rate)

    async def _stream(self) -> StreamEnded:
        call = self.call
        assert call is not None
        while True:
            deadline = call.last_audio + self.settings.idle_timeout_s
            message = await self._next(deadline, "no audio")
            if isinstance(message, Audio):
                self._push(message)
            elif isinstance(message, DtmfDigit):
                await self._dtmf(message)
            elif isinstance(message, StreamStop):
                return StreamEnded(CallEnd.HANGUP)
            elif isinstance(message, AsteriskError):
                text = f"Asterisk reported {message.describe()}"
                log.warning("call %s (audiosocket): %s", call.id, text)
                await call.notice("asterisk_error", text)
                if message.hangup:
                    return StreamEnded(CallEnd.HANGUP)

    async def _next(self, deadline: float, what: str, start: bool = False) -> AudioSocketMessage:
        """The next message, reading from the socket as needed, until ``deadline`` (monotonic)."""
        while True:
            message = self.parser.next_message()
            if message is not None:
                return message
            timeout = max(0.0, deadline - time.monotonic())
            try:
                data = await self._watch.next(self.reader.read(_READ_SIZE), timeout)
            except TimeoutError:
                limit = self.settings.start_timeout_s if start else self.settings.idle_timeout_s
                log.warning("audiosocket from %s: %s for %g s", self.where, what, limit)
                # Before the call opens no call ends; the reason is the idle timeout's either way.
                raise StreamEnded(CallEnd.IDLE_TIMEOUT, CLOSE_GOING_AWAY, f"{what} for {limit:g} s") from None
            except ConnectionError:
                data = b""
            if not data:
                if self.parser.pending:
                    log.warning("audiosocket from %s: disconnected in the middle of a message", self.where)
                raise StreamEnded(CallEnd.DISCONNECTED)
            self.parser.push(data)

    # -- audio ---------------------------------------------------------------------------------------

    def _push(self, audio: Audio) -> None:
        call = self.call
        assert call is not None
        if self._to_channel is None or self._to_channel.rate != audio.sample_rate:
            if self._to_channel is not None:
                log.info(
                    "call %s: audiosocket audio changed from %d to %d Hz",
                    call.id,
                    self._to_channel.rate,
                    audio.sample_rate,
                )
            self._flush()
            self._to_channel = ToCallRate(audio.sample_rate, self.sample_rate)
        call.push(Audio(0, self._to_channel(audio.pcm), self.sample_rate))

    def _flush(self) -> None:
        """The resampler holds a few milliseconds back: they go on the timeline when its rate is done with."""
        to_channel, self._to_channel = self._to_channel, None
        if to_channel is None or self.call is None:
            return
        tail = to_channel.flush()
        if tail.size:
            self.call.push(Audio(0, tail, self.sample_rate))

    async def _dtmf(self, digit: DtmfDigit) -> None:
        assert self.call is not None
        await self.call.dtmf(digit.channel, digit.digit)

    # -- closing -------------------------------------------------------------------------------------

    async def _close(self, ended: StreamEnded) -> None:
        with contextlib.suppress(Exception):
            if ended.close_code is not None and not self.writer.is_closing():
                self.writer.write(TERMINATE)
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                # Read what the peer still sends until it closes too: closing with unread input would reset
                # the connection, and the terminate message could be lost on the way.
                await asyncio.wait_for(self._discard_input(), _LINGER_S)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)

    async def _discard_input(self) -> None:
        while await self.reader.read(_READ_SIZE):
            pass
