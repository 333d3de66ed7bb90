"""DTMF digits from RFC 4733 telephone-event packets, each digit reported once.

The payload is parsed with aiortp's ``DtmfEvent``. aiortp's ``DtmfReceiver`` is not used: it remembers
only the latest event, so an end packet that arrives after the next digit has begun (reordering) is
reported again, and a digit whose end packets are all lost is never reported. Here an event is
identified by its (SSRC, RTP timestamp), as RFC 4733 2.5.1.1 keeps the timestamp for all its packets:
a digit is reported at its first end packet, or, when its end packets are lost, as soon as a packet of
a later event (or ``flush``) shows it is over; events already reported are remembered, so the
redundant end packets (RFC 4733 2.5.1.4), repeated starts and late stragglers report nothing.
Events outside 0-15 (flash, tones) are ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from aiortp.dtmf import EVENT_TO_DIGIT, DtmfEvent

from media_server.rtp.packet import MalformedPacket

__all__ = ["TelephoneEventReceiver"]

_REMEMBERED_EVENTS = 32


class TelephoneEventReceiver:
    def __init__(self, on_digit: Callable[[str], None]) -> None:
        self._on_digit = on_digit
        self._reported: deque[tuple[int, int]] = deque(maxlen=_REMEMBERED_EVENTS)
        self._pending: tuple[tuple[int, int], str] | None = None  # begun, not yet ended

    def handle(self, ssrc: int, timestamp: int, payload: bytes) -> None:
        """Take one telephone-event payload; ``MalformedPacket`` if it is shorter than an event."""
        try:
            event = DtmfEvent.parse(payload)
        except ValueError as exc:
            raise MalformedPacket(str(exc)) from exc
        digit = EVENT_TO_DIGIT.get(event.event)
        if digit is None:
            return
        key = (ssrc, timestamp)
        if key in self._reported:
            return
        if self._pending is not None and self._pending[0] != key:
            self._report(*self._pending)
        if event.end:
            self._report(key, digit)
        else:
            self._pending = (key, digit)

    def flush(self) -> None:
        """Report a digit that has begun and whose end never came (the stream is ending)."""
        if self._pending is not None:
            self._report(*self._pending)

    def _report(self, key: tuple[int, int], digit: str) -> None:
        self._pending = None
        self._reported.append(key)
        self._on_digit(digit)
