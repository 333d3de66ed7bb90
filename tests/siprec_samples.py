"""SIPREC bodies as SRCs send them (RFC 7866 §9.1 / RFC 7865 §10 shapes), shared by the SIPREC tests."""

from __future__ import annotations

NS = "urn:ietf:params:xml:ns:recording:1"


def metadata_xml(
    rep: tuple[str, str] = ("Alice Rep", "sip:alice@acme.example"),
    customer: tuple[str, str] = ("Bob Buyer", "sip:+15551234567@carrier.example"),
    datamode: str = "complete",
    consent: tuple[str | None, str | None] = (None, None),
) -> str:
    def participant(pid: str, who: tuple[str, str], given: str | None) -> str:
        extension = f"<extensiondata><x:consent xmlns:x='urn:example:consent'>{given}</x:consent></extensiondata>"
        return (
            f'<participant participant_id="{pid}"><nameID aor="{who[1]}"><name xml:lang="en">{who[0]}</name>'
            f"</nameID>{extension if given else ''}</participant>"
        )

    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\r\n<recording xmlns="{NS}"><datamode>{datamode}</datamode>'
        '<group group_id="7+OTCyoxTmqmqyA/1weDAg=="><associate-time>2026-11-25T10:00:00Z</associate-time></group>'
        '<session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;'
        "remote=47755a9de7794ba387653f2099600ef2</sipSessionID></session>"
        + participant("srfBElmCRp2QB23b7Mpk0w==", rep, consent[0])
        + participant("zSfPoSvdSDCmU3A3TRDxAw==", customer, consent[1])
        + '<stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>1</label></stream>'
        '<stream stream_id="i1Pz3to5hGk8fuXl+PKSgQ==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>2</label></stream>'
        '<participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w=="><send>UAAMm5GRQKSCMVvLyl4rFw==</send>'
        "<recv>i1Pz3to5hGk8fuXl+PKSgQ==</recv></participantstreamassoc>"
        '<participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><send>i1Pz3to5hGk8fuXl+PKSgQ==</send>'
        "<recv>UAAMm5GRQKSCMVvLyl4rFw==</recv></participantstreamassoc></recording>\r\n"
    )


def sdp_offer(formats: str = "0 8 101", ports: tuple[int, int] = (6000, 6002), direction: str = "sendonly") -> str:
    lines = ["v=0", "o=SBC 2890844526 2890844526 IN IP4 127.0.0.1", "s=SIPREC", "c=IN IP4 127.0.0.1", "t=0 0"]
    for label, port in enumerate(ports, start=1):
        lines += [f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"]
        if "101" in formats.split():
            lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"]
        lines += [f"a=label:{label}", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


BOUNDARY = "OSS-unique-boundary-42"


def multipart(sdp: str, metadata: str) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n"
        f"--{BOUNDARY}\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n"
        f"{metadata}\r\n--{BOUNDARY}--\r\n"
    ).encode()


CONTENT_TYPE = f"multipart/mixed;boundary={BOUNDARY}"
