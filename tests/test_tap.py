"""The listen-in tap: channels resampled and mixed, silence where nobody speaks, a bounded delay."""

from __future__ import annotations

import numpy as np

from media_server.calls.tap import AudioTap


def tone(rate: int, seconds: float, amplitude: float = 0.3, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768) ** 2)))


def test_two_channels_at_different_rates_are_mixed_at_the_tap_rate() -> None:
    tap = AudioTap(16000)
    tap = AudioTap(16000, max_delay_s=1.0)
    for _ in range(10):  # 20 ms frames, as ingest pushes them
        tap.put(0, 8000, tone(8000, 0.02, 0.2))
        tap.put(1, 16000, tone(16000, 0.02, 0.2, freq=300))
    tap.read(1600)  # the resampler's own latency holds back the first 25 ms of the 8 kHz channel
    out = tap.read(1200)
    assert out.dtype == np.int16 and out.size == 1200
    alone = 0.2 / np.sqrt(2)
    assert rms(out) > 1.3 * alone  # both are heard


def test_nothing_buffered_is_silence() -> None:
    tap = AudioTap(16000)
    assert rms(tap.read(320)) == 0.0
    tap.put(0, 16000, tone(16000, 0.01))
    out = tap.read(320)
    assert rms(out[:160]) > 0.1 and rms(out[160:]) == 0.0


def test_one_channel_tap_ignores_the_others() -> None:
    tap = AudioTap(16000, channels=frozenset({1}))
    tap.put(0, 16000, tone(16000, 0.1))
    assert rms(tap.read(1600)) == 0.0
    assert not tap.hears(0) and tap.hears(1)


def test_a_burst_is_cut_so_that_the_delay_stays_bounded() -> None:
    tap = AudioTap(16000, max_delay_s=0.25, keep_s=0.06)
    tap.put(0, 16000, tone(16000, 2.0))  # two seconds at once
    assert tap.delay_s <= 0.06 + 1e-9
    assert tap.dropped_samples >= int(1.9 * 16000)


def test_silence_forgets_a_channel_and_close_stops_everything() -> None:
    tap = AudioTap(16000)
    tap.put(0, 16000, tone(16000, 0.1))
    tap.silence(0)
    assert rms(tap.read(1600)) == 0.0
    tap.close()
    tap.put(0, 16000, tone(16000, 0.1))
    assert tap.closed.is_set() and rms(tap.read(1600)) == 0.0
