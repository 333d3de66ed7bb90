"""Speaker diarization of a mixed mono channel: resemblyzer d-vectors in numpy, clustered online."""

from models.diarization.batcher import DiarizerLane, EmbeddingBatcher
from models.diarization.online import DiarizationConfig, OnlineDiarizer, Segment
from models.diarization.voice_encoder import VoiceEncoder, locate_resemblyzer_weights

__all__ = [
    "DiarizationConfig",
    "DiarizerLane",
    "EmbeddingBatcher",
    "OnlineDiarizer",
    "Segment",
    "VoiceEncoder",
    "locate_resemblyzer_weights",
]
