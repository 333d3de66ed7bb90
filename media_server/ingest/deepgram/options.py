"""Deepgram's live streaming protocol (``/v1/listen``), as pure functions: the query, the audio, the messages.

``parse_listen_query`` turns the websocket's query parameters into ``ListenOptions`` (a ``ListenError`` names
the parameter that is wrong: the route refuses the handshake with HTTP 400, as Deepgram does). ``AudioDecoder``
turns binary frames (linear16, mulaw or alaw, interleaved channels) into per-channel int16 audio at a rate the
recognizer takes. The ``*_message`` functions build the JSON messages Deepgram sends (``Results``,
``SpeechStarted``, ``UtteranceEnd``, ``Metadata``, ``Error``) in the shapes of Deepgram's API reference and of the
deepgram-sdk response types, from the call's protobuf events. Nothing here does I/O: ``media_server/api/deepgram.py``
runs the websocket.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from media_server.calls.call import ChannelSpec
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.config import CompatSettings
from media_server.v1 import events_pb2 as pb
from models.audio import StreamResampler, float32_to_int16, int16_to_float32

ENCODINGS = ("linear16", "mulaw", "alaw")
#: Rates the recognizer takes as they come; other rates are resampled to 16 kHz.
NATIVE_RATES = (8000, 16000)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
MAX_CHANNELS = 8
#: Endpointing below this cuts an utterance at every breath with a frame-level VAD (Deepgram's default is 10 ms).
MIN_ENDPOINTING_MS = 100

#: Deepgram's ``redact`` values, as the redaction types of ``media_server/insights/redaction.py``.
REDACT_ALIASES: dict[str, tuple[str, ...]] = {
    "pci": ("card", "cvv", "expiry"),
    "ssn": ("ssn",),
    "numbers": ("card", "cvv", "expiry", "ssn", "phone"),
    "aggressive_numbers": ("card", "cvv", "expiry", "ssn", "phone"),
    "true": ("card", "cvv", "expiry", "ssn", "phone"),
    "pii": ("card", "cvv", "expiry", "ssn", "phone", "email"),
    "phi": ("ssn", "phone", "email"),
    "credit_card": ("card",),
    "credit_card_expiration": ("expiry",),
    "cvv": ("cvv",),
    "phone_number": ("phone",),
    "email_address": ("email",),
    # this server's own names
    "card": ("card",),
    "expiry": ("expiry",),
    "phone": ("phone",),
    "email": ("email",),
    "false": (),
}

# Metadata keys of this server that may come as query parameters (as in every other ingest's metadata).
_OUR_METADATA = frozenset(
    {
        "team",
        "rep_id",
        "rep_name",
        "rep_email",
        "customer_phone",
        "customer_email",
        "customer_name",
        "customer_id",
        "rep_consent",
        "customer_consent",
        "consent",
        "participants",
    }
)
_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ListenError(ValueError):
    """A query parameter this server cannot honour; the message names it and says what would do."""


@dataclass(frozen=True)
class ListenOptions:
    encoding: str
    sample_rate: int
    channels: int = 1
    multichannel: bool = False
    interim_results: bool = False
    speech_final: bool = True  # endpointing=false: finals still come, never marked speech_final
    vad_events: bool = False
    diarize: bool = False
    punctuate: bool = False
    call_id: str | None = None
    speaker: str | None = None  # whose voice a mono stream carries, as the client declared it; None: not declared
    metadata: dict[str, Any] = field(default_factory=dict)  # raw call metadata, for parse_metadata
    ignored: tuple[str, ...] = ()  # parameters accepted without effect (logged)

    @property
    def call_rate(self) -> int:
        """The rate the call's channels run at: the stream's own where the recognizer takes it, else 16 kHz."""
        return self.sample_rate if self.sample_rate in NATIVE_RATES else 16000

    def channel_specs(self, compat: CompatSettings) -> list[ChannelSpec]:
        """Mono (or mixed down): one channel. Its voice is the declared ``speaker`` (``mixed``: both parties,
        diarized); else, with ``diarize``, both parties (``mixed``, diarized); else one voice of the role
        ``compat.speaker`` assumes, not diarized (nobody asked who speaks). Multichannel: two are the rep (0) and
        the customer (1), as on a telephony platform's stereo; more are each "mixed", diarized only with ``diarize``.
        """
        rate = self.call_rate
        if not self.multichannel or self.channels == 1:
            if self.speaker is not None:
                return [ChannelSpec(0, self.speaker, rate)]
            if self.diarize:
                return [ChannelSpec(0, "mixed", rate)]
            return [ChannelSpec(0, compat.speaker, rate, diarize=False)]
        if self.channels == 2:
            return [ChannelSpec(0, "rep", rate), ChannelSpec(1, "customer", rate)]
        return [ChannelSpec(i, "mixed", rate, diarize=self.diarize) for i in range(self.channels)]

    def call_metadata(self, compat: CompatSettings) -> dict[str, Any]:
        """The raw call metadata, with the consent ``compat`` assumes for a participant the stream says nothing of
        (a ``consent`` object or ``participants`` list, read after these, still overrides it)."""
        raw = dict(self.metadata)
        raw.setdefault("rep_consent", compat.consent)
        raw.setdefault("customer_consent", compat.consent)
        return raw


def parse_listen_query(items: Iterable[tuple[str, str]]) -> ListenOptions:
    """The options of a ``/v1/listen`` stream from its query (repeated parameters kept in order)."""
    query = _Query(items)
    query.take_all("token")  # the key, read by the route
    encoding_raw = query.take("encoding")
    if encoding_raw is None:
        raise ListenError(
            "encoding is required: this server takes raw audio, encoding=linear16, mulaw or alaw with sample_rate "
            "(containerised audio such as WAV or MP3 is not read)"
        )
    encoding = encoding_raw.strip().lower()
    if encoding not in ENCODINGS:
        raise ListenError(f"encoding={encoding_raw} is not supported: use linear16, mulaw or alaw")
    rate_raw = query.take("sample_rate")
    if rate_raw is None:
        raise ListenError(f"sample_rate is required with encoding={encoding} (8000 to 48000)")
    channels_raw = query.take("channels")
    options = ListenOptions(
        encoding=encoding,
        sample_rate=_int(rate_raw, "sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
        channels=1 if channels_raw is None else _int(channels_raw, "channels", 1, MAX_CHANNELS),
        multichannel=_flag(query.take("multichannel"), "multichannel"),
        interim_results=_flag(query.take("interim_results"), "interim_results"),
        vad_events=_flag(query.take("vad_events"), "vad_events"),
        diarize=_flag(query.take("diarize"), "diarize") | (query.take("diarize_model") is not None),
        punctuate=_flag(query.take("punctuate"), "punctuate") | _flag(query.take("smart_format"), "smart_format"),
    )
    raw = _extra(query)  # first: the recognition options below may not be overridden by extra pairs
    endpointing = query.take("endpointing")
    if endpointing is not None and endpointing.strip().lower() == "false":
        # Finals still end utterances at the server's endpointing; none is marked speech_final.
        options = replace(options, speech_final=False)
    elif endpointing is not None and endpointing.strip().lower() != "true":
        ms = _int(endpointing, "endpointing", 0, 5000, "a number of milliseconds or false")
        raw["endpointing"] = max(ms, MIN_ENDPOINTING_MS)
    utterance_end = query.take("utterance_end_ms")
    # Deepgram sends UtteranceEnd only when asked to; so does the call then.
    raw["utterance_end_ms"] = 0 if utterance_end is None else _int(utterance_end, "utterance_end_ms", 0, 10000)
    raw["interim_results"] = options.interim_results
    terms = [t for name in ("keyterm", "keyterms", "keywords") for t in query.take_all(name) if t.strip()]
    if terms:
        raw["keyterms"] = terms  # keywords' ":boost" suffix is dropped by parse_metadata
    redact = redaction_types(query.take_all("redact"))
    if redact:
        raw["redact"] = list(redact)
    tags = query.take_all("tag")
    if tags:
        raw["tag"] = ",".join(tags)[:512]
    speaker = query.take("speaker")
    if speaker is not None and speaker not in ("rep", "customer", "mixed"):
        raise ListenError(f"speaker={speaker}: use rep, customer or mixed")
    call_id = query.take("call_id") or query.take("callId")
    if call_id is not None and not _CALL_ID.fullmatch(call_id):
        raise ListenError("call_id: 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    ignored = []
    for name in query.names():
        if snake(name) in _OUR_METADATA:
            raw[snake(name)] = query.take(name)
        else:  # Deepgram's formatting and features this server does not have, or parameters new to both of us:
            ignored.append(name)  # accepted, as Deepgram accepts parameters it has no use for
            query.take_all(name)
    return replace(options, call_id=call_id, speaker=speaker, metadata=raw, ignored=tuple(ignored))


class _Query:
    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in items:
            self._values.setdefault(key, []).append(value)

    def take(self, name: str) -> str | None:
        """The parameter's last value, consumed."""
        found = self._values.pop(name, None)
        return found[-1] if found else None

    def take_all(self, name: str) -> list[str]:
        return self._values.pop(name, [])

    def names(self) -> list[str]:
        return list(self._values)


