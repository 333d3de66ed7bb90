"""Who is the rep, and whose voice is on which stream: RFC 7865 participants mapped onto the call's roles.

The rep is, in this order: the participant whose AOR's domain is one of the team's (``rep_domains``), the
participant sending on the stream labelled ``rep_label``, the first participant. Every other participant
is a customer (the call keeps the first one's identity; further ones go to the call's metadata).
A stream carries ``rep``, ``customer`` or ``mixed`` (both, or nobody the metadata names) voices.
Without metadata, the stream labelled ``rep_label`` (else the first stream) is the rep's, the others customers'.
Consent comes from the metadata, else from SIP headers (``X-Rep-Consent``, ``X-Customer-Consent``,
``X-Recording-Consent`` for both), else the configured default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, parse_consent
from media_server.ingest.siprec.metadata import RecordingMetadata, RsParticipant

_PHONE = re.compile(r"^\+?[0-9][0-9\-.()]{3,30}$")


@dataclass(frozen=True)
class RoleRule:
    rep_domains: tuple[str, ...] = ()
    rep_label: str | None = None
    default_consent: Consent = Consent.UNKNOWN


@dataclass
class Assignment:
    metadata: CallMetadata
    speakers: dict[str, str]  # stream label -> "rep" | "customer" | "mixed"


def aor_parts(aor: str) -> tuple[str, str]:
    """(user, domain) of ``sip:user@domain;params`` or ``tel:+1555...``."""
    text = aor.strip().strip("<>")
    scheme, _, rest = text.partition(":")
    rest = rest.split(";")[0].split("?")[0]
    if scheme.lower() == "tel":
        return rest, ""
    user, at, domain = rest.rpartition("@")
    if not at:
        return "", rest.split(":")[0].lower()
    return user, domain.split(":")[0].lower()


def _info(p: RsParticipant, info: ParticipantInfo) -> None:
    user, _ = aor_parts(p.aor)
    info.id = p.aor[:256]
    info.name = p.name[:256]
    if _PHONE.match(user):
        info.phone = user


def _pick_rep(meta: RecordingMetadata, rule: RoleRule) -> RsParticipant | None:
    participants = list(meta.participants.values())
    domains = {d.lower() for d in rule.rep_domains}
    for p in participants:
        if aor_parts(p.aor)[1] in domains:
            return p
    if rule.rep_label is not None:
        on_label = meta.participants_on(rule.rep_label)
        if on_label:
            return on_label[0]
    return participants[0] if participants else None


def header_consent(headers: dict[str, str], rule: RoleRule) -> tuple[Consent, Consent]:
    both = headers.get("x-recording-consent")
    base = parse_consent(both, "X-Recording-Consent") if both else rule.default_consent
    rep = headers.get("x-rep-consent")
    customer = headers.get("x-customer-consent")
    return (
        parse_consent(rep, "X-Rep-Consent") if rep else base,
        parse_consent(customer, "X-Customer-Consent") if customer else base,
    )


def assign(
    meta: RecordingMetadata | None, labels: list[str], headers: dict[str, str], rule: RoleRule, extra: dict[str, str]
) -> Assignment:
    """Raises ``MetadataError`` for a consent header it cannot read."""
    call = CallMetadata()
    call.extra.update(extra)
    rep_consent, customer_consent = header_consent(headers, rule)
    call.rep.consent, call.customer.consent = rep_consent, customer_consent
    speakers: dict[str, str] = {}
    if meta is None or not meta.participants:
        rep_label = rule.rep_label if rule.rep_label in labels else (labels[0] if labels else None)
        for label in labels:
            speakers[label] = "rep" if label == rep_label else "customer"
        return Assignment(call, speakers)
    rep = _pick_rep(meta, rule)
    customers = [p for p in meta.participants.values() if p is not rep]
    if rep is not None:
        _info(rep, call.rep)
        call.rep.consent = Consent(rep.consent) if rep.consent else rep_consent
    if customers:
        _info(customers[0], call.customer)
        # All customers share the customer role: the strictest consent among them decides.
        stated = [Consent(p.consent) for p in customers if p.consent]
        if Consent.DENIED in stated:
            call.customer.consent = Consent.DENIED
        elif stated and len(stated) == len(customers) and all(c is Consent.GRANTED for c in stated):
            call.customer.consent = Consent.GRANTED
        elif stated:
            call.customer.consent = Consent.UNKNOWN if customer_consent is not Consent.GRANTED else customer_consent
    for i, p in enumerate(customers[1:], start=2):
        call.extra[f"participant{i}"] = " ".join(x for x in (p.name, f"<{p.aor}>" if p.aor else "") if x)[:512]
    if meta.sip_session_ids:
        call.extra.setdefault("sipSessionId", meta.sip_session_ids[0][:512])
    for label in labels:
        voices = meta.participants_on(label)
        roles = {"rep" if p is rep else "customer" for p in voices}
        speakers[label] = roles.pop() if len(roles) == 1 else "mixed"
    return Assignment(call, speakers)
