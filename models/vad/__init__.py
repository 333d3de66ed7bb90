"""Voice activity detection."""

from models.vad.batcher import VADBatcher
from models.vad.silero import SileroVAD, VADStream, locate_silero_onnx

__all__ = ["SileroVAD", "VADBatcher", "VADStream", "locate_silero_onnx"]
