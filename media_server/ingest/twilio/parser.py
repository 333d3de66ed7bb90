"""Twilio Media Streams (and Telnyx's variant of it) as pure, stateful message parsing.

Twilio sends JSON text frames: ``connected``, ``start`` (streamSid, callSid, tracks,
customParameters, mediaFormat), ``media`` (track, chunk, timestamp, base64 mu-law 8 kHz), ``dtmf``,
``mark`` and ``stop``. Telnyx sends the same events with snake_case fields (``stream_id``,
``media_format``, ``sequence_number``) and does not guarantee the order of media frames: frames
are put back in ``sequence_number`` order through a small reorder window.

Tracks become channels: ``outbound`` (what the platform plays to the caller: the rep) is channel 0,
``inbound`` (the caller: the customer) is channel 1.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from media_server.audio import Audio
from media_server.calls.call import ChannelSpec
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.ingest.messages import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    DtmfDigit,
    IngestMessage,
    Notice,
    ProtocolError,
    StreamStart,
    StreamStop,
    parse_json_object,
)

SAMPLE_RATE = 8000  # G.711, as both platforms send it
REP_CHANNEL = 0
CUSTOMER_CHANNEL = 1
_TRACKS = {
    "outbound": REP_CHANNEL,
    "outbound_track": REP_CHANNEL,
    "inbound": CUSTOMER_CHANNEL,
    "inbound_track": CUSTOMER_CHANNEL,
}
_DECODERS = {
    "audio/x-mulaw": ulaw_decode,
    "pcmu": ulaw_decode,
    "mulaw": ulaw_decode,
    "audio/x-alaw": alaw_decode,
    "pcma": alaw_decode,
    "alaw": alaw_decode,
}
_KNOWN_IGNORED = {"connected", "mark"}


def _field(obj: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    return None


class TwilioParser:
    """Feed it the text frames of one websocket; it returns typed messages."""

    def __init__(self, max_payload_bytes: int = 16000, reorder_window: int = 16) -> None:
        self.max_payload_bytes = max_payload_bytes
        self.reorder_window = reorder_window
        self.variant = ""  # "twilio" or "telnyx", from the start message
        self.started = False
        self._decode = ulaw_decode
        self._expected_seq: int | None = None
        self._held: list[tuple[int, int, dict[str, Any]]] = []  # (seq, arrival, message)
        self._arrivals = 0

    def feed(self, text: str) -> list[IngestMessage]:
        message = parse_json_object(text)
        event = message.get("event")
        if not isinstance(event, str):
            raise ProtocolError("malformed_message", 'message has no "event" field')
        if event == "start":
            return [self._start(message)]
        if event in _KNOWN_IGNORED:
            # A mark still takes a sequence number: count it, or later frames wait for it in the reorder window.
            return self._in_order(message) if self.started else []
        if event not in ("media", "dtmf", "stop"):
            return [Notice("unknown_event", f"ignored unknown event type {event[:40]!r}")]
        if not self.started:
            raise ProtocolError("protocol_violation", f'"{event}" received before "start"', CLOSE_POLICY)
        return self._in_order(message)

    feed_text = feed

    def feed_binary(self, data: bytes) -> list[IngestMessage]:
        raise ProtocolError(
            "unsupported_format",
            "binary frames are not part of Twilio Media Streams: send JSON text",
            CLOSE_UNSUPPORTED,
        )

    def flush(self) -> list[IngestMessage]:
        """Release every frame still held for reordering (end of stream)."""
        out: list[IngestMessage] = []
        while self._held:
            _seq, _n, message = heapq.heappop(self._held)
            out.extend(self._handle(message))
        return out

    # -- start ---------------------------------------------------------------------------------------

    def _start(self, message: dict[str, Any]) -> StreamStart:
        if self.started:
            raise ProtocolError("protocol_violation", 'a second "start" on the same stream', CLOSE_POLICY)
        start = message.get("start")
        if not isinstance(start, dict):
            raise ProtocolError("malformed_message", 'start message has no "start" object')
        self.variant = "telnyx" if ("stream_id" in message or "media_format" in start) else "twilio"
        call_id = _field(start, "callSid", "call_control_id", "call_session_id") or _field(
            message, "streamSid", "stream_id"
        )
        if not isinstance(call_id, str) or not call_id:
            raise ProtocolError("malformed_message", "start message has no callSid / call_control_id")
        fmt = _field(start, "mediaFormat", "media_format") or {}
        if not isinstance(fmt, dict):
            raise ProtocolError("malformed_message", "mediaFormat must be an object")
        encoding = str(fmt.get("encoding", "audio/x-mulaw")).lower()
        decoder = _DECODERS.get(encoding)
        if decoder is None:
            raise ProtocolError(
                "unsupported_format",
                f"unsupported encoding {encoding!r}: send mu-law or A-law",
                CLOSE_UNSUPPORTED,
            )
        rate = _field(fmt, "sampleRate", "sample_rate")
        if rate is None:
            rate = 8000
        if rate not in (8000, "8000"):
            raise ProtocolError(
                "unsupported_format",
                f"unsupported sample rate {rate!r}: G.711 streams are 8000 Hz",
                CLOSE_UNSUPPORTED,
            )
        channels = fmt.get("channels", 1)
        if channels not in (1, "1"):
            raise ProtocolError(
                "unsupported_format",
                f"expected mono media frames, got channels={channels!r}",
                CLOSE_UNSUPPORTED,
            )
        tracks = _field(start, "tracks") or ["inbound", "outbound"]
        if not isinstance(tracks, list) or not tracks:
            raise ProtocolError("malformed_message", "tracks must be a non-empty list")
        indices = sorted({self._track(t) for t in tracks})
        params = _field(start, "customParameters", "custom_parameters") or {}
        if not isinstance(params, dict):
            raise ProtocolError("malformed_message", "customParameters must be an object")
        params = dict(params)
        client_state = start.get("client_state")
        if isinstance(client_state, str) and client_state:
            params = {**_client_state(client_state), **params}
        for key in ("accountSid", "streamSid"):
            value = start.get(key) or message.get(key)
            if isinstance(value, str):
                params.setdefault(key, value)
        self._decode = decoder
        self.started = True
        start_seq = _field(message, "sequenceNumber", "sequence_number")
        if isinstance(start_seq, str | int) and str(start_seq).isdecimal():
            self._expected_seq = int(start_seq) + 1
        speakers = {REP_CHANNEL: "rep", CUSTOMER_CHANNEL: "customer"}
        return StreamStart(
            call_id=call_id,
            channels=[ChannelSpec(i, speakers[i], SAMPLE_RATE) for i in indices],
            metadata=params,
            source=self.variant,
        )

    def _track(self, track: Any) -> int:
        if not isinstance(track, str) or track.lower() not in _TRACKS:
            raise ProtocolError("malformed_message", f"unknown track {track!r}: expected inbound or outbound")
        return _TRACKS[track.lower()]

    # -- ordered events ------------------------------------------------------------------------------

    def _in_order(self, message: dict[str, Any]) -> list[IngestMessage]:
        raw_seq = _field(message, "sequenceNumber", "sequence_number")
        try:
            seq = int(raw_seq) if raw_seq is not None else None
        except (TypeError, ValueError, OverflowError):
            raise ProtocolError("malformed_message", f"sequence number {raw_seq!r} is not a number") from None
        if seq is None or self.reorder_window == 0:
            return self._handle(message)
        if message["event"] == "stop":
            # The end of the stream: what is still held is released in order; a lost frame is not awaited.
            return self._handle(message)
        if self._expected_seq is None:
            self._expected_seq = seq
        if seq < self._expected_seq:
            return []  # a duplicate, or later than we could wait for
        self._arrivals += 1
        heapq.heappush(self._held, (seq, self._arrivals, message))
        out: list[IngestMessage] = []
        while self._held and (self._held[0][0] <= self._expected_seq or len(self._held) > self.reorder_window):
            s, _n, held = heapq.heappop(self._held)
            if s < self._expected_seq:
                continue
            self._expected_seq = s + 1
            out.extend(self._handle(held))
        return out

    def _handle(self, message: dict[str, Any]) -> list[IngestMessage]:
        event = message["event"]
        if event in _KNOWN_IGNORED:
            return []
        if event == "stop":
            return [*self._release_all(), StreamStop()]
        if event == "dtmf":
            dtmf = message.get("dtmf")
            if not isinstance(dtmf, dict) or not isinstance(dtmf.get("digit"), str):
                raise ProtocolError("malformed_message", 'dtmf message needs {"dtmf": {"digit": ...}}')
            track = dtmf.get("track", "inbound_track")
            return [DtmfDigit(self._track(track), dtmf["digit"][:1])]
        return [self._media(message)]

    def _release_all(self) -> list[IngestMessage]:
        out: list[IngestMessage] = []
        while self._held:
            _s, _n, held = heapq.heappop(self._held)
            if held["event"] != "stop":
                out.extend(self._handle(held))
        return out

    def _media(self, message: dict[str, Any]) -> Audio:
        media = message.get("media")
        if not isinstance(media, dict):
            raise ProtocolError("malformed_message", 'media message has no "media" object')
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise ProtocolError("malformed_message", "media message has no base64 payload")
        if len(payload) > self.max_payload_bytes * 4 // 3 + 4:
            raise ProtocolError("frame_too_large", f"media payload over {self.max_payload_bytes} bytes", CLOSE_TOO_BIG)
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid_payload", "media payload is not valid base64", CLOSE_INVALID_PAYLOAD) from None
        channel = self._track(media.get("track", "inbound"))
        timestamp = media.get("timestamp")
        start_time: float | None = None
        if timestamp is not None:
            try:
                start_time = int(timestamp) / 1000.0
            except (TypeError, ValueError, OverflowError):
                raise ProtocolError("malformed_message", f"media timestamp {timestamp!r} is not a number") from None
        pcm = self._decode(data) if data else np.zeros(0, dtype=np.int16)
        return Audio(channel, pcm, SAMPLE_RATE, start_time)


def _client_state(value: str) -> dict[str, Any]:
    """Telnyx carries caller-defined state as base64 (we accept base64 JSON objects of metadata)."""
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
