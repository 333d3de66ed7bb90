"""Speaker diarization of a mixed mono channel: resemblyzer d-vectors in numpy, clustered online."""

from models.diarization.online import DiarizationConfig, OnlineDiarizer, Segment
from models.diarization.voice_encoder import VoiceEncoder, locate_resemblyzer_weights

__all__ = ["DiarizationConfig", "OnlineDiarizer", "Segment", "VoiceEncoder", "locate_resemblyzer_weights"]
