"""Resemblyzer's speaker encoder (GE2E d-vectors) run in numpy: no torch at run time.

The network, from resemblyzer 0.1.4: 40-channel power mel frames (25 ms window, 10 ms hop, 16 kHz) into
a 3-layer LSTM (256 units), the last layer's final hidden state through Linear(256, 256) and ReLU, then
L2-normalised. An utterance is cut into partials of 160 frames (1.6 s) and the partial embeddings are
averaged (``embed_utterance``); a diarization window is embedded whole (``embed_windows``, which runs windows
of any lengths, of any number of calls, as one batch).

The weights are resemblyzer's ``pretrained.pt`` (Apache-2.0), converted once to ``weights/resemblyzer_encoder.npz``
(the network's tensors only, 5.7 MB; ``python -m models.diarization.convert``) and shipped in this package, so
neither resemblyzer nor torch is installed to run it. A configured path (``diarization.weights_path``) to a
``torch.save`` checkpoint of the same network (resemblyzer's own file, read without torch) or to such an ``.npz``
works too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.audio import MODEL_SAMPLE_RATE, Float32Array
from models.diarization.mel import mel_spectrogram
from models.diarization.torch_checkpoint import read_torch_checkpoint

N_MELS = 40
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
PARTIAL_FRAMES = 160  # 1.6 s: what the encoder was trained on
HIDDEN = 256
LAYERS = 3


BUNDLED_WEIGHTS = Path(__file__).parent / "weights" / "resemblyzer_encoder.npz"
"""resemblyzer 0.1.4's ``pretrained.pt``, its network's tensors as float32 arrays (Apache-2.0: ``weights/LICENSE``)."""


def locate_resemblyzer_weights(configured: str | Path | None = None) -> Path:
    """Find the encoder's weights: a configured path, else the converted copy bundled with this package."""
    path = Path(configured) if configured else BUNDLED_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"voice encoder weights not found at {path}")
    return path


