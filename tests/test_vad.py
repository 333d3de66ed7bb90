"""Silero VAD through onnxruntime, at the channel's native rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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


def _probabilities(chunks: list) -> list[float]:
    return [c.probability for c in chunks]


async def test_live_streams_are_scored_together_as_each_would_be_alone(vad: SileroVAD) -> None:
    # Three live channels (8 kHz speech, 8 kHz silence, 16 kHz speech) fed in 20 ms frames, interleaved, through
    # one batcher: each gets the scores it gets alone, in order, and they came from shared model runs.
    from models.vad import VADBatcher

    pcm, _ = speech_and_silence()
    speech8 = int16_to_float32(pcm)
    speech16 = resample(speech8, 8000, 16000)
    silence8 = np.zeros_like(speech8)
    alone = [_probabilities(vad.new_stream(rate).process(a)) for a, rate in ((speech8, 8000), (speech16, 16000))]
    batcher = VADBatcher(vad, max_wait_s=0.02)
    streams = [vad.new_stream(8000), vad.new_stream(8000), vad.new_stream(16000)]
    got: list[list[float]] = [[], [], []]
    ends: list[list[int]] = [[], [], []]

    def deliver(i: int) -> Callable[[list], None]:
        def take(chunks: list) -> None:
            got[i] += _probabilities(chunks)
            ends[i] += [c.end for c in chunks]

        return take

    for offset in range(0, len(speech8), 160):
        for i, (audio, scale) in enumerate(((speech8, 1), (silence8, 1), (speech16, 2))):
            batcher.submit(streams[i], audio[offset * scale : (offset + 160) * scale], deliver(i))
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    assert not any(s.waiting for s in streams)  # all scored within the wait
    assert np.allclose(got[0], alone[0], atol=1e-5) and np.allclose(got[2], alone[1], atol=1e-5)
    assert max(got[1]) < 0.1
    assert all(ends[i] == sorted(ends[i]) for i in range(3))  # in order
    assert batcher.mean_batch >= 1.4, batcher.mean_batch  # shared runs (one per rate): that is the point


async def test_a_stream_ending_is_scored_at_once_and_one_failing_stream_spares_the_others(vad: SileroVAD) -> None:
    from models.vad import VADBatcher

    batcher = VADBatcher(vad, max_wait_s=10.0)  # nothing is scored by the timer within this test
    a, b, c, quiet = (vad.new_stream(8000) for _ in range(4))
    scored: dict[str, int] = {"a": 0, "c": 0}

    def count(name: str) -> Callable[[list], None]:
        def take(chunks: list) -> None:
            scored[name] += len(chunks)

        return take

    def fail(chunks: list) -> None:
        raise RuntimeError("this stream's bug")

    audio = np.zeros(800, dtype=np.float32)  # 100 ms: three whole chunks of 32 ms
    for stream in (a, b, c, quiet):  # four live streams: while one has no chunk waiting, the others wait for it
        batcher.submit(stream, audio[:0], count("a"))
    batcher.submit(a, audio, count("a"))
    batcher.submit(b, audio, fail)
    batcher.submit(c, audio, count("c"))
    assert scored == {"a": 0, "c": 0} and a.waiting == 3
    batcher.drain(a)  # a stream's end (or a client's Finalize): its chunks now, not after the wait
    assert scored == {"a": 3, "c": 0}
    batcher.flush()
    assert scored == {"a": 3, "c": 3} and not b.waiting and not c.waiting


def test_without_a_running_event_loop_audio_is_scored_as_it_comes(vad: SileroVAD) -> None:
    from models.vad import VADBatcher

    batcher, stream, scored = VADBatcher(vad, max_wait_s=0.02), vad.new_stream(8000), []
    other = vad.new_stream(8000)
    batcher.submit(other, np.zeros(0, dtype=np.float32), scored.extend)  # live: in a loop, stream would wait for it
    batcher.submit(stream, np.zeros(800, dtype=np.float32), scored.extend)
    assert len(scored) == 3 and not stream.waiting
