"""Strict checks of a SIP request before anything acts on it (RFC 3261 §7, §8.2, §18.3).

aiosipua's parser is lenient by design (it reads what it can); a recording server should refuse what is
malformed, with the 400 an SBC expects and a reason phrase that says what is wrong. ``check_request``
returns that reason, or ``None`` for a request that is fine. ``error_response`` answers bytes that could not
be parsed at all, from whatever Via/From/To/Call-ID/CSeq lines they hold (nothing, if there is no Via).
"""

from __future__ import annotations

import re

from aiosipua import SipRequest, SipResponse
from aiosipua.utils import generate_tag

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
REQUEST_LINE = re.compile(rf"^({_TOKEN}) ((?:sips?|tel):[^\s]+) SIP/2\.0$", re.IGNORECASE)
_HEADER_LINE = re.compile(rf"^({_TOKEN})[ \t]*:")
_CSEQ = re.compile(rf"^(\d{{1,10}})[ \t]+({_TOKEN})$")
_VIA = re.compile(
    r"^SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*[A-Za-z0-9]+[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(:\d{1,5})?[ \t]*(;.*)?$",
    re.IGNORECASE,
)
_ADDRESS = re.compile(
    r'^(?:(?:"(?:[^"\\]|\\.)*"|[^<"]*?)[ \t]*<((?:sips?|tel):[^>\s]+)>|((?:sips?|tel):[^\s;,<>]+))(.*)$'
)
_SINGLE = ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
MAX_MESSAGE = 64 * 1024


def check_request(raw: bytes, request: SipRequest) -> str | None:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "header section is not UTF-8"
    lines = text.replace("\r\n", "\n").split("\n")
    if not REQUEST_LINE.match(lines[0].strip()):
        return "malformed request line"
    for line in lines[1:]:
        if line and line[0] not in " \t" and not _HEADER_LINE.match(line):
            return f"malformed header line {line[:40]!r}"
    headers = request.headers
    for name in ("via", "from", "to", "call-id", "cseq"):
        if not headers.get(name):
            return f"missing {name.title()} header"
    for name in _SINGLE:
        if len(headers.get(name)) > 1:
            return f"more than one {name.title()} header"
    cseq = _CSEQ.match(headers.get_first("cseq") or "")
    if cseq is None or int(cseq.group(1)) >= 2**31:
        return "malformed CSeq"
    if cseq.group(2) != request.method:
        return "CSeq method does not match the request method"
    for via in headers.get("via"):
        if not _VIA.match(via.strip()):
            return "malformed Via"
    for name in ("from", "to"):
        if not _ADDRESS.match((headers.get_first(name) or "").strip()):
            return f"malformed {name.title()}"
    if ";tag=" not in (headers.get_first("from") or "").replace(" ", "").lower():
        return "From without a tag"
    forwards = headers.get_first("max-forwards")
    if forwards is not None and (not forwards.strip().isdigit() or int(forwards) > 255):
        return "malformed Max-Forwards"
    length = headers.get_first("content-length")
    if length is not None:
        if not length.strip().isdigit():
            return "malformed Content-Length"
        if int(length) > len(body):
            return "Content-Length larger than the body"
    if request.body and not headers.get_first("content-type"):
        return "body without Content-Type"
    return None


_RAW_HEADER = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([\x20-\x7e\t]*?)[ \t]*$", re.IGNORECASE)
_LONG = {b"v": b"Via", b"f": b"From", b"t": b"To", b"i": b"Call-ID"}


def error_response(raw: bytes, status: int, reason: str) -> bytes | None:
    """A response to bytes that are not a usable request; None where none can be routed or is allowed."""
    head = raw.partition(b"\r\n\r\n")[0].partition(b"\n\n")[0][:MAX_MESSAGE]
    first = head.split(b"\n", 1)[0].strip()
    if not first or first.startswith(b"SIP/") or first.upper().startswith(b"ACK "):
        return None  # responses and ACKs are never answered
    found: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\n")[1:]:
        match = _RAW_HEADER.match(line.rstrip(b"\r"))
        if match:
            found.append((_LONG.get(match.group(1).lower(), match.group(1)), match.group(2)))
    if not any(n.lower() == b"via" for n, _ in found):
        return None
    lines = [f"SIP/2.0 {status} {_reason_phrase(reason)}".encode()]
    for name, value in found:
        if name.lower() == b"to" and b";tag=" not in value.lower():
            value += b";tag=" + generate_tag().encode()
        lines.append(name + b": " + value)
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _reason_phrase(reason: str) -> str:
    """Reason phrases are one line of printable text."""
    return "".join(ch for ch in reason if ch.isprintable())[:120] or "Bad Request"


def reject(request: SipRequest, status: int, reason: str, extra: dict[str, str] | None = None) -> SipResponse:
    """A final response outside any dialog (same headers aiosipua's own error responses carry)."""
    response = SipResponse(status_code=status, reason_phrase=_reason_phrase(reason))
    for via in request.headers.get("via"):
        response.headers.append("Via", via)
    for name in ("from", "call-id", "cseq"):
        value = request.headers.get_first(name)
        if value:
            response.headers.set_single(name.title() if name != "call-id" else "Call-ID", value)
    to = request.headers.get_first("to")
    if to:
        response.headers.set_single("To", to if ";tag=" in to else f"{to};tag={generate_tag()}")
    for name, value in (extra or {}).items():
        response.headers.set_single(name, value)
    return response
