"""What every ingest parser turns its protocol into, and how a stream ends.

Audio is :class:`media_server.audio.Audio` (one type for every protocol); the rest of a stream is a start, DTMF
digits, a stop, and notices. A fatal input error is a :class:`ProtocolError`; the end of a stream, whoever ends
it, is a :class:`StreamEnded` (the call's :class:`~media_server.calls.lifecycle.CallEnd` and what the client is
told).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from media_server.audio import Audio
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallEnd

# Websocket close codes (RFC 6455) used by the ingest endpoints.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


class ProtocolError(Exception):
    """Input the adapter cannot accept. Fatal: the stream is closed with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int = CLOSE_INVALID_PAYLOAD) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


class StreamEnded(Exception):
    """How an ingest stream ended: the call's end reason, and what the client is told.

    ``close_code`` ``None``: nothing is said (the client ended it, or is gone). Otherwise a websocket is closed
    with that code and ``close_reason``; AudioSocket, whose protocol has no codes, sends its terminate message.
    """

    def __init__(self, reason: CallEnd, close_code: int | None = None, close_reason: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.close_code = close_code
        self.close_reason = close_reason


@dataclass
class StreamStart:
    call_id: str
    channels: list[ChannelSpec]
    metadata: dict[str, Any] = field(default_factory=dict)  # raw; parsed by calls.metadata
    source: str = ""


@dataclass
class DtmfDigit:
    channel: int
    digit: str


@dataclass
class StreamStop:
    pass


@dataclass
class Notice:
    """Something worth a log line and an ``error`` event, but not worth ending the call for."""

    code: str
    message: str


IngestMessage = StreamStart | Audio | DtmfDigit | StreamStop | Notice


def parse_json_object(text: str) -> dict[str, Any]:
    """A text frame that must hold one JSON object."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("malformed_message", f"not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise ProtocolError("malformed_message", "not valid JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("malformed_message", "expected a JSON object")
    return message
