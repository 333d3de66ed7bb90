"""Recording metadata (RFC 7865, ``application/rs-metadata+xml``): who is in the call and which stream is whose.

Parsed strictly (defusedxml: no entities, no external references) into a small model. Besides RFC 7865's
``participantstreamassoc``, the older draft layout (``<send>`` inside ``<participant>``, ``id`` attributes)
that some SBCs still send is read too. A ``partial`` update is merged into the metadata the call already has.
Consent is not part of RFC 7865; an element ``consent`` in a participant (any namespace, for example in an
``extensiondata`` block) with ``granted`` / ``denied`` is honoured.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

NAMESPACE = "urn:ietf:params:xml:ns:recording:1"
MAX_BYTES = 256 * 1024
_MAX_ITEMS = 64


class RecordingMetadataError(ValueError):
    """Metadata that cannot be read; the message says what is wrong."""


@dataclass
class RsParticipant:
    id: str
    aor: str = ""
    name: str = ""
    sends: list[str] = field(default_factory=list)  # stream ids this participant's voice is on
    consent: str | None = None  # "granted" / "denied" / "unknown" where the SRC says so


@dataclass
class RsStream:
    id: str
    label: str
    session_id: str = ""


@dataclass
class RecordingMetadata:
    datamode: str = "complete"
    session_id: str = ""
    sip_session_ids: list[str] = field(default_factory=list)
    participants: dict[str, RsParticipant] = field(default_factory=dict)
    streams: dict[str, RsStream] = field(default_factory=dict)

    def participants_on(self, label: str) -> list[RsParticipant]:
        """The participants whose voice is on the stream with this SDP label, in document order."""
        ids = {s.id for s in self.streams.values() if s.label == label}
        return [p for p in self.participants.values() if ids.intersection(p.sends)]

    def merged(self, update: RecordingMetadata) -> RecordingMetadata:
        """This metadata with a later snapshot applied: ``complete`` replaces, ``partial`` adds and amends."""
        if update.datamode != "partial":
            return update
        out = copy.deepcopy(self)
        out.session_id = update.session_id or out.session_id
        out.sip_session_ids = update.sip_session_ids or out.sip_session_ids
        out.streams.update(update.streams)
        for pid, p in update.participants.items():
            known = out.participants.get(pid)
            if known is None:
                out.participants[pid] = p
                continue
            known.aor = p.aor or known.aor
            known.name = p.name or known.name
            known.consent = p.consent or known.consent
            if p.sends or pid in update._assoc_given:
                known.sends = p.sends
        return out

    _assoc_given: set[str] = field(default_factory=set, repr=False, compare=False)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: Element, name: str) -> list[Element]:
    return [c for c in element if _local(c.tag) == name]


def _text(element: Element | None) -> str:
    return (element.text or "").strip()[:512] if element is not None else ""


def _id(element: Element, *names: str) -> str:
    for name in names:
        value = element.get(name)
        if value:
            return value.strip()[:256]
    raise RecordingMetadataError(f"<{_local(element.tag)}> without {names[0]}")


def parse_recording_metadata(data: bytes | str) -> RecordingMetadata:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_BYTES:
        raise RecordingMetadataError(f"metadata over {MAX_BYTES} bytes")
    try:
        root = SafeET.fromstring(raw)
    except DefusedXmlException as exc:
        raise RecordingMetadataError(f"forbidden XML construct: {type(exc).__name__}") from None
    except SafeET.ParseError as exc:
        raise RecordingMetadataError(f"not well-formed XML: {exc}") from None
    except LookupError as exc:  # expat asks the codec registry for the declared encoding: encoding="TF-8"
        raise RecordingMetadataError(f"XML in an unknown encoding: {exc}") from None
    if _local(root.tag) != "recording":
        raise RecordingMetadataError(f"root element is <{_local(root.tag)}>, expected <recording>")
    if "}" in root.tag and root.tag[1:].split("}")[0] != NAMESPACE:
        raise RecordingMetadataError(f"namespace is not {NAMESPACE}")
    if sum(1 for _ in root.iter()) > _MAX_ITEMS * 16:
        raise RecordingMetadataError("too many elements")

    meta = RecordingMetadata()
    meta.datamode = _text(next(iter(_children(root, "datamode")), None)) or "complete"
    if meta.datamode not in ("complete", "partial"):
        raise RecordingMetadataError(f"datamode must be complete or partial, not {meta.datamode!r}")
    for session in _children(root, "session")[:_MAX_ITEMS]:
        meta.session_id = meta.session_id or session.get("session_id", session.get("id", "")).strip()
        meta.sip_session_ids += [_text(s) for s in _children(session, "sipSessionID") if _text(s)]
    for element in _children(root, "stream")[:_MAX_ITEMS]:
        stream_id = _id(element, "stream_id", "id")
        label = _text(next(iter(_children(element, "label")), None))
        if not label:
            raise RecordingMetadataError(f"stream {stream_id} has no <label>")
        meta.streams[stream_id] = RsStream(stream_id, label, element.get("session_id", "").strip())
    for element in _children(root, "participant")[:_MAX_ITEMS]:
        participant = RsParticipant(_id(element, "participant_id", "id"))
        for name_id in _children(element, "nameID") + _children(element, "nameId"):
            participant.aor = participant.aor or name_id.get("aor", "").strip()[:256]
            participant.name = participant.name or _text(next(iter(_children(name_id, "name")), None))
        participant.sends += [_text(s) for s in _children(element, "send") if _text(s)]  # the pre-RFC layout
        for consent in (c for c in element.iter() if _local(c.tag) == "consent"):
            participant.consent = _consent(_text(consent))
        meta.participants[participant.id] = participant
    for element in _children(root, "participantstreamassoc")[:_MAX_ITEMS]:
        pid = _id(element, "participant_id", "id")
        if pid not in meta.participants and meta.datamode == "complete":
            raise RecordingMetadataError(f"participantstreamassoc for unknown participant {pid}")
        participant = meta.participants.setdefault(pid, RsParticipant(pid))
        participant.sends = [_text(s) for s in _children(element, "send") if _text(s)]
        meta._assoc_given.add(pid)
    if meta.datamode == "complete":
        for p in meta.participants.values():
            unknown = [s for s in p.sends if s not in meta.streams]
            if unknown:
                raise RecordingMetadataError(f"participant {p.id} sends on unknown stream {unknown[0]}")
    return meta


def _consent(text: str) -> str:
    value = text.strip().lower()
    aliases = {"yes": "granted", "true": "granted", "no": "denied", "false": "denied"}
    value = aliases.get(value, value)
    if value not in ("granted", "denied", "unknown"):
        raise RecordingMetadataError(f"consent must be granted, denied or unknown, not {text!r}")
    return value