def read_encoder_state(path: str | Path) -> Mapping[str, Any]:
    """The network's tensors by name (``lstm.weight_ih_l0``...): from an ``.npz`` of arrays, or from a PyTorch
    checkpoint (a state dict, or resemblyzer's ``{"model_state": ...}``), read without torch and without running
    code (neither format can)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    checkpoint = read_torch_checkpoint(path)
    if not isinstance(checkpoint, dict):
        return {}
    state = checkpoint.get("model_state", checkpoint)
    return state if isinstance(state, Mapping) else {}


def _sigmoid_tanh_scale() -> Float32Array:
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: one tanh over all four gates (i, f, g, o), g being a plain tanh.
    scale = np.full(4 * HIDDEN, 0.5, dtype=np.float32)
    scale[2 * HIDDEN : 3 * HIDDEN] = 1.0
    return scale


class VoiceEncoder:
    """The shared model: stateless once loaded, so one instance serves every call, from any thread.

    About 13 ms of one core per 1.5 s window alone, 7-7.5 ms each in batches of 16 to 32 (numpy's BLAS on one
    thread, this project's 2-core EPYC; ``benchmarks/diarization_batch.py``).
    """

    def __init__(self, weights_path: str | Path | None = None) -> None:
        self.path = locate_resemblyzer_weights(weights_path)
        state = read_encoder_state(self.path)
        try:
            self._load(state)
        except KeyError as exc:
            raise ValueError(f"{self.path}: not a resemblyzer voice encoder checkpoint (missing {exc})") from None

    def _load(self, state: Mapping[str, Any]) -> None:
        scale = _sigmoid_tanh_scale()

        def f32(name: str) -> Float32Array:
            return np.ascontiguousarray(np.asarray(state[name], dtype=np.float32))

        # Weights are stored transposed (x @ W.T) and pre-scaled for the single-tanh gate trick.
        self._w_ih: list[Float32Array] = []
        self._w_hh: list[Float32Array] = []
        self._bias: list[Float32Array] = []
        for layer in range(LAYERS):
            w_ih = f32(f"lstm.weight_ih_l{layer}")
            w_hh = f32(f"lstm.weight_hh_l{layer}")
            if w_hh.shape != (4 * HIDDEN, HIDDEN) or w_ih.shape != (4 * HIDDEN, N_MELS if layer == 0 else HIDDEN):
                raise ValueError(f"{self.path}: unexpected LSTM shapes {w_ih.shape}, {w_hh.shape}")
            self._w_ih.append(np.ascontiguousarray((w_ih * scale[:, None]).T))
            self._w_hh.append(np.ascontiguousarray(w_hh * scale[:, None]))  # (4H, H): gates = W @ h, h a column
            bias = f32(f"lstm.bias_ih_l{layer}") + f32(f"lstm.bias_hh_l{layer}")
            self._bias.append((bias * scale).astype(np.float32))
        self._linear_w = np.ascontiguousarray(f32("linear.weight").T)
        self._linear_b = f32("linear.bias")

    # -- the network ---------------------------------------------------------------------------------

    def forward(self, mels: Float32Array, lengths: Sequence[int] | None = None) -> Float32Array:
        """Embeddings of a batch of mel spectrograms, shape (batch, frames, 40) -> (batch, 256), unit norm.

        ``lengths``: how many frames of each item count (the rest is padding). Each item's embedding is the LSTM's
        state after its own last frame, as if it had run alone: items run longest first, and each step updates
        only the items that still have a frame, so padding costs nothing and changes nothing.
        """
        mels = np.asarray(mels, dtype=np.float32)
        if mels.ndim != 3 or mels.shape[2] != N_MELS or mels.shape[1] == 0 or mels.shape[0] == 0:
            raise ValueError(f"expected mels of shape (batch > 0, frames > 0, {N_MELS}), got {mels.shape}")
        batch, frames, _ = mels.shape
        counts = np.full(batch, frames, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
        if counts.shape != (batch,) or counts.min() < 1 or counts.max() > frames:
            raise ValueError(f"lengths must be {batch} frame counts of 1 to {frames}")
        order = np.argsort(-counts, kind="stable")
        x: npt.NDArray[Any] = mels if lengths is None else mels[order]
        # running[t]: how many items (the first ones, longest first) have a frame t.
        running = np.searchsorted(-counts[order], -np.arange(frames), side="left")
        h = np.zeros((batch, HIDDEN), dtype=np.float32)
        for layer in range(LAYERS):
            projected = x @ self._w_ih[layer]  # (batch, frames, 4H), for every step at once
            projected += self._bias[layer]
            outputs = np.zeros((batch, frames, HIDDEN), dtype=np.float32) if layer < LAYERS - 1 else None
            h = self._recur(self._w_hh[layer], projected, running, outputs)
            if outputs is not None:
                x = outputs
        embeds = np.maximum(h @ self._linear_w + self._linear_b, 0.0)
        embeds /= np.maximum(np.linalg.norm(embeds, axis=1, keepdims=True), 1e-12)
        out: Float32Array = np.empty((batch, HIDDEN), dtype=np.float32)
        out[order] = embeds
        return out

    @staticmethod
    def _recur(
        w_hh: Float32Array,
        projected: npt.NDArray[Any],
        running: npt.NDArray[np.intp],
        outputs: npt.NDArray[Any] | None,
    ) -> Float32Array:
        """One LSTM layer's recurrence; the final state of each item (batch, H); every step's output into
        ``outputs`` when given.

        The state is kept as columns (H, n), so that each step is W (4H x H) @ h (H x n): on small n, BLAS does that
        two to four times faster than h (n x H) @ W^T, which repacks W on every call. When items end (``running``
        drops) the state shrinks to the ones still going, and the ended ones' states are kept.
        """
        batch, frames, _ = projected.shape
        final = np.zeros((batch, HIDDEN), dtype=np.float32)
        h = np.zeros((HIDDEN, batch), dtype=np.float32)
        c = np.zeros((HIDDEN, batch), dtype=np.float32)
        t = 0
        while t < frames:
            n = int(running[t])
            end = t + int(np.count_nonzero(running[t:] == n))  # the steps with these n items
            if n < h.shape[1]:
                final[n : h.shape[1]] = h[:, n:].T
                h, c = np.ascontiguousarray(h[:, :n]), np.ascontiguousarray(c[:, :n])
            steps = np.ascontiguousarray(projected[:n, t:end].transpose(1, 2, 0))  # (steps, 4H, n)
            gates = np.empty((4 * HIDDEN, n), dtype=np.float32)
            scratch = np.empty((HIDDEN, n), dtype=np.float32)
            i, f, g, o = (gates[k * HIDDEN : (k + 1) * HIDDEN] for k in range(4))
            for k in range(end - t):
                # In place, to spare allocations: 480 small steps per window dominate the cost.
                np.matmul(w_hh, h, out=gates)
                gates += steps[k]
                np.tanh(gates, out=gates)
                gates *= 0.5  # (1 + tanh(x / 2)) / 2 is sigmoid(x) for i, f and o; g becomes (tanh + 1) / 2
                gates += 0.5
                c *= f
                np.multiply(g, 2.0, out=scratch)
                scratch -= 1.0  # back to tanh for g
                scratch *= i
                c += scratch
                np.tanh(c, out=scratch)
                np.multiply(o, scratch, out=h)
                if outputs is not None:
                    outputs[:n, t + k] = h.T
            t = end
        final[: h.shape[1]] = h.T
        return final

    # -- audio in ------------------------------------------------------------------------------------

    def embed_windows(self, windows: Sequence[Float32Array], max_batch: int = 64) -> Float32Array:
        """One embedding per window of 16 kHz audio, each window embedded whole (as a single partial).

        Windows of any lengths run together (``forward``'s ``lengths``), up to ``max_batch`` in one forward.
        """
        out = np.zeros((len(windows), HIDDEN), dtype=np.float32)
        mels = [mel_spectrogram(np.asarray(w, dtype=np.float32), MODEL_SAMPLE_RATE) for w in windows]
        for first in range(0, len(mels), max(1, max_batch)):
            group = mels[first : first + max(1, max_batch)]
            lengths = [m.shape[0] for m in group]
            padded = np.zeros((len(group), max(lengths), N_MELS), dtype=np.float32)
            for row, mel in enumerate(group):
                padded[row, : mel.shape[0]] = mel
            out[first : first + len(group)] = self.forward(padded, lengths)
        return out

    def embed_utterance(self, audio: Float32Array, rate: float = 1.3, min_coverage: float = 0.75) -> Float32Array:
        """Resemblyzer's ``VoiceEncoder.embed_utterance``: mean of 1.6 s partials, ``rate`` partials a second."""
        audio = np.asarray(audio, dtype=np.float32)
        frame_starts, padded_length = partial_slices(audio.size, rate, min_coverage)
        if padded_length > audio.size:
            audio = np.pad(audio, (0, padded_length - audio.size))
        mel = mel_spectrogram(audio, MODEL_SAMPLE_RATE)
        partials = np.stack([mel[s : s + PARTIAL_FRAMES] for s in frame_starts])
        raw = self.forward(partials).mean(axis=0)
        embedding: Float32Array = (raw / np.linalg.norm(raw)).astype(np.float32)
        return embedding


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> tuple[list[int], int]:
    """Start frames of resemblyzer's partial utterances, and the length the audio is zero-padded to."""
    if not 0 < min_coverage <= 1:
        raise ValueError("min_coverage must be in (0, 1]")
    n_frames = int(np.ceil((n_samples + 1) / HOP_SAMPLES))
    frame_step = round((MODEL_SAMPLE_RATE / rate) / HOP_SAMPLES)
    if not 0 < frame_step <= PARTIAL_FRAMES:
        raise ValueError(f"rate {rate} is out of range")
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    last = starts[-1] * HOP_SAMPLES
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP_SAMPLES)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts, (starts[-1] + PARTIAL_FRAMES) * HOP_SAMPLES
