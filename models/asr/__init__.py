"""Speech recognition: one engine interface, swappable backends, one decode scheduler per device."""

from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis, SpeechEngine, Word
from models.asr.scheduler import DecodeScheduler, SchedulerStats

__all__ = [
    "DecodeRequest",
    "DecodeScheduler",
    "EngineCapabilities",
    "Hypothesis",
    "SchedulerStats",
    "SpeechEngine",
    "Word",
]