def _extra(query: _Query) -> dict[str, Any]:
    """Deepgram's ``extra=key:value`` pairs (and the SDK's ``extra[key]=value`` form): call metadata."""
    raw: dict[str, Any] = {}
    for pair in query.take_all("extra"):
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ListenError(f"extra={pair}: expected key:value")
        raw[snake(key.strip())] = value.strip()
    for name in query.names():
        if name.startswith("extra[") and name.endswith("]") and len(name) > 7:
            raw[snake(name[6:-1])] = query.take(name)
    raw.pop("token", None)  # a key is never metadata
    return raw


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """``repName`` -> ``rep_name``: metadata keys come in either case."""
    return _CAMEL.sub("_", name).lower().replace("-", "_")


def redaction_types(values: Sequence[str]) -> tuple[str, ...]:
    """Deepgram's ``redact`` values (repeated, or comma-separated) as this server's redaction types."""
    out: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in REDACT_ALIASES:
                raise ListenError(
                    f"redact={name} is not supported: this server redacts pci, ssn, numbers, pii and phi "
                    "(card numbers, CVVs, expiry dates, SSNs, phone numbers and e-mail addresses)"
                )
            out += REDACT_ALIASES[name]
    return tuple(dict.fromkeys(out))


def _int(value: str, name: str, low: int, high: int, what: str = "a whole number") -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise ListenError(f"{name}={value}: expected {what}") from None
    if not low <= number <= high:
        raise ListenError(f"{name}={value}: must be between {low} and {high}")
    return number


