"""Raw L16 over a websocket, as jambonz ``listen`` and FreeSWITCH mod_audio_fork / mod_audio_stream send it.

The first text frame is JSON metadata: a call id (``callSid``, ``callId``, ``call_id`` or ``uuid``),
``sampleRate`` (8000 or 16000; ``"8k"``/``"16k"`` too), ``mixType`` (``mono``, ``stereo`` or
``mixed``), optional ``participants`` and any call metadata (top level or under ``metadata``).
Every later frame is binary little-endian 16-bit PCM; stereo is interleaved, left = rep,
right = customer. A later text frame ``{"event": "stop"}`` ends the call as completed, as does a
normal websocket close.

``mono`` carries one party (the ``speaker`` field says which; default ``customer``, the caller
as jambonz forks it); ``mixed`` carries both parties summed into one channel.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np

from media_server.audio import Audio
from media_server.calls.call import ChannelSpec
from media_server.ingest.messages import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
    IngestMessage,
    Notice,
    ProtocolError,
    StreamStart,
    StreamStop,
    parse_json_object,
)

SAMPLE_RATES = {8000: 8000, 16000: 16000, "8000": 8000, "16000": 16000, "8k": 8000, "16k": 16000}
_CALL_ID_KEYS = ("callSid", "callId", "call_id", "uuid", "callUuid", "call_sid")
_FORMAT_KEYS = {"sampleRate", "sample_rate", "mixType", "mix_type", "speaker", "metadata", *_CALL_ID_KEYS}


class L16Parser:
    def __init__(self, max_frame_bytes: int = 64 * 1024) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.started = False
        self.sample_rate = 0
        self.channels = 1
        self._mono_channel = 0

    def feed_text(self, text: str) -> list[IngestMessage]:
        message = parse_json_object(text)
        if not self.started:
            return [self._start(message)]
        kind = message.get("event") or message.get("type")
        if kind in ("stop", "end", "hangup"):
            return [StreamStop()]
        return [Notice("unknown_event", f"ignored text frame {str(kind or message)[:80]!r} after the metadata")]

    def feed_binary(self, data: bytes) -> list[IngestMessage]:
        if not self.started:
            raise ProtocolError("protocol_violation", "binary audio before the JSON metadata frame", CLOSE_POLICY)
        if len(data) > self.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large",
                f"audio frame of {len(data)} bytes is over {self.max_frame_bytes}",
                CLOSE_TOO_BIG,
            )
        frame_bytes = 2 * self.channels
        if len(data) % frame_bytes:
            raise ProtocolError(
                "invalid_payload",
                f"audio frame of {len(data)} bytes is not a whole number of {frame_bytes}-byte sample frames",
                CLOSE_INVALID_PAYLOAD,
            )
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        if self.channels == 1:
            return [Audio(self._mono_channel, pcm, self.sample_rate)]
        frames = pcm.reshape(-1, 2)
        return [
            Audio(0, frames[:, 0].copy(), self.sample_rate),
            Audio(1, frames[:, 1].copy(), self.sample_rate),
        ]

    def flush(self) -> list[IngestMessage]:
        return []  # nothing is held back: L16 frames arrive in order

    def _start(self, message: dict[str, Any]) -> StreamStart:
        rate = message.get("sampleRate", message.get("sample_rate"))
        if rate is None:
            raise ProtocolError("unsupported_format", "metadata has no sampleRate (8000 or 16000)", CLOSE_UNSUPPORTED)
        if isinstance(rate, list | dict) or rate not in SAMPLE_RATES:
            raise ProtocolError(
                "unsupported_format", f"unsupported sampleRate {rate!r}: use 8000 or 16000", CLOSE_UNSUPPORTED
            )
        mix = str(message.get("mixType", message.get("mix_type", "mono"))).lower()
        if mix not in ("mono", "stereo", "mixed"):
            raise ProtocolError(
                "unsupported_format", f"unsupported mixType {mix!r}: mono, stereo or mixed", CLOSE_UNSUPPORTED
            )
        call_id = next((str(message[k]) for k in _CALL_ID_KEYS if message.get(k)), "") or str(uuid.uuid4())
        self.sample_rate = SAMPLE_RATES[rate]
        self.channels = 2 if mix == "stereo" else 1
        if mix == "stereo":
            specs = [ChannelSpec(0, "rep", self.sample_rate), ChannelSpec(1, "customer", self.sample_rate)]
            self._mono_channel = 0
        elif mix == "mixed":
            specs = [ChannelSpec(0, "mixed", self.sample_rate)]
            self._mono_channel = 0
        else:
            speaker = str(message.get("speaker", "customer")).lower()
            if speaker not in ("rep", "customer"):
                raise ProtocolError("malformed_message", f"speaker must be rep or customer, not {speaker!r}")
            self._mono_channel = 0 if speaker == "rep" else 1
            specs = [ChannelSpec(self._mono_channel, speaker, self.sample_rate)]
        metadata: dict[str, Any] = {k: v for k, v in message.items() if k not in _FORMAT_KEYS}
        nested = message.get("metadata")
        if isinstance(nested, str) and nested.strip().startswith("{"):
            try:
                nested = json.loads(nested)
            except (json.JSONDecodeError, RecursionError):
                raise ProtocolError("malformed_message", "metadata is a string but not a JSON object") from None
        if isinstance(nested, dict):
            metadata.update(nested)
        elif nested is not None:
            raise ProtocolError("malformed_message", "metadata must be a JSON object")
        self.started = True
        return StreamStart(call_id=call_id, channels=specs, metadata=metadata, source="l16")
