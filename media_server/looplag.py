"""How late the event loop runs a timer: the delay every call, websocket and timer on it suffers. A blocking call
(a slow disk, a CPU-bound step that should be in a thread) shows here first; ``/v1/status`` reports it, the soak
benchmark watches that it stays flat."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import numpy as np

from media_server.background import Background


class LoopLag:
    def __init__(self, interval_s: float = 0.25, window: int = 240) -> None:
        self.interval_s = interval_s
        self._lags: deque[float] = deque(maxlen=window)  # seconds; the last minute at the defaults
        self._task = Background("loop-lag", self._run)

    def start(self) -> None:
        self._task.start()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval_s)
            self._lags.append(max(0.0, loop.time() - before - self.interval_s))

    def stats(self) -> dict[str, Any]:
        """Lag in ms over the window: median, p95, max (None before the first sample)."""
        if not self._lags:
            return {"lagMsP50": None, "lagMsP95": None, "lagMsMax": None, "samples": 0}
        ms = np.array(self._lags) * 1000
        return {
            "lagMsP50": round(float(np.percentile(ms, 50)), 2),
            "lagMsP95": round(float(np.percentile(ms, 95)), 2),
            "lagMsMax": round(float(ms.max()), 2),
            "samples": len(ms),
        }

    async def stop(self) -> None:
        await self._task.stop()