def _flag(value: str | None, name: str) -> bool:
    """Deepgram's booleans; absent is false, as every one of its flags defaults to false."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", ""):
        return True
    if lowered in ("false", "0"):
        return False
    raise ListenError(f"{name}={value}: expected true or false")


# -- audio ---------------------------------------------------------------------------------------------


class AudioError(ValueError):
    """A binary frame that is not whole samples of every channel."""


class AudioDecoder:
    """Binary frames of interleaved audio in, int16 audio per call channel out (mixed down unless multichannel,
    resampled to 16 kHz when the stream's rate is not one the recognizer takes)."""

    def __init__(self, options: ListenOptions) -> None:
        self.encoding = options.encoding
        self.channels = options.channels
        self.multichannel = options.multichannel and options.channels > 1
        self.sample_rate = options.sample_rate
        self.frames = 0  # samples per channel received
        width = 2 if self.encoding == "linear16" else 1
        self._frame_bytes = width * self.channels
        outputs = self.channels if self.multichannel else 1
        self._resamplers = (
            [StreamResampler(self.sample_rate, options.call_rate) for _ in range(outputs)]
            if options.call_rate != self.sample_rate
            else []
        )

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def decode(self, data: bytes) -> list[npt.NDArray[np.int16]]:
        """One frame: the audio of each call channel (index = position in the list)."""
        if self.encoding == "linear16" and len(data) % 2:
            raise AudioError(f"linear16 audio is whole 16-bit samples: a frame of {len(data)} bytes has half a sample")
        if len(data) % self._frame_bytes:
            raise AudioError(
                f"a frame of {len(data)} bytes is not whole samples of {self.channels} interleaved channels "
                f"({self._frame_bytes} bytes each)"
            )
        if self.encoding == "linear16":
            pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        elif self.encoding == "mulaw":
            pcm = ulaw_decode(data)
        else:
            pcm = alaw_decode(data)
        frames = pcm.reshape(-1, self.channels)
        self.frames += frames.shape[0]
        if self.multichannel:
            out = [np.ascontiguousarray(frames[:, i]) for i in range(self.channels)]
        elif self.channels == 1:
            out = [frames[:, 0].copy()]
        else:
            out = [np.round(frames.astype(np.float32).mean(axis=1)).astype(np.int16)]
        if self._resamplers:
            out = [float32_to_int16(r.process(int16_to_float32(a))) for r, a in zip(self._resamplers, out, strict=True)]
        return out

    def flush(self) -> list[npt.NDArray[np.int16]]:
        """What the resamplers still hold, at the end of the stream."""
        return [float32_to_int16(r.process(np.zeros(0, dtype=np.float32), last=True)) for r in self._resamplers]


# -- messages out --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What ``model_info`` says: the engine that really transcribes, under a stable UUID derived from its name."""

    name: str
    version: str = "1"
    arch: str = "whisper"

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"media-server:{self.name}:{self.version}"))

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


