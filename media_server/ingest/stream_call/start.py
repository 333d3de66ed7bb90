"""A ``StreamCall``'s start message (``media_server.v1.StreamStart``), checked and mapped onto a call: the decoder of
its audio, its channels and the metadata dictionary every ingest protocol hands to ``parse_metadata``. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from media_server.audio import Int16Array
from media_server.calls.call import ChannelSpec
from media_server.calls.metadata import CallMetadata, Consent, MetadataError, parse_metadata
from media_server.calls.views import CONSENT_OF_PB
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.v1 import api_pb2

Decoder = Callable[[bytes], Int16Array]

SPEAKERS = ("rep", "customer", "mixed")
MAX_CHANNELS = 8
MAX_CALL_ID = 128


class BadRequest(Exception):
    """Input the stream cannot accept (INVALID_ARGUMENT); the message says what is wrong."""


def linear16(data: bytes) -> Int16Array:
    if len(data) % 2:
        raise BadRequest(f"LINEAR16 audio must be whole 16-bit samples; got {len(data)} bytes")
    return np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)


DECODERS: dict[int, Decoder] = {
    api_pb2.LINEAR16: linear16,
    api_pb2.MULAW: ulaw_decode,
    api_pb2.ALAW: alaw_decode,
}


def decoder(start: api_pb2.StreamStart) -> Decoder:
    """The decoder of the stream's audio; the channels' rate is the stream's own (``ChannelSpec`` at it)."""
    decode = DECODERS.get(start.encoding)
    if decode is None:
        raise BadRequest("start.encoding must be LINEAR16, MULAW or ALAW")
    if not 8000 <= start.sample_rate <= 48000:
        raise BadRequest("start.sample_rate must be 8000 to 48000 (Hz)")
    if start.encoding != api_pb2.LINEAR16 and start.sample_rate != 8000:
        raise BadRequest("MULAW and ALAW audio is 8000 Hz")
    return decode


def channels(start: api_pb2.StreamStart) -> list[ChannelSpec]:
    speakers = list(start.channels) or ["mixed"]
    if len(speakers) > MAX_CHANNELS or any(s not in SPEAKERS for s in speakers):
        raise BadRequest(f"start.channels: up to {MAX_CHANNELS} of {', '.join(SPEAKERS)}, one per channel")
    return [ChannelSpec(i, s, start.sample_rate) for i, s in enumerate(speakers)]


def metadata(start: api_pb2.StreamStart) -> CallMetadata:
    try:
        return parse_metadata(metadata_dict(start))
    except MetadataError as exc:
        raise BadRequest(f"start: {exc}") from None


def metadata_dict(start: api_pb2.StreamStart) -> dict[str, Any]:
    """The start message as the metadata dictionary every ingest protocol hands to ``parse_metadata``."""
    raw: dict[str, Any] = dict(start.metadata)
    participants = []
    for p in start.participants:
        entry = {"role": p.role, "id": p.id, "name": p.name, "phone": p.phone, "email": p.email}
        entry["consent"] = CONSENT_OF_PB.get(p.consent, Consent.UNKNOWN).value
        participants.append(entry)
    if participants:
        raw["participants"] = participants
    options = start.recognition
    if options.HasField("endpointing_ms"):
        raw["endpointing"] = options.endpointing_ms
    if options.HasField("utterance_end_ms"):
        raw["utteranceEndMs"] = options.utterance_end_ms
    if options.HasField("interim_results"):
        raw["interimResults"] = options.interim_results
    if options.keyterms:
        raw["keyterms"] = list(options.keyterms)
    if options.redact:
        raw["redact"] = list(options.redact)
    raw.pop("token", None)  # keys travel in the RPC's metadata only
    return raw
