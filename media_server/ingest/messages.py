"""What every ingest adapter turns its protocol into."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from media_server.calls.call import ChannelSpec

# Websocket close codes (RFC 6455) used by the ingest endpoints.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011


class ProtocolError(Exception):
    """Input the adapter cannot accept. Fatal: the stream is closed with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int = CLOSE_INVALID_PAYLOAD) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


@dataclass
class StreamStart:
    call_id: str
    channels: list[ChannelSpec]
    metadata: dict[str, Any] = field(default_factory=dict)  # raw; parsed by calls.metadata
    source: str = ""


@dataclass
class AudioChunk:
    channel: int
    pcm: npt.NDArray[np.int16]
    start_time: float | None = None


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


IngestMessage = StreamStart | AudioChunk | DtmfDigit | StreamStop | Notice


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
