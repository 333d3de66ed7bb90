"""Sample-format helpers: whole-buffer and streaming resampling, int16 to float."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from models.audio import MODEL_SAMPLE_RATE, StreamResampler, int16_to_float32, resample

Float32Array = npt.NDArray[np.float32]


def _sine(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> Float32Array:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(audio: Float32Array, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def _chunked(resampler: StreamResampler, audio: Float32Array, sizes: list[int]) -> Float32Array:
    parts: list[Float32Array] = []
    pos, i = 0, 0
    while pos < len(audio):
        size = sizes[i % len(sizes)]
        parts.append(resampler.process(audio[pos : pos + size]))
        pos += size
        i += 1
    parts.append(resampler.process(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(parts)


def test_model_rate_is_16k() -> None:
    assert MODEL_SAMPLE_RATE == 16000


def test_int16_to_float32_scales_to_unit_range() -> None:
    out = int16_to_float32(np.array([0, 16384, -32768, 32767], dtype=np.int16))
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx([0.0, 0.5, -1.0, 32767 / 32768])


def test_resample_8k_to_16k_doubles_length_and_keeps_pitch() -> None:
    audio = _sine(440.0, 8000)
    out = resample(audio, 8000, 16000)
    assert out.dtype == np.float32
    assert len(out) == 2 * len(audio)
    assert _peak_hz(out, 16000) == pytest.approx(440.0, abs=2.0)
    # Level is preserved away from the edges.
    middle = out[1000:-1000]
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.02)


def test_resample_16k_to_8k_halves_length_and_keeps_pitch() -> None:
    audio = _sine(1000.0, 16000)
    out = resample(audio, 16000, 8000)
    assert len(out) == len(audio) // 2
    assert _peak_hz(out, 8000) == pytest.approx(1000.0, abs=2.0)


def test_resample_same_rate_is_a_no_op() -> None:
    audio = _sine(300.0, 16000, seconds=0.1)
    out = resample(audio, 16000, 16000)
    assert np.array_equal(out, audio)
    assert out.dtype == np.float32


def test_resample_same_rate_converts_float64_to_float32() -> None:
    out = resample(np.array([0.25, -0.5]), 8000, 8000)
    assert out.dtype == np.float32
    assert out.tolist() == [0.25, -0.5]


def test_resample_empty_buffer() -> None:
    out = resample(np.zeros(0, dtype=np.float32), 8000, 16000)
    assert out.shape == (0,) and out.dtype == np.float32


@pytest.mark.parametrize("sizes", [[160], [37, 400, 1, 999], [8000]])
def test_stream_resampler_matches_one_shot(sizes: list[int]) -> None:
    audio = _sine(440.0, 8000) + _sine(1234.0, 8000, amplitude=0.2)
    one_shot = resample(audio, 8000, 16000)
    streamed = _chunked(StreamResampler(8000, 16000), audio, sizes)
    assert streamed.dtype == np.float32
    assert len(streamed) == len(one_shot) == 2 * len(audio)
    # No clicks at chunk boundaries: the streamed signal is the one-shot signal.
    assert np.abs(streamed - one_shot).max() < 1e-4


def test_stream_resampler_downsampling_total_length() -> None:
    audio = _sine(500.0, 16000, seconds=0.5)
    streamed = _chunked(StreamResampler(16000, 8000), audio, [320])
    assert len(streamed) == len(audio) // 2
    assert _peak_hz(streamed, 8000) == pytest.approx(500.0, abs=4.0)


def test_stream_resampler_same_rate_passes_audio_through() -> None:
    resampler = StreamResampler(16000, 16000)
    chunk = _sine(200.0, 16000, seconds=0.02)
    assert np.array_equal(resampler.process(chunk), chunk)
    assert np.array_equal(resampler.process(chunk, last=True), chunk)
