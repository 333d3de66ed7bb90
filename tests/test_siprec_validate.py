"""Strict screening of SIP requests: RFC 4475 torture tests that apply to a recording server, and fuzzing."""

from __future__ import annotations

import pytest
from aiosipua import SipMessage, SipRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.ingest.siprec.validate import check_request, error_response, reject

BASE = (
    "INVITE sip:srs@192.0.2.10 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    'From: "SBC" <sip:src@192.0.2.1>;tag=1928301774\r\n'
    "To: <sip:srs@192.0.2.10>\r\n"
    "Call-ID: a84b4c76e66710@192.0.2.1\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:src@192.0.2.1>;+sip.src\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n"
)

# RFC 4475 §3.1.1.1 "wsinv": valid, with whitespace, line folding and compact forms everywhere.
WSINV = (
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    "TO :\r\n"
    " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n'
    "  ;\r\n"
    "  tag = 98asjd8\r\n"
    "MaX-fOrWaRdS: 0068\r\n"
    "Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    "Content-Length   : 4\r\n"
    "cseq: 0009\r\n"
    "  INVITE\r\n"
    "Via  : SIP  /   2.0\r\n"
    " /UDP\r\n"
    "    192.0.2.2;branch=390skdjuw\r\n"
    "s :\r\n"
    "NewFangledHeader:   newfangled value\r\n"
    " continued newfangled value\r\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    "Content-Type: application/sdp\r\n"
    "Route:\r\n"
    " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    "  branch  =   z9hG4bK9ikj8  ,\r\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    " z9hG4bK30239\r\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
    "      newvalue ;\r\n"
    "  secondparam ; q = 0.33\r\n"
    "\r\n"
    "v=0\n"
)


def check(raw: str) -> str | None:
    data = raw.encode()
    message = SipMessage.parse(data)
    assert isinstance(message, SipRequest)
    return check_request(data, message)


def test_a_plain_invite_and_the_tortuous_valid_one_pass() -> None:
    assert check(BASE) is None
    assert check(WSINV) is None


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        # RFC 4475 §3.1.2.x, adapted to INVITE where they used OPTIONS or REGISTER
        ("clerr", BASE.replace("Content-Length: 4", "Content-Length: 9999"), "Content-Length larger"),
        ("ncl", BASE.replace("Content-Length: 4", "Content-Length: -999"), "Content-Length"),
        ("scalar02", BASE.replace("CSeq: 314159", "CSeq: 36893488147419103232"), "CSeq"),
        ("scalarlg", BASE.replace("Max-Forwards: 70", "Max-Forwards: 300"), "Max-Forwards"),
        ("ltgtruri", BASE.replace("INVITE sip:srs@192.0.2.10", "INVITE <sip:srs@192.0.2.10>"), "request line"),
        ("lwsruri", BASE.replace("INVITE sip:srs@192.0.2.10", "INVITE sip:srs @192.0.2.10"), "request line"),
        ("badvers", BASE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia", 1), "request line"),
        ("mismatch01", BASE.replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS"), "does not match"),
        ("insuf", BASE.replace("Call-ID: a84b4c76e66710@192.0.2.1\r\n", ""), "missing Call-Id"),
        (
            "multi01",
            BASE.replace("To: <sip:srs@192.0.2.10>\r\n", "To: <sip:srs@192.0.2.10>\r\nTo: <sip:x@y>\r\n"),
            "To",
        ),
        ("quotbal", BASE.replace('From: "SBC" <sip', 'From: "SBC <sip'), "From"),
        ("no-tag", BASE.replace(";tag=1928301774", ""), "From without a tag"),
        ("via", BASE.replace("Via: SIP/2.0/UDP 192.0.2.1:5060", "Via: SIP/2.0/UDP"), "Via"),
        ("no-colon", BASE.replace("Max-Forwards: 70", "Max-Forwards 70"), "header line"),
    ],
)
def test_malformed_requests_are_named(name: str, raw: str, reason: str) -> None:
    problem = check(raw)
    assert problem is not None, name
    assert reason.lower() in problem.lower(), (name, problem)


def test_unparseable_bytes_get_a_400_built_from_what_is_there() -> None:
    raw = b"INVITE\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=7\r\nt: <sip:srs@c>\r\ni: x\r\n\r\n"
    response = error_response(raw, 400, "Malformed Request")
    assert response is not None
    parsed = SipMessage.parse(response)
    assert parsed.status_code == 400  # type: ignore[union-attr]
    assert parsed.headers.get_first("via") == "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"
    assert ";tag=" in (parsed.headers.get_first("to") or "")
    # no Via: nowhere to send it; responses and ACKs are never answered
    assert error_response(b"INVITE sip:a@b SIP/2.0\r\n\r\n", 400, "x") is None
    assert error_response(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z\r\n\r\n", 400, "x") is None
    assert error_response(b"ACK sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z\r\n\r\n", 400, "x") is None


def test_reject_copies_the_dialog_headers_and_adds_a_to_tag() -> None:
    request = SipMessage.parse(BASE.encode())
    assert isinstance(request, SipRequest)
    response = reject(request, 503, "Service Unavailable\r\nEvil: 1", {"Retry-After": "30"})
    text = bytes(response).decode()
    assert text.startswith("SIP/2.0 503 Service UnavailableEvil: 1\r\n")
    assert "Retry-After: 30" in text and "CSeq: 314159 INVITE" in text and ";tag=" in text.split("To:")[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzzed_bytes_never_raise(data: bytes) -> None:
    error_response(data, 400, "Malformed Request")
    try:
        message = SipMessage.parse(data)
    except Exception:
        return  # unparseable: answered with error_response, tested above
    if isinstance(message, SipRequest):
        check_request(data, message)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(BASE) - 1), st.integers(1, 8), st.binary(max_size=8))
def test_mutated_invites_are_checked_without_raising(position: int, length: int, junk: bytes) -> None:
    raw = BASE.encode()
    data = raw[:position] + junk + raw[position + length :]
    try:
        message = SipMessage.parse(data)
    except Exception:
        error_response(data, 400, "Malformed Request")  # must not raise either
        return
    if isinstance(message, SipRequest):
        problem = check_request(data, message)
        assert problem is None or isinstance(problem, str)