_EDGE_PUNCT = '.,?!;:"“”‘’()…¿¡-—'
_PLACEHOLDER = re.compile(r"^\[[A-Z_]+\]")


def plain(text: str) -> str:
    """A transcript without punctuation and casing, as Deepgram's ``punctuate=false``: punctuation at the edges of
    each word goes ("Hello," -> "hello"), inside it stays ("don't", "3.5"); redaction placeholders stay as they are."""
    return " ".join(w for w in (plain_word(t) for t in text.split()) if w)


def plain_word(word: str) -> str:
    word = word.strip()
    placeholder = _PLACEHOLDER.match(word)
    if placeholder:
        return placeholder.group()
    return word.strip(_EDGE_PUNCT).lower()


def speaker_number(label: str) -> int | None:
    """ "speaker 2" -> 1 (Deepgram counts from 0); None when the word has no diarized speaker."""
    head, _, number = label.rpartition(" ")
    if head == "speaker" and number.isdigit():
        return max(0, int(number) - 1)
    return None


def results_message(
    transcript: pb.Transcript,
    options: ListenOptions,
    channels: int,
    request_id: str,
    model: ModelInfo,
    *,
    from_finalize: bool = False,
    default_speaker: int = 0,
) -> dict[str, Any]:
    """A ``Results`` message. ``default_speaker``: the diarized speaker of words that have none yet (interims)."""
    words = []
    for w in transcript.words:
        entry: dict[str, Any] = {
            "word": plain_word(w.word),
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "confidence": round(w.confidence, 4),
            "punctuated_word": w.word.strip() if options.punctuate else plain_word(w.word),
        }
        if options.diarize:
            number = speaker_number(w.speaker)
            entry["speaker"] = default_speaker if number is None else number
        words.append(entry)
    text = transcript.text.strip() if options.punctuate else plain(transcript.text)
    final = transcript.is_final
    return {
        "type": "Results",
        "channel_index": [transcript.channel, channels],
        "duration": round(max(0.0, transcript.end - transcript.start), 3),
        "start": round(transcript.start, 3),
        "is_final": final,
        "speech_final": final and transcript.speech_final and options.speech_final and not from_finalize,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [{"transcript": text, "confidence": round(transcript.confidence, 4), "words": words}]
        },
        "metadata": {"request_id": request_id, "model_info": model.as_json(), "model_uuid": model.uuid},
    }


def speech_started_message(event: pb.SpeechStarted, channels: int) -> dict[str, Any]:
    return {"type": "SpeechStarted", "channel": [event.channel, channels], "timestamp": round(event.start, 3)}


def utterance_end_message(event: pb.UtteranceEnd, channels: int) -> dict[str, Any]:
    return {
        "type": "UtteranceEnd",
        "channel": [event.channel, channels],
        "last_word_end": round(event.last_word_end, 3),
    }


def metadata_message(
    request_id: str,
    created: datetime,
    duration: float,
    channels: int,
    sha256: str,
    model: ModelInfo,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary sent last, before the server closes the stream (after CloseStream)."""
    message: dict[str, Any] = {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": channels,
        "models": [model.uuid],
        "model_info": {model.uuid: model.as_json()},
    }
    if warnings:
        message["warnings"] = [{"type": "warning", "message": w} for w in warnings]
    return message


ErrorVariant = Literal["SchemaError", "ProtocolError", "DataError"]


def error_message(
    description: str, variant: ErrorVariant = "ProtocolError", message: str | None = None
) -> dict[str, Any]:
    """An ``Error`` message: the stream goes on (a control message it could not use, audio after CloseStream)."""
    out: dict[str, Any] = {"type": "Error", "variant": variant, "description": description}
    if message is not None:
        out["message"] = message[:256]
    return out
