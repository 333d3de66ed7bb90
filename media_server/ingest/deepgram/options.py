"""The options of a Deepgram ``/v1/listen`` stream, from its query: ``parse_listen_query`` turns the websocket's
query parameters into :class:`ListenOptions`; a :class:`ListenError` names the parameter that is wrong (the route
refuses the handshake with HTTP 400, as Deepgram does). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from media_server.audio import call_rate
from media_server.calls.call import ChannelSpec
from media_server.config import CompatSettings

ENCODINGS = ("linear16", "mulaw", "alaw")
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
        """The rate the call's channels run at (:func:`media_server.audio.call_rate`)."""
        return call_rate(self.sample_rate)

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
