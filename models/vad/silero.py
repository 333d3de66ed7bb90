"""Silero VAD (v5/v6) run as ONNX with bare onnxruntime: no torch.

The model works natively at 8 kHz (256-sample chunks) and 16 kHz (512-sample chunks); other rates are
resampled to 16 kHz first. One ``SileroVAD`` holds the ONNX session and is shared by every stream; each
``VADStream`` keeps its own recurrent state and context, so channels never disturb one another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.audio import Float32Array, StreamResampler
from models.vad.batcher import VADBatcher

log = logging.getLogger(__name__)

NATIVE_RATES = (8000, 16000)


BUNDLED_MODEL = Path(__file__).parent / "weights" / "silero_vad.onnx"
"""Silero VAD v6 (``silero_vad.onnx`` of silero-vad 6.2.3, MIT: ``weights/LICENSE``), shipped in this package."""


def locate_silero_onnx(configured: str | Path | None = None) -> Path:
    """Find the Silero ONNX file: a configured path (``vad.model_path``), else the copy bundled with this package."""
    path = Path(configured) if configured else BUNDLED_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"Silero VAD model not found at {path}")
    return path


@dataclass(frozen=True)
class VADChunk:
    """Speech probability for one chunk; ``end`` is the chunk's end in samples of the input stream."""

    end: int
    probability: float


class SileroVAD:
    """The shared model. ``run`` is thread-safe (onnxruntime sessions are). With ``batch_wait_s`` its
    ``batcher`` scores live streams' chunks together, each waiting at most that long (``batcher.py``)."""

    def __init__(self, model_path: str | Path | None = None, batch_wait_s: float = 0.0) -> None:
        path = locate_silero_onnx(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.path = path
        self.batcher = VADBatcher(self, batch_wait_s) if batch_wait_s > 0 else None

    def new_stream(self, sample_rate: int) -> VADStream:
        return VADStream(self, sample_rate)

    def run(self, chunks: Float32Array, state: Float32Array, sample_rate: int) -> tuple[Float32Array, Float32Array]:
        """One step for a batch of chunks (with their context prepended): probabilities and new state."""
        out, new_state = self.session.run(
            None, {"input": chunks, "state": state, "sr": np.array(sample_rate, dtype=np.int64)}
        )
        return np.asarray(out, dtype=np.float32)[:, 0], np.asarray(new_state, dtype=np.float32)


class VADStream:
    """Speech probabilities for one channel, at its native rate. ``process`` scores audio at once; a
    ``VADBatcher`` instead takes ``add``-ed audio and scores the chunks of many streams in one run."""

    def __init__(self, model: SileroVAD, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ValueError(f"invalid sample rate {sample_rate}")
        self.model = model
        self.input_rate = sample_rate
        self.rate = sample_rate if sample_rate in NATIVE_RATES else 16000
        self._resampler = StreamResampler(sample_rate, self.rate)
        self.chunk = 256 if self.rate == 8000 else 512
        self._context_size = 32 if self.rate == 8000 else 64
        self._context = np.zeros((1, self._context_size), dtype=np.float32)
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)  # audio at the VAD rate not yet scored
        self._consumed = 0  # samples at the VAD rate that have been scored

    def process(self, audio: Float32Array) -> list[VADChunk]:
        """Score every whole chunk now available; ``end`` is reported in samples of the input rate."""
        self.add(audio)
        return self.score_waiting()

    def add(self, audio: Float32Array) -> None:
        """Take audio to be scored later (``waiting`` says how many whole chunks it holds)."""
        audio = self._resampler.process(audio)
        self._pending = np.concatenate([self._pending, audio]) if self._pending.size else audio.copy()

    @property
    def waiting(self) -> int:
        """Whole chunks taken and not yet scored."""
        return self._pending.size // self.chunk

    def score_waiting(self) -> list[VADChunk]:
        """Score the waiting chunks one by one."""
        results: list[VADChunk] = []
        while self.waiting:
            prob, state = self.model.run(self.next_input(), self.state, self.rate)
            results.append(self.advance(float(prob[0]), state))
        return results

    def next_input(self) -> Float32Array:
        """The next waiting chunk with its context prepended: the model's input row, shape (1, context + chunk)."""
        return np.concatenate([self._context, self._pending[None, : self.chunk]], axis=1)

    def advance(self, probability: float, state: Float32Array) -> VADChunk:
        """The next waiting chunk was scored (``state``: the model's new state for this stream)."""
        x = self._pending[: self.chunk]
        self._context = x[None, -self._context_size :].copy()
        self._pending = self._pending[self.chunk :]
        self.state = state
        self._consumed += self.chunk
        return VADChunk(end=self._consumed * self.input_rate // self.rate, probability=probability)
