"""Pacing: a call's audio comes in no faster than real time, beyond a small burst (``calls.pacing``).

A stream sent faster than real time would take more of the recogniser than its share and push other calls' finals
late. Each channel of a live call has a budget of audio it may send ahead of real time (``burst_s``: jitter, a
catch-up after a stall); the budget refills at real time, up to ``burst_s``. A channel that has spent it is ahead
of real time: its adapter waits that long before it reads the peer's next message (``calls/watch.py``), so the
peer's sends slow down to real time (TCP's flow control on a websocket or a gRPC stream). The call is ended as
``too_fast`` when it gets further ahead than ``max_ahead_s`` (a message too big to wait for, or a source that cannot
be slowed down, such as RTP; with ``max_ahead_s`` 0 every call that spends its burst is ended rather than paced), or
when it has been held back at every read for ``max_held_s`` without a break: its sender keeps sending faster than real
time, and what it sent waits in the network's buffers, where the server cannot see it (that is also where the pongs
to the server's keepalive pings wait: a held websocket would soon be closed as a keepalive timeout, saying nothing).

Work meant to run faster than real time (Riva ``Recognize``, ``media-server transcribe``) is not paced: it is a
batch-class call, decoded only when no live work waits (``models/asr/fair_queue.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from media_server.config import PacingSettings


class StreamPace:
    """One channel's budget of audio ahead of real time (a token bucket of ``burst_s`` seconds, full at the start)."""

    def __init__(self, burst_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_s = burst_s
        self._clock = clock
        self._credit = burst_s
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._credit = min(self.burst_s, self._credit + (now - self._at))
        self._at = now
        return self._credit

    def took(self, seconds: float) -> None:
        """``seconds`` of audio arrived."""
        self._refill()
        self._credit -= seconds

    def ahead_s(self) -> float:
        """Seconds of audio received beyond the budget: how long the stream should wait to be back at real time."""
        return max(0.0, -self._refill())

    def budget_s(self) -> float:
        """What is left of the budget now (negative: ahead of real time)."""
        return self._refill()


class CallPace:
    """The pace of a call's channels; ``None`` settings (or disabled ones): never paced."""

    def __init__(self, settings: PacingSettings | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings if settings is not None and settings.enabled else None
        self._clock = clock
        self._streams: dict[int, StreamPace] = {}
        self._held_since: float | None = None  # when the adapter's reads began to wait, with no break since
        self.too_fast = False  # past ``max_ahead_s`` or ``max_held_s``: the call is ended
        self._why = ""

    def took(self, channel: int, seconds: float) -> None:
        """Audio of ``channel`` arrived; past ``max_ahead_s`` ahead of real time the call is ``too_fast``."""
        if self.settings is None:
            return
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = StreamPace(self.settings.burst_s, self._clock)
        stream.took(seconds)
        if not self.too_fast and stream.ahead_s() > self.settings.max_ahead_s:
            self.too_fast = True
            self._why = (
                f"more than {self.settings.max_ahead_s:g} s ahead of real time after a burst allowance of "
                f"{self.settings.burst_s:g} s (calls.pacing.max_ahead_s)"
            )

    def wait_s(self) -> float:
        """How long the adapter should wait before it reads more: the furthest ahead of the call's channels."""
        return max((s.ahead_s() for s in self._streams.values()), default=0.0)

    def hold(self) -> float:
        """The adapter is about to read the peer's next message: how long it should wait first (:meth:`wait_s`).
        A call held back for ``max_held_s`` without a break is ``too_fast``. A break is a channel's budget back at
        half the burst at least: its sender had nothing more to send (one at real time keeps its budget full); a
        sender that keeps it near nothing (the server reads as soon as the budget allows) is still sending faster."""
        if self.settings is None or not self._streams:
            return 0.0
        lowest = min(s.budget_s() for s in self._streams.values())
        now = self._clock()
        if lowest >= self.settings.burst_s / 2:
            self._held_since = None
        elif lowest < 0 and self._held_since is None:
            self._held_since = now
        held = self._held_since
        if (
            held is not None
            and self.settings.max_held_s
            and now - held > self.settings.max_held_s
            and not self.too_fast
        ):
            self.too_fast = True
            self._why = (
                f"held back to real time for more than {self.settings.max_held_s:g} s without a break "
                "(calls.pacing.max_held_s)"
            )
        return max(0.0, -lowest)

    def refusal(self) -> str:
        """Why a ``too_fast`` call was ended, in words for its peer and its subscribers."""
        return f"audio arrives faster than real time: {self._why}"
