"""Asterisk AudioSocket over TCP: ``AudioSocket(${UUID()},host:9092)`` in the dialplan, or ARI externalMedia.

The protocol (https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/) is a stream of messages,
each a 3-byte header, the kind (1 byte) and the payload length (uint16, big-endian), then the payload:

- ``0x00`` terminate (no payload): the call is over
- ``0x01`` the call's UUID (16 raw bytes); Asterisk sends it first
- ``0x03`` a DTMF digit (1 ASCII byte: ``0-9 * # A-D``)
- ``0x10`` .. ``0x18`` signed linear 16-bit little-endian mono audio at 8, 12, 16, 24, 32, 44.1, 48, 96 or
  192 kHz (the dialplan application always sends ``0x10``, 8 kHz: 320 bytes per 20 ms)
- ``0xff`` an error; Asterisk's codes are one bit-packed byte: ``0x01`` the calling party hung up,
  ``0x02`` frame forwarding failed, ``0x04`` memory allocation failed

AudioSocket carries no API key: sources are checked against ``audiosocket.allow``, and every call belongs to
``audiosocket.team``, with ``audiosocket.consent`` for both participants and one channel whose voice is
``audiosocket.speaker``. The call (id: the UUID) is opened at the first audio message, whose kind gives the
rate; 8 and 16 kHz are transcribed as they come (the recognizer works at both), other rates are resampled to
16 kHz. Should the rate change in the middle of a call (Asterisk's channel driver follows the codec it is
given), the audio is resampled to the channel's rate, so the channel's timeline stays whole. The rate codes
are those of ``res_audiosocket.c`` today; the first patch for higher rates (October 2025) briefly numbered
slin16 ``0x11``, which this server reads as 12 kHz: with such a build, use the 8 kHz dialplan application.

The life cycle mirrors the websocket ingest (``session.py``): hang-up (``0x00``, or an error message with the
hang-up bit) ends the call ``completed``; a dropped connection ``interrupted``/``disconnected``; no audio
for ``ingest.idle_timeout_s`` ``interrupted``/``idle_timeout``; malformed input gets a terminate message back,
the connection closed and the call ended ``interrupted``/``protocol_error`` with what was transcribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from media_server.audio import Audio
from media_server.calls.call import Call, ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd
from media_server.calls.metadata import CallMetadata, Consent
from media_server.ingest.allowlist import AllowList
from media_server.ingest.messages import CLOSE_POLICY, CLOSE_TOO_BIG, DtmfDigit, ProtocolError, StreamStop
from media_server.services import Services
from models.audio import StreamResampler, float32_to_int16, int16_to_float32

log = logging.getLogger(__name__)


class Kind(enum.IntEnum):
    """AudioSocket message kinds (``enum ast_audiosocket_msg_kind`` in Asterisk's ``res_audiosocket.h``)."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    SLIN = 0x10
    SLIN12 = 0x11
    SLIN16 = 0x12
    SLIN24 = 0x13
    SLIN32 = 0x14
    SLIN44 = 0x15
    SLIN48 = 0x16
    SLIN96 = 0x17
    SLIN192 = 0x18
    ERROR = 0xFF


SAMPLE_RATES: dict[int, int] = {
    Kind.SLIN: 8000,
    Kind.SLIN12: 12000,
    Kind.SLIN16: 16000,
    Kind.SLIN24: 24000,
    Kind.SLIN32: 32000,
    Kind.SLIN44: 44100,
    Kind.SLIN48: 48000,
    Kind.SLIN96: 96000,
    Kind.SLIN192: 192000,
}
_KINDS = frozenset(kind.value for kind in Kind)
AUDIO_KINDS: dict[int, Kind] = {rate: Kind(kind) for kind, rate in SAMPLE_RATES.items()}
DTMF_DIGITS = frozenset("0123456789*#ABCD")
# Asterisk's error codes, one bit each.
ERROR_BITS = {0x01: "the calling party hung up", 0x02: "frame forwarding failed", 0x04: "memory allocation failed"}
ERROR_HANGUP = 0x01
#: The largest payload accepted: 40 ms at 192 kHz, over a second at 8 kHz. Asterisk sends 20 ms frames.
MAX_PAYLOAD = 16 * 1024
#: Rates the recognizer takes as they are; audio at any other rate is resampled to 16 kHz.
NATIVE_RATES = (8000, 16000)

_HEADER = struct.Struct(">BH")
_READ_SIZE = 64 * 1024
_LINGER_S = 1.0  # how long a connection this side ends may take to close from the other side


# -- messages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallUuid:
    """The first message: the UUID Asterisk was given for this stream, which becomes the call id."""

    uuid: uuid.UUID

    @property
    def call_id(self) -> str:
        return str(self.uuid)


@dataclass(eq=False)
class SlinAudio:
    sample_rate: int
    pcm: npt.NDArray[np.int16]


@dataclass(frozen=True)
class AsteriskError:
    """An ``0xff`` message. ``code`` is Asterisk's bit-packed byte; other applications may send anything."""

    payload: bytes

    @property
    def code(self) -> int | None:
        return self.payload[0] if len(self.payload) == 1 else None

    @property
    def hangup(self) -> bool:
        return self.code is not None and bool(self.code & ERROR_HANGUP)

    def describe(self) -> str:
        if not self.payload:
            return "error (no code)"
        if self.code is None:
            return f"error 0x{self.payload[:16].hex()}"
        known = [text for bit, text in ERROR_BITS.items() if self.code & bit]
        unknown = self.code & ~sum(ERROR_BITS)
        if unknown or not known:
            known.append(f"unknown error bits 0x{unknown:02x}")
        return f"error 0x{self.code:02x}: " + ", ".join(known)


AudioSocketMessage = CallUuid | SlinAudio | DtmfDigit | StreamStop | AsteriskError


# -- parsing and serialising -----------------------------------------------------------------------


class AudioSocketParser:
    """Incremental and strict: bytes in as they arrive, whole messages out.

    ``push`` then ``next_message`` until ``None`` hands out each message as soon as it is complete, so that
    what came before a malformed message is still used; ``feed`` does both at once. Malformed input raises
    ``ProtocolError``, and so does every later call: the stream cannot be trusted after it.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.call_uuid: uuid.UUID | None = None
        self.ended = False  # a terminate message was seen
        self._buffer = bytearray()
        self._error: ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes held: the start of a message whose rest has not arrived."""
        return len(self._buffer)

    def push(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data

    def next_message(self) -> AudioSocketMessage | None:
        """The next complete message, or ``None`` until more bytes arrive."""
        if self._error is not None:
            raise self._error
        if not self._buffer:
            return None
        try:
            return self._next()
        except ProtocolError as exc:
            self._error = exc
            raise

    def feed(self, data: bytes) -> list[AudioSocketMessage]:
        self.push(data)
        messages = []
        while (message := self.next_message()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> AudioSocketMessage | None:
        if self.ended:
            raise ProtocolError("protocol_violation", "data after the terminate message", CLOSE_POLICY)
        if len(self._buffer) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack_from(self._buffer)
        self._check_header(kind, length)  # before the payload arrives: a bad header is refused at once
        end = _HEADER.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return self._message(kind, payload)

    def _check_header(self, kind: int, length: int) -> None:
        name = _kind_name(kind)
        if kind not in _KINDS:
            raise ProtocolError("unknown_message_type", f"unknown message type {name} (length {length})")
        if length > self.max_payload:
            raise ProtocolError(
                "frame_too_large", f"{name} message of {length} bytes is over {self.max_payload}", CLOSE_TOO_BIG
            )
        if kind == Kind.UUID and length != 16:
            raise ProtocolError("invalid_payload", f"UUID message of {length} bytes: a UUID is 16 bytes")
        if kind == Kind.DTMF and length != 1:
            raise ProtocolError("invalid_payload", f"DTMF message of {length} bytes: a digit is 1 byte")
        if kind == Kind.HANGUP and length:
            raise ProtocolError("invalid_payload", f"terminate message with a {length}-byte payload: it has none")
        if kind in SAMPLE_RATES and length % 2:
            raise ProtocolError(
                "invalid_payload", f"audio message of {length} bytes is not a whole number of 16-bit samples"
            )
        if self.call_uuid is None and kind not in (Kind.UUID, Kind.HANGUP, Kind.ERROR):
            raise ProtocolError("protocol_violation", f"{name} message before the UUID message", CLOSE_POLICY)
        if self.call_uuid is not None and kind == Kind.UUID:
            raise ProtocolError("protocol_violation", "a second UUID message", CLOSE_POLICY)

    def _message(self, kind: int, payload: bytes) -> AudioSocketMessage:
        if kind == Kind.UUID:
            self.call_uuid = uuid.UUID(bytes=payload)
            return CallUuid(self.call_uuid)
        if kind in SAMPLE_RATES:
            return SlinAudio(SAMPLE_RATES[kind], np.frombuffer(payload, dtype="<i2").astype(np.int16))
        if kind == Kind.DTMF:
            digit = chr(payload[0])
            if digit not in DTMF_DIGITS:
                raise ProtocolError("invalid_payload", f"DTMF digit {payload!r} is not one of 0-9 * # A-D")
            return DtmfDigit(0, digit)
        if kind == Kind.HANGUP:
            self.ended = True
            return StreamStop()
        return AsteriskError(payload)


def _kind_name(kind: int) -> str:
    try:
        return f"0x{kind:02x} ({Kind(kind).name.lower()})"
    except ValueError:
        return f"0x{kind:02x}"


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One message on the wire."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"a payload of {len(payload)} bytes does not fit an AudioSocket message")
    return _HEADER.pack(kind, len(payload)) + payload


#: What this server sends to Asterisk when it ends a connection itself.
TERMINATE = frame(Kind.HANGUP)


def encode(message: AudioSocketMessage) -> bytes:
    """The wire form of a message: ``AudioSocketParser`` reads back what this writes."""
    if isinstance(message, CallUuid):
        return frame(Kind.UUID, message.uuid.bytes)
    if isinstance(message, SlinAudio):
        kind = AUDIO_KINDS.get(message.sample_rate)
        if kind is None:
            raise ValueError(f"AudioSocket has no message kind for {message.sample_rate} Hz")
        return frame(kind, np.asarray(message.pcm, dtype="<i2").tobytes())
    if isinstance(message, DtmfDigit):
        if message.digit not in DTMF_DIGITS:
            raise ValueError(f"{message.digit!r} is not a DTMF digit")
        return frame(Kind.DTMF, message.digit.encode("ascii"))
    if isinstance(message, StreamStop):
        return TERMINATE
    return frame(Kind.ERROR, message.payload)


# -- one connection --------------------------------------------------------------------------------


class _Ended(Exception):
    """How a connection ended; ``terminate``: this side ended it, and says so to Asterisk."""

    def __init__(self, status: str, reason: str, terminate: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.terminate = terminate


class AudioSocketSession:
    """Runs one AudioSocket connection: await the UUID, open the call at the first audio, feed it, end it."""

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
        self.call: Call | None = None
        self.sample_rate = 0  # the channel's rate
        self._source_rate = 0  # the rate of the last audio message
        self._resampler: StreamResampler | None = None

    async def run(self) -> None:
        ended = _Ended("interrupted", "server_shutdown", terminate=True)
        try:
            ended = await self._serve()
        finally:
            if self.call is not None:
                with contextlib.suppress(Exception):
                    self._flush_resampler()
                # The call is finalized (and stored) even if this handler is cancelled.
                task = self.services.calls.end(self.call, CallEnd(ended.reason))
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)
            await self._close(ended)

    async def _serve(self) -> _Ended:
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
                    await self.call.error(exc.code, exc.message)
            return _Ended("interrupted", "protocol_error", terminate=True)
        except _Ended as exc:
            return exc
        except Exception:
            log.exception("audiosocket from %s failed", self.where)
            return _Ended("interrupted", "internal_error", terminate=True)

    # -- phases --------------------------------------------------------------------------------------

    async def _await_uuid(self) -> CallUuid:
        deadline = self.connected_at + self.settings.start_timeout_s
        while True:
            message = await self._next(deadline, "no UUID message", "start_timeout")
            if isinstance(message, CallUuid):
                return message
            self._before_call(message)

    async def _await_audio(self) -> tuple[SlinAudio, list[DtmfDigit]]:
        """The first audio message, which says the rate; digits pressed before it are kept for the call."""
        deadline = self.connected_at + self.settings.start_timeout_s
        digits: list[DtmfDigit] = []
        while True:
            message = await self._next(deadline, "no audio", "start_timeout")
            if isinstance(message, SlinAudio):
                return message, digits
            if isinstance(message, DtmfDigit):
                digits.append(message)
            else:
                self._before_call(message)

    def _before_call(self, message: AudioSocketMessage) -> None:
        if isinstance(message, StreamStop):
            log.info("audiosocket from %s: hung up before any audio", self.where)
            raise _Ended("interrupted", "hangup")
        if isinstance(message, AsteriskError):
            log.warning("audiosocket from %s: Asterisk reported %s", self.where, message.describe())
            if message.hangup:
                raise _Ended("interrupted", "hangup")

    async def _open(self, call_uuid: CallUuid, rate: int) -> None:
        settings = self.services.settings.audiosocket
        consent = Consent(settings.consent)
        metadata = CallMetadata(extra={"peer": self.peer})
        metadata.rep.consent = consent
        metadata.customer.consent = consent
        self.sample_rate = rate if rate in NATIVE_RATES else 16000
        try:
            self.call = (
                await self.services.calls.open(
                    call_uuid.call_id,
                    settings.team,
                    "audiosocket",
                    metadata,
                    [ChannelSpec(0, settings.speaker, self.sample_rate)],
                )
            ).call
        except CallConflict as exc:
            raise ProtocolError("call_conflict", str(exc), CLOSE_POLICY) from None
        if rate != self.sample_rate:
            log.info("call %s: audiosocket audio at %d Hz is resampled to %d Hz", self.call.id, rate, self.sample_rate)

    async def _stream(self) -> _Ended:
        call = self.call
        assert call is not None
        while True:
            deadline = call.last_audio + self.settings.idle_timeout_s
            message = await self._next(deadline, "no audio", "idle_timeout")
            if isinstance(message, SlinAudio):
                self._push(message)
            elif isinstance(message, DtmfDigit):
                await self._dtmf(message)
            elif isinstance(message, StreamStop):
                return _Ended("completed", "hangup")
            elif isinstance(message, AsteriskError):
                text = f"Asterisk reported {message.describe()}"
                log.warning("call %s (audiosocket): %s", call.id, text)
                await call.error("asterisk_error", text)
                if message.hangup:
                    return _Ended("completed", "hangup")

    async def _next(self, deadline: float, what: str, reason: str) -> AudioSocketMessage:
        """The next message, reading from the socket as needed, until ``deadline`` (monotonic)."""
        while True:
            message = self.parser.next_message()
            if message is not None:
                return message
            timeout = max(0.0, deadline - time.monotonic())
            try:
                data = await asyncio.wait_for(self.reader.read(_READ_SIZE), timeout)
            except TimeoutError:
                limit = self.settings.start_timeout_s if reason == "start_timeout" else self.settings.idle_timeout_s
                log.warning("audiosocket from %s: %s for %g s", self.where, what, limit)
                raise _Ended("interrupted", reason, terminate=True) from None
            except ConnectionError:
                data = b""
            if not data:
                if self.parser.pending:
                    log.warning("audiosocket from %s: disconnected in the middle of a message", self.where)
                raise _Ended("interrupted", "disconnected")
            self.parser.push(data)

    # -- audio ---------------------------------------------------------------------------------------

    def _push(self, audio: SlinAudio) -> None:
        call = self.call
        assert call is not None
        if self._source_rate and audio.sample_rate != self._source_rate:
            log.info(
                "call %s: audiosocket audio changed from %d to %d Hz", call.id, self._source_rate, audio.sample_rate
            )
        self._source_rate = audio.sample_rate
        pcm = audio.pcm
        if audio.sample_rate != self.sample_rate:
            if self._resampler is None or self._resampler.from_rate != audio.sample_rate:
                self._flush_resampler()
                self._resampler = StreamResampler(audio.sample_rate, self.sample_rate)
            pcm = float32_to_int16(self._resampler.process(int16_to_float32(pcm)))
        else:
            self._flush_resampler()
        call.push(Audio(0, pcm, self.sample_rate))

    def _flush_resampler(self) -> None:
        """The resampler holds a few milliseconds back: they go on the timeline when its rate is done with."""
        resampler, self._resampler = self._resampler, None
        call = self.call
        if resampler is None or call is None:
            return
        tail = float32_to_int16(resampler.process(np.zeros(0, dtype=np.float32), last=True))
        if tail.size:
            call.push(Audio(0, tail, self.sample_rate))

    async def _dtmf(self, digit: DtmfDigit) -> None:
        assert self.call is not None
        await self.call.dtmf(digit.channel, digit.digit)

    # -- closing -------------------------------------------------------------------------------------

    async def _close(self, ended: _Ended) -> None:
        with contextlib.suppress(Exception):
            if ended.terminate and not self.writer.is_closing():
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


def _peer(writer: asyncio.StreamWriter) -> tuple[str, str]:
    """The source host, and host:port for the logs."""
    address = writer.get_extra_info("peername")
    if not isinstance(address, tuple) or len(address) < 2:
        return "", "?"
    host, port = str(address[0]), address[1]
    return host, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the server ------------------------------------------------------------------------------------


class AudioSocketServer:
    """Accepts AudioSocket connections from Asterisk; each one is a call, run by ``AudioSocketSession``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings.audiosocket
        self.allow = AllowList(self.settings.allow)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    def status(self) -> dict[str, Any]:
        return {"protocol": "audiosocket", "port": self.port, "connections": len(self._sessions)}

    @classmethod
    async def start(cls, services: Services) -> AudioSocketServer:
        listener = cls(services)
        s = listener.settings
        try:
            listener._server = await asyncio.start_server(listener._accept, s.host, s.port)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"AudioSocket cannot listen on {s.host}:{s.port} ({exc.strerror or exc}): "
                "choose another audiosocket.port (MEDIA_SERVER_AUDIOSOCKET__PORT) or stop what uses it",
            ) from exc
        listener.port = int(listener._server.sockets[0].getsockname()[1])
        log.info(
            "AudioSocket listening on %s:%d (team %s, consent %s, speaker %s%s)",
            s.host,
            listener.port,
            s.team,
            s.consent,
            s.speaker,
            f", from {', '.join(s.allow)} only" if s.allow else "",
        )
        return listener

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, peer = _peer(writer)
        if self._closing or not self.allow.allows(host):
            if not self._closing:
                log.warning("audiosocket connection from %s refused: not in audiosocket.allow", peer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await AudioSocketSession(reader, writer, self.services, peer).run()
        finally:
            self._sessions.discard(task)

    async def close(self) -> None:
        """Stop accepting; end the calls still streaming as interrupted (``server_shutdown``), stored."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        sessions = list(self._sessions)
        for task in sessions:
            task.cancel()
        if sessions:
            await asyncio.gather(*sessions, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        log.info("AudioSocket server on port %d closed", self.port)
