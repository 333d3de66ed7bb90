"""Voice activity detection."""

from models.vad.silero import SileroVAD, VADStream, locate_silero_onnx

__all__ = ["SileroVAD", "VADStream", "locate_silero_onnx"]
