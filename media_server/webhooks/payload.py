"""What leaves the server for a CRM: a call's log (``call_ended`` webhooks, the export), made from the stored call,
which keeps only what consent allows (a participant who did not consent has no identity there, their channel no
transcript). The transcript, when a webhook includes it, is redacted once more with every redaction type, whatever
the team's policy: card numbers, codes, SSNs, phone numbers and e-mail addresses said in a call never reach a CRM.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from media_server.insights.redaction import Redactor
from media_server.store.records import CallRecord

_LEFT_OUT = ("team", "snippet", "legalHold")

CSV_COLUMNS = (
    "callId",
    "startedAt",
    "endedAt",
    "durationSeconds",
    "status",
    "endReason",
    "source",
    "disposition",
    "repId",
    "repName",
    "repEmail",
    "repConsent",
    "customerId",
    "customerName",
    "customerPhone",
    "customerEmail",
    "customerConsent",
    "talkRatio",
    "keywords",
)


def call_log(record: CallRecord, transcript: bool = False) -> dict[str, Any]:
    """The call as a CRM gets it: participants, disposition, metrics, tracked phrases said; with ``transcript``
    its redacted segments."""
    out = {k: v for k, v in record.summary().items() if k not in _LEFT_OUT}
    if transcript:
        redactor = Redactor()
        out["transcript"] = [
            {
                "channel": s.channel,
                "speaker": s.speaker,
                "start": s.start,
                "end": s.end,
                "text": redactor.redact_text(s.text).text,
            }
            for s in record.segments
        ]
    return out


def delivery_body(
    event: str, record: CallRecord, delivery_id: int, transcript: bool, sent_at: datetime
) -> dict[str, Any]:
    """The body of a delivery (``call_ended``, ``call_disposition``): the call's log as it is stored now."""
    return {
        "id": f"dlv_{delivery_id}",
        "type": event,
        "team": record.team,
        "sentAt": sent_at.isoformat().replace("+00:00", "Z"),
        "call": call_log(record, transcript),
    }


def csv_row(record: CallRecord) -> list[str]:
    """The call in the export's CSV columns (``CSV_COLUMNS``)."""
    people = {p.role: p for p in record.participants}
    rep, customer = people.get("rep"), people.get("customer")
    summary = record.summary()
    talk_ratio = record.metrics.get("talkRatio")
    values: list[Any] = [
        record.id,
        summary["startedAt"],
        summary["endedAt"] or "",
        summary["duration"],
        record.status,
        record.end_reason,
        record.source,
        record.disposition,
        rep.id if rep else "",
        rep.name if rep else "",
        rep.email if rep else "",
        rep.consent if rep else "",
        customer.id if customer else "",
        customer.name if customer else "",
        customer.phone if customer else "",
        customer.email if customer else "",
        customer.consent if customer else "",
        talk_ratio if isinstance(talk_ratio, int | float) else "",
        "|".join(record.keywords),
    ]
    return [_cell(str(v)) for v in values]


_NUMBER = re.compile(r"[+-]?[0-9 ().-]*")


def _cell(value: str) -> str:
    """A value a spreadsheet opening the CSV does not take for a formula (a name such as ``=HYPERLINK(...)``); phone
    numbers and negative numbers stay as they are."""
    if value[:1] in ("=", "@", "\t", "\r") or (value[:1] in ("+", "-") and not _NUMBER.fullmatch(value)):
        return "'" + value
    return value
