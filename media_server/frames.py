"""Typed messages that flow between the server's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class AudioFrame:
    """Decoded audio of one channel of one call, as every ingest adapter hands it on."""

    call_id: str
    channel: int
    pcm: npt.NDArray[np.int16]  # mono, native rate
    sample_rate: int
    start_time: float | None = None  # seconds of call time, when the protocol says where it belongs
