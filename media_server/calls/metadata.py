"""Call metadata as platforms send it (Twilio customParameters, jambonz/FreeSWITCH JSON), normalised.

Keys are accepted in camelCase or snake_case; values may be strings (Twilio's customParameters are
always strings) or JSON values. Recognised keys:

- ``team``, ``repId``, ``repName``, ``customerPhone``, ``customerEmail``, ``customerName``
- consent: ``repConsent`` / ``customerConsent`` = ``granted`` | ``denied`` | ``unknown``, or a
  ``consent`` object ``{"rep": ..., "customer": ...}``, or per entry of ``participants``
- ``participants``: a list of ``{"role": "rep"|"customer", "id", "name", "phone", "email", "consent"}``
- ``token``: the API key, for platforms that cannot set an Authorization header
- recognition, per call (as Deepgram's query parameters): ``endpointing`` (ms of silence that ends an
  utterance), ``utteranceEndMs`` (silence before an utterance-end event; 0 for none),
  ``interimResults`` (true/false), ``keyterms`` (a list, or a comma-separated string, of names and
  phrases to favour; ``keywords`` too), ``redact`` (a list, or a comma-separated string, of redaction types
  hidden on this call in addition to the team's: card, cvv, expiry, ssn, phone, email)

Anything else is kept as free-form string metadata on the call.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from media_server.insights.redaction import REDACTION_TYPES


class Consent(enum.StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    UNKNOWN = "unknown"


class Role(enum.StrEnum):
    REP = "rep"
    CUSTOMER = "customer"


class MetadataError(ValueError):
    """Metadata that cannot be understood; the message says which field and why."""


@dataclass
class ParticipantInfo:
    role: Role
    id: str = ""
    name: str = ""
    phone: str = ""
    email: str = ""
    consent: Consent = Consent.UNKNOWN
    consent_given: bool = False  # the stream said this consent (even "unknown"); False: a protocol default may apply

    def give_consent(self, consent: Consent) -> None:
        self.consent = consent
        self.consent_given = True


@dataclass
class RecognitionOptions:
    """Per-call overrides of the server's streaming settings; ``None`` keeps the server's value."""

    endpointing_ms: int | None = None
    utterance_end_ms: int | None = None
    interim_results: bool | None = None
    keyterms: tuple[str, ...] = ()
    redact: tuple[str, ...] = ()  # redaction types added to the team's for this call


@dataclass
class CallMetadata:
    team: str | None = None
    token: str | None = None
    rep: ParticipantInfo = field(default_factory=lambda: ParticipantInfo(Role.REP))
    customer: ParticipantInfo = field(default_factory=lambda: ParticipantInfo(Role.CUSTOMER))
    extra: dict[str, str] = field(default_factory=dict)
    recognition: RecognitionOptions = field(default_factory=lambda: RecognitionOptions())

    @property
    def participants(self) -> tuple[ParticipantInfo, ParticipantInfo]:
        return (self.rep, self.customer)

    def participant(self, role: Role) -> ParticipantInfo:
        return self.rep if role is Role.REP else self.customer


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_MAX_EXTRA = 64


def _snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_")


def parse_consent(value: Any, where: str) -> Consent:
    if value is None or value == "":
        return Consent.UNKNOWN
    if isinstance(value, bool):
        return Consent.GRANTED if value else Consent.DENIED
    text = str(value).strip().lower()
    aliases = {"yes": "granted", "true": "granted", "no": "denied", "false": "denied"}
    text = aliases.get(text, text)
    try:
        return Consent(text)
    except ValueError:
        raise MetadataError(f"{where}: consent must be granted, denied or unknown, not {value!r}") from None


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)[:256]
    raise MetadataError(f"{where}: expected a string")


def parse_metadata(raw: Mapping[str, Any] | None) -> CallMetadata:
    meta = CallMetadata()
    if not raw:
        return meta
    if not isinstance(raw, Mapping):
        raise MetadataError("metadata must be a JSON object")
    original = {_snake(str(k)): str(k) for k in raw}
    values = {_snake(str(k)): v for k, v in raw.items()}
    meta.team = _str(values.pop("team", None), "team") or None
    meta.token = _str(values.pop("token", None), "token") or None
    rep, customer = meta.rep, meta.customer
    rep.id = _str(values.pop("rep_id", None), "repId")
    rep.name = _str(values.pop("rep_name", None), "repName")
    rep.email = _str(values.pop("rep_email", None), "repEmail")
    customer.phone = _str(values.pop("customer_phone", None), "customerPhone")
    customer.email = _str(values.pop("customer_email", None), "customerEmail")
    customer.name = _str(values.pop("customer_name", None), "customerName")
    customer.id = _str(values.pop("customer_id", None), "customerId")
    for participant, key, name in (
        (rep, "rep_consent", "repConsent"),
        (customer, "customer_consent", "customerConsent"),
    ):
        value = values.pop(key, None)
        if value not in (None, ""):
            participant.give_consent(parse_consent(value, name))

    consent = values.pop("consent", None)
    if isinstance(consent, str) and consent.strip().startswith("{"):
        consent = _json(consent, "consent")
    if consent is not None:
        if not isinstance(consent, Mapping):
            raise MetadataError('consent: expected an object like {"rep": "granted", "customer": "denied"}')
        for key, value in consent.items():
            role = _role(key, "consent")
            meta.participant(role).give_consent(parse_consent(value, f"consent.{key}"))

    meta.recognition = _recognition(values)

    participants = values.pop("participants", None)
    if isinstance(participants, str) and participants.strip().startswith("["):
        participants = _json(participants, "participants")
    if participants is not None:
        if not isinstance(participants, list):
            raise MetadataError("participants: expected a list")
        for i, item in enumerate(participants):
            if not isinstance(item, Mapping):
                raise MetadataError(f"participants[{i}]: expected an object")
            entry = {_snake(str(k)): v for k, v in item.items()}
            target = meta.participant(_role(entry.get("role"), f"participants[{i}].role"))
            for attr in ("id", "name", "phone", "email"):
                if entry.get(attr) not in (None, ""):
                    setattr(target, attr, _str(entry[attr], f"participants[{i}].{attr}"))
            if "consent" in entry:
                target.give_consent(parse_consent(entry["consent"], f"participants[{i}].consent"))

    for key, value in list(values.items())[:_MAX_EXTRA]:
        if isinstance(value, str | int | float | bool):
            meta.extra[original[key]] = (json.dumps(value) if isinstance(value, bool) else str(value))[
                :512
            ]  # true, not True
    return meta


def _role(value: Any, where: str) -> Role:
    text = str(value or "").strip().lower()
    aliases = {"agent": "rep", "caller": "customer", "callee": "customer", "client": "customer"}
    try:
        return Role(aliases.get(text, text))
    except ValueError:
        raise MetadataError(f"{where}: role must be rep or customer, not {value!r}") from None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{where}: invalid JSON ({exc.msg})") from None


_MAX_KEYTERMS = 100


def _recognition(values: dict[str, Any]) -> RecognitionOptions:
    options = RecognitionOptions()
    if "endpointing" in values:
        options.endpointing_ms = _int_range(values.pop("endpointing"), "endpointing", 10, 5000)
    if "utterance_end_ms" in values:
        options.utterance_end_ms = _int_range(values.pop("utterance_end_ms"), "utteranceEndMs", 0, 10000)
    if "interim_results" in values:
        options.interim_results = _bool(values.pop("interim_results"), "interimResults")
    terms: list[str] = []
    for key in ("keyterms", "keyterm", "keywords"):
        raw = values.pop(key, None)
        if raw is None:
            continue
        if isinstance(raw, str):
            raw = _json(raw, key) if raw.strip().startswith("[") else raw.split(",")
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise MetadataError(f"{key}: expected a list of strings or a comma-separated string")
        # Deepgram's keywords may carry an intensifier ("Acme:2"): the boost is the prompt itself here.
        terms += [t.split(":")[0].strip()[:64] for t in raw if t.strip()]
    if len(terms) > _MAX_KEYTERMS:
        raise MetadataError(f"keyterms: at most {_MAX_KEYTERMS} terms")
    options.keyterms = tuple(dict.fromkeys(terms))
    options.redact = _redact(values.pop("redact", None))
    return options


def _redact(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = _json(raw, "redact") if raw.strip().startswith("[") else raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise MetadataError("redact: expected a list of redaction types or a comma-separated string")
    names = tuple(dict.fromkeys(t.strip().lower() for t in raw if t.strip()))
    unknown = [n for n in names if n not in REDACTION_TYPES]
    if unknown:
        raise MetadataError(f"redact: unknown type {unknown[0]!r}; valid: {', '.join(REDACTION_TYPES)}")
    return names


def _int_range(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or value is None:
        raise MetadataError(f"{where}: expected a number of milliseconds")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise MetadataError(f"{where}: expected a number of milliseconds, not {value!r}") from None
    if not low <= number <= high:
        raise MetadataError(f"{where}: must be between {low} and {high}")
    return number


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise MetadataError(f"{where}: expected true or false, not {value!r}")
