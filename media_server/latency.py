"""When a channel's audio arrived, so that a final's latency can be told: from the arrival of the end of its
utterance's audio to the final (``/metrics``: ``media_server_final_latency_seconds``)."""

from __future__ import annotations

import time
from collections import deque

_KEPT = 6000  # chunks remembered per channel (two minutes of 20 ms frames)


class ArrivalClock:
    """(stream seconds up to which audio had arrived, monotonic time), per chunk of a channel's audio."""

    def __init__(self) -> None:
        self._marks: deque[tuple[float, float]] = deque(maxlen=_KEPT)

    def note(self, position_s: float) -> None:
        self._marks.append((position_s, time.monotonic()))

    def since(self, end_s: float) -> float | None:
        """Seconds since the audio up to stream time ``end_s`` arrived (None: none arrived yet); the marks before it
        are forgotten."""
        marks = self._marks
        while len(marks) > 1 and marks[0][0] < end_s:
            marks.popleft()
        if not marks:
            return None
        return max(0.0, time.monotonic() - marks[0][1])
