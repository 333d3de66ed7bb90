"""The media of a recording session: the SRC's SDP offer, read strictly, and the SRS's answer.

RFC 7866 §8.1: one ``m=audio`` per recorded stream, each with an ``a=label`` that the metadata refers to,
offered ``sendonly`` (``inactive`` while a stream is on hold). The SRS answers every m-line in order:
``recvonly`` with a port of its own and one codec (plus telephone-event), or port 0 for a stream it cannot take.
Media offered as ``RTP/SAVP`` or ``RTP/SAVPF`` is SRTP keyed with SDES (``a=crypto``, RFC 4568): the answer keeps
the profile and gives a key of its own (``media_server/rtp/srtp.py``); an ``a=crypto`` on plain ``RTP/AVP``
(best-effort SRTP) is answered without one, so the media stays plain.
SDP text is parsed and written by aiosipua; the checks RFC 4566 asks for that it leaves out are made here.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from aiosipua import Codec, ConnectionData, MediaDescription, Origin, SdpMessage, parse_sdp, serialize_sdp

from media_server.rtp.srtp import SdesCrypto, choose_crypto

# Static payload types (RFC 3551) for offers that leave out the rtpmap.
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}
_CLOCK = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "OPUS": 48000}
_PROTOCOLS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")
SECURE_PROTOCOLS = ("RTP/SAVP", "RTP/SAVPF")  # SRTP; keyed with a=crypto (DTLS-SRTP's UDP/TLS/... is not taken)
_MAX_MEDIA = 16


class OfferError(ValueError):
    """An offer that cannot be used. ``status``: 400 (malformed) or 488 (nothing acceptable in it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class OfferedStream:
    index: int  # the m-line's position
    media: str
    label: str
    address: str  # where the SRC sends from (sources.py: RTP is taken from here, its SIP address or sip.allow)
    port: int
    proto: str
    direction: str  # as offered: sendonly, inactive, sendrecv, recvonly
    codecs: list[Codec] = field(default_factory=list)
    dtmf: Codec | None = None
    first_format: str = "0"
    crypto: list[str] = field(default_factory=list, repr=False)  # the a=crypto values (master keys: no repr)

    @property
    def active(self) -> bool:
        return self.port != 0 and self.direction in ("sendonly", "sendrecv")

    @property
    def secure(self) -> bool:
        """SRTP: the answer must key it (``stream_crypto``) or refuse it."""
        return self.proto.upper() in SECURE_PROTOCOLS

    def stream_crypto(self) -> SdesCrypto | None:
        """The SRC's key for an SRTP stream, None for plain RTP; ``CryptoError`` (a 488's reason) if none fits."""
        return choose_crypto(self.crypto) if self.secure else None


@dataclass
class Offer:
    streams: list[OfferedStream]
    origin: Origin


def parse_offer(text: str) -> Offer:
    try:
        sdp = parse_sdp(text)
    except (ValueError, IndexError) as exc:
        raise OfferError(400, f"malformed SDP: {exc}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise OfferError(400, "malformed SDP: it must start with v=0")
    if not any(line.startswith("o=") for line in lines) or not any(line.startswith("m=") for line in lines):
        raise OfferError(400, "malformed SDP: o= and at least one m= line are required")
    if len(sdp.media) > _MAX_MEDIA:
        raise OfferError(400, f"more than {_MAX_MEDIA} media streams")
    streams = []
    for index, media in enumerate(sdp.media):
        if not media.media or not media.proto or not media.formats:
            raise OfferError(400, f"malformed SDP: m-line {index + 1} is incomplete")
        if not 0 <= media.port <= 65535:
            raise OfferError(400, f"malformed SDP: m-line {index + 1} has port {media.port}")
        connection = media.connection or sdp.connection
        if media.port and connection is None:
            raise OfferError(400, f"malformed SDP: no c= line for m-line {index + 1}")
        address = connection.address.split("/")[0] if connection else ""
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                pass  # a host name: allowed by RFC 4566, and symmetric RTP does not need it
        labels = media.attributes.get("label", [])
        stream = OfferedStream(
            index=index,
            media=media.media,
            label=labels[0].strip() if labels else str(index + 1),
            address=address,
            port=media.port,
            proto=media.proto,
            direction=_direction(media, sdp),
            first_format=media.formats[0],
            crypto=list(media.attributes.get("crypto", [])),
        )
        for codec in media.codecs:
            name, clock = _name(codec)
            if name == "TELEPHONE-EVENT" and clock == 8000:
                stream.dtmf = stream.dtmf or codec
            elif name in _CLOCK and clock == _CLOCK[name]:
                stream.codecs.append(codec)
        streams.append(stream)
    return Offer(streams, sdp.origin)


def _name(codec: Codec) -> tuple[str, int]:
    if not codec.encoding_name and codec.payload_type in _STATIC:
        name, clock = _STATIC[codec.payload_type]
        return name, clock
    return codec.encoding_name.upper(), codec.clock_rate


def codec_name(codec: Codec) -> str:
    """The canonical name: PCMU, PCMA, G722 or opus."""
    name = _name(codec)[0]
    return "opus" if name == "OPUS" else name


def _direction(media: MediaDescription, sdp: SdpMessage) -> str:
    for d in ("sendonly", "inactive", "recvonly", "sendrecv"):
        if d in media.attributes:
            return d
    for d in ("sendonly", "inactive", "recvonly", "sendrecv"):
        if d in sdp.attributes:
            return d
    return "sendrecv"


def choose_codec(stream: OfferedStream, preference: list[str]) -> Codec | None:
    """The codec to receive: the first of ours (in our order of preference) that the stream offers."""
    if stream.media != "audio" or stream.proto.upper() not in _PROTOCOLS:
        return None
    by_name = {codec_name(c).upper(): c for c in reversed(stream.codecs)}  # the offer's first of each name wins
    for name in preference:
        codec = by_name.get(name.upper())
        if codec is not None:
            return codec
    return None


@dataclass
class AnsweredStream:
    stream: OfferedStream
    port: int  # 0: rejected
    codec: Codec | None
    dtmf: Codec | None
    direction: str  # recvonly or inactive
    crypto: SdesCrypto | None = None  # our own key, for an SRTP stream


class Answerer:
    """Writes the answers of one recording session: same o= session id, version up by one each time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.session_id = str(int(time.time() * 1000) % 10**12)
        self.version = 0

    def answer(self, streams: list[AnsweredStream]) -> SdpMessage:
        self.version += 1
        family = "IP6" if ":" in self.address else "IP4"
        sdp = SdpMessage(
            origin=Origin("media-server", self.session_id, str(self.version), "IN", family, self.address),
            session_name="media-server recording",
            connection=ConnectionData("IN", family, self.address),
        )
        for answered in streams:
            s = answered.stream
            if answered.port == 0 or answered.codec is None:
                sdp.media.append(MediaDescription(media=s.media, port=0, proto=s.proto, formats=[s.first_format]))
                continue
            codecs = [answered.codec] + ([answered.dtmf] if answered.dtmf else [])
            media = MediaDescription(
                media="audio", port=answered.port, proto=s.proto, formats=[str(c.payload_type) for c in codecs]
            )
            rtpmap = []
            fmtp = []
            for c in codecs:
                name, clock = _name(c)
                channels = f"/{c.channels}" if c.channels and c.channels > 1 else ""
                rtpmap.append(f"{c.payload_type} {c.encoding_name or name}/{clock}{channels}")
                if c.fmtp:
                    fmtp.append(f"{c.payload_type} {c.fmtp}")
            media.attributes["rtpmap"] = rtpmap
            if fmtp:
                media.attributes["fmtp"] = fmtp
            media.attributes["label"] = [s.label]
            if answered.crypto is not None:
                media.attributes["crypto"] = [answered.crypto.attribute]
            media.attributes[answered.direction] = []
            sdp.media.append(media)
        return sdp


def answer_text(sdp: SdpMessage) -> str:
    return serialize_sdp(sdp)
