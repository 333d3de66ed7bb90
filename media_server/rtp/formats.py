"""RTP payload formats as SDP names them (``a=rtpmap:<pt> <name>/<clock>[/<channels>]``).

Encoding names match case-insensitively (RFC 4855 3) and are kept in their usual spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_CODECS: tuple[str, ...] = ("PCMU", "PCMA", "G722", "opus")
TELEPHONE_EVENT = "telephone-event"

_CANONICAL = {name.lower(): name for name in (*SUPPORTED_CODECS, TELEPHONE_EVENT)}
# Decoded PCM rate where it is not the RTP clock: G.722's RTP clock is 8000 although it samples at
# 16 kHz (RFC 3551 4.5.2); Opus always runs a 48000 clock and is decoded at 48 kHz (RFC 7587 4.1).
_PCM_RATE = {"G722": 16000, "opus": 48000}
# Static payload types (RFC 3551 table 4) that an SDP may offer without an a=rtpmap line.
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}


@dataclass(frozen=True)
class RtpFormat:
    """One payload type of an RTP stream."""

    name: str  # "PCMU" | "PCMA" | "G722" | "opus" | "telephone-event", any case on input
    payload_type: int
    clock_rate: int  # the RTP timestamp clock
    channels: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _CANONICAL.get(self.name.lower(), self.name))
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} is outside 0-127")
        if self.clock_rate <= 0 or self.channels <= 0:
            raise ValueError(f"{self.name}: clock rate and channels must be positive")

    @property
    def supported(self) -> bool:
        """Whether this server can decode it (telephone-event is not audio: it is never "supported")."""
        return self.name in SUPPORTED_CODECS

    @property
    def pcm_rate(self) -> int:
        """Sample rate of the decoded PCM."""
        return _PCM_RATE.get(self.name, self.clock_rate)

    @classmethod
    def from_rtpmap(cls, payload_type: int, rtpmap: str) -> RtpFormat:
        """From the value of an ``a=rtpmap`` line after the payload type: ``"PCMU/8000"``, ``"opus/48000/2"``."""
        parts = rtpmap.strip().split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"a=rtpmap value {rtpmap!r} is not <encoding>/<clock rate>[/<channels>]")
        try:
            clock_rate = int(parts[1])
            channels = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise ValueError(
                f"a=rtpmap value {rtpmap!r} has a clock rate or channel count that is not a number"
            ) from None
        return cls(parts[0], payload_type, clock_rate, channels)

    @classmethod
    def static(cls, payload_type: int) -> RtpFormat | None:
        """The format of a static payload type offered without ``a=rtpmap`` (0, 8, 9); ``None`` for others."""
        known = _STATIC.get(payload_type)
        return cls(known[0], payload_type, known[1]) if known else None
