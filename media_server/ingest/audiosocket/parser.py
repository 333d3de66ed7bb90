"""Asterisk AudioSocket messages: an incremental parser and the encoder, pure (no sockets).

The protocol (https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/) is a stream of messages,
each a 3-byte header, the kind (1 byte) and the payload length (uint16, big-endian), then the payload:

- ``0x00`` terminate (no payload): the call is over
- ``0x01`` the call's UUID (16 raw bytes); Asterisk sends it first
- ``0x03`` a DTMF digit (1 ASCII byte: ``0-9 * # A-D``)
- ``0x10`` .. ``0x18`` signed linear 16-bit little-endian mono audio at 8, 12, 16, 24, 32, 44.1, 48, 96 or
  192 kHz (the dialplan application always sends ``0x10``, 8 kHz: 320 bytes per 20 ms)
- ``0xff`` an error; Asterisk's codes are one bit-packed byte: ``0x01`` the calling party hung up,
  ``0x02`` frame forwarding failed, ``0x04`` memory allocation failed

The rate codes are those of ``res_audiosocket.c`` today; the first patch for higher rates (October 2025) briefly
numbered slin16 ``0x11``, which this server reads as 12 kHz: with such a build, use the 8 kHz dialplan
application. Audio comes out as :class:`~media_server.audio.Audio` of channel 0 at the message's rate.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass

import numpy as np

from media_server.audio import Audio
from media_server.ingest.messages import CLOSE_POLICY, CLOSE_TOO_BIG, DtmfDigit, ProtocolError, StreamStop


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

_HEADER = struct.Struct(">BH")


# -- messages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallUuid:
    """The first message: the UUID Asterisk was given for this stream, which becomes the call id."""

    uuid: uuid.UUID

    @property
    def call_id(self) -> str:
        return str(self.uuid)


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


AudioSocketMessage = CallUuid | Audio | DtmfDigit | StreamStop | AsteriskError


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
            return Audio(0, np.frombuffer(payload, dtype="<i2").astype(np.int16), SAMPLE_RATES[kind])
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
    if isinstance(message, Audio):
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
