"""The body of a SIPREC INVITE or re-INVITE: an SDP offer, and recording metadata in a ``multipart/mixed``.

RFC 7866 §9.1: the SRC sends ``multipart/mixed`` with an ``application/sdp`` part and an
``application/rs-metadata+xml`` part (``Content-Disposition: recording-session``). A plain
``application/sdp`` body (a fork without metadata, or a re-INVITE that only changes media) is accepted too.
The MIME structure is read by the standard library's ``email`` parser, then checked strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import HTTP

SDP = "application/sdp"
METADATA = "application/rs-metadata+xml"
MULTIPART = "multipart/mixed"
ACCEPTED = f"{SDP}, {MULTIPART}, {METADATA}"
_MAX_PARTS = 8


class BodyError(ValueError):
    """A body that cannot be read. ``status`` is the SIP response it earns: 400 (malformed) or 415 (unsupported)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class OfferBody:
    sdp: str | None
    metadata: bytes | None


def split_body(content_type: str | None, body: bytes, content_encoding: str | None = None) -> OfferBody:
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        raise BodyError(415, f"Content-Encoding {content_encoding} is not supported")
    if not body:
        return OfferBody(None, None)
    if not content_type:
        raise BodyError(400, "a body without Content-Type")
    header = _parse_content_type(content_type)
    kind = header.get_content_type()
    if kind == SDP:
        return OfferBody(_text(body, "SDP"), None)
    if kind == METADATA:
        return OfferBody(None, body)
    if kind != MULTIPART:
        raise BodyError(415, f"cannot read a {kind} body; accepted: {ACCEPTED}")
    if not header.get_param("boundary"):
        raise BodyError(400, "multipart/mixed without a boundary")
    message = message_from_bytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body, policy=HTTP)
    parts = message.get_payload()
    if not isinstance(parts, list) or not parts or message.defects:
        what = ", ".join(type(d).__name__ for d in message.defects) or "no parts"
        raise BodyError(400, f"malformed multipart body ({what})")
    if len(parts) > _MAX_PARTS:
        raise BodyError(400, f"more than {_MAX_PARTS} body parts")
    sdp: str | None = None
    metadata: bytes | None = None
    for part in parts:
        assert isinstance(part, Message)
        if part.defects:
            raise BodyError(400, f"malformed body part ({type(part.defects[0]).__name__})")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        kind = part.get_content_type()
        if kind == SDP and sdp is None:
            sdp = _text(data, "SDP")
        elif kind == METADATA and metadata is None:
            metadata = data
        elif part.get("Content-Disposition", "").lower().split(";")[0].strip() == "session":
            raise BodyError(415, f"cannot read a {kind} session description")
        # other parts (handling=optional by default) are ignored
    return OfferBody(sdp, metadata)


def _parse_content_type(value: str) -> EmailMessage:
    message = EmailMessage(policy=HTTP)
    message["Content-Type"] = value
    if message["Content-Type"].defects or "/" not in value:
        raise BodyError(400, f"malformed Content-Type {value!r}")
    return message


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, f"{what} is not UTF-8 text") from None
