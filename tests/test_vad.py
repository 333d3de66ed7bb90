"""Silero VAD through onnxruntime, at the channel's native rate."""

from __future__ import annotations

import numpy as np
import pytest

from models.audio import int16_to_float32, resample
from models.vad import SileroVAD
from tests.speech import tel8k


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def speech_and_silence() -> tuple[np.ndarray, int]:
    utt = max(tel8k(), key=lambda u: u.duration)
    silence = np.zeros(utt.sample_rate * 2, dtype=np.int16)
    return np.concatenate([silence, utt.pcm, silence]), len(silence)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_speech_scores_high_and_silence_low(vad: SileroVAD, rate: int) -> None:
    pcm, lead = speech_and_silence()
    audio = resample(int16_to_float32(pcm), 8000, rate)
    stream = vad.new_stream(rate)
    chunks = stream.process(audio)
    lead_s = lead / 8000
    probs_silence = [c.probability for c in chunks if c.end / rate < lead_s - 0.1]
    probs_speech = [c.probability for c in chunks if lead_s + 0.5 < c.end / rate < lead_s + 5]
    assert max(probs_silence) < 0.2
    assert np.mean(probs_speech) > 0.6
    # Chunk ends are reported in samples of the input rate.
    assert chunks[-1].end <= len(audio) and len(audio) - chunks[-1].end < rate * 0.1


def test_streams_are_independent_and_chunking_does_not_matter(vad: SileroVAD) -> None:
    pcm, _ = speech_and_silence()
    audio = int16_to_float32(pcm)
    whole = [c.probability for c in vad.new_stream(8000).process(audio)]
    a, b = vad.new_stream(8000), vad.new_stream(8000)
    pieces_a, pieces_b = [], []
    for offset in range(0, len(audio), 160):  # 20 ms frames, two streams interleaved
        pieces_a += a.process(audio[offset : offset + 160])
        pieces_b += b.process(np.zeros(160, dtype=np.float32))
    assert np.allclose([c.probability for c in pieces_a], whole, atol=1e-5)
    assert max(c.probability for c in pieces_b) < 0.1


def test_missing_model_file_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="Silero VAD model not found"):
        SileroVAD("/nonexistent/silero.onnx")


def test_the_package_ships_silero_with_its_licence() -> None:
    # Found with no configuration and no silero-vad package: the ONNX file and its MIT licence are in ours.
    from models.vad.silero import BUNDLED_MODEL, locate_silero_onnx

    assert locate_silero_onnx() == BUNDLED_MODEL and SileroVAD().path == BUNDLED_MODEL
    licence = (BUNDLED_MODEL.parent / "LICENSE").read_text()
    assert "MIT License" in licence and "Silero Team" in licence
