"""Signatures of webhook deliveries, as Stripe signs its webhooks: ``X-Media-Server-Signature: t=<unix>,v1=<hex>``,
where ``v1`` is the HMAC-SHA256, keyed with the webhook's secret, of ``"<t>.<body>"``. The timestamp inside the
signed text lets a receiver refuse replays of old deliveries."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Media-Server-Signature"
TOLERANCE_S = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance_s: float = TOLERANCE_S) -> bool:
    """What a receiver does: the header's timestamp is within ``tolerance_s`` of ``now`` and one of its ``v1``
    signatures matches (compared in constant time)."""
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k.strip() == "t"]
    macs = [v.strip() for k, _, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not macs:
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, mac) for mac in macs)
