"""The voice encoder's front end: a power mel spectrogram, computed as librosa computes it, in numpy.

Resemblyzer takes ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)``
(not a log mel): a centred STFT with a periodic Hann window over zero-padded audio (librosa >= 0.10 pads
with zeros), squared magnitudes, and Slaney-style mel filters with Slaney area normalisation
(``librosa.filters.mel``'s defaults). This module reproduces that without librosa (which pulls scipy,
numba and scikit-learn); the tests check it against librosa where librosa is installed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from models.audio import Float32Array

Float64Array = npt.NDArray[np.float64]

# Slaney's auditory toolbox scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: Float64Array) -> Float64Array:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    mel[high] = _MIN_LOG_MEL + np.log(hz[high] / _MIN_LOG_HZ) / _LOGSTEP
    return mel


def mel_to_hz(mel: Float64Array) -> Float64Array:
    mel = np.asarray(mel, dtype=np.float64)
    hz = _F_SP * mel
    high = mel >= _MIN_LOG_MEL
    hz[high] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel[high] - _MIN_LOG_MEL))
    return hz


@cache
def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> Float32Array:
    """Triangular filters, shape (n_mels, 1 + n_fft // 2): ``librosa.filters.mel(htk=False, norm="slaney")``."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    low, high = hz_to_mel(np.array([0.0, sample_rate / 2.0]))
    mel_freqs = mel_to_hz(np.linspace(float(low), float(high), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    filters = weights.astype(np.float32)
    filters.flags.writeable = False
    return filters


@cache
def _hann(n_fft: int) -> Float32Array:
    """The periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``)."""
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    window.flags.writeable = False
    return window


def mel_spectrogram(
    audio: Float32Array, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 40
) -> Float32Array:
    """Power mel spectrogram, shape (frames, n_mels) with ``1 + len(audio) // hop`` frames (centred)."""
    audio = np.asarray(audio, dtype=np.float32)
    padded = np.pad(audio, n_fft // 2)
    n_frames = 1 + (padded.size - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(padded.strides[0] * hop, padded.strides[0]), writeable=False
    )
    spectrum = np.fft.rfft(frames * _hann(n_fft), axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return np.asarray(power @ mel_filters(sample_rate, n_fft, n_mels).T, dtype=np.float32)
