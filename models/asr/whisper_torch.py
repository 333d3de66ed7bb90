"""Whisper in torch, for GPUs where CTranslate2's CUDA build is not available.

Why this design: no registry package ships Whisper weights in a torch format, and NeMo models need
downloaded checkpoints, so neither can be tested offline. The bundled tiny.en weights exist in
CTranslate2's format; ``ct2_weights`` reads them and this module runs the same architecture in plain
torch (encoder: two convolutions and pre-norm self-attention blocks; decoder: self- and cross-attention
blocks, tied output projection). Any CTranslate2 Whisper directory (a local path) loads the same way.

Decoding is greedy with the CTranslate2 engine's windows, prompts and loop guard; word times come from
the cross-attention of the upper half of the decoder layers, aligned with dynamic time warping as in
openai-whisper.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import merge_punctuations
from tokenizers import Tokenizer as HFTokenizer
from torch import Tensor, nn

from models.asr.ct2_weights import CT2Model, read_ct2_model
from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis, Word
from models.asr.loader import resolve_model
from models.asr.whisper_ct2 import (
    APPEND_PUNCTUATIONS,
    PREPEND_PUNCTUATIONS,
    WINDOW_MARGIN_FRAMES,
    WINDOWS,
    _compression_ratio,
    _fit,
    _token_budget,
    _trim_loop,
)
from models.audio import MODEL_SAMPLE_RATE

log = logging.getLogger(__name__)


class _Attention(nn.Module):
    def __init__(self, weights: dict[str, Tensor], prefix: str, heads: int, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.cross = cross
        self.w = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}

    def _linear(self, x: Tensor, name: str) -> Tensor:
        return F.linear(x, self.w[f"{name}/weight"], self.w.get(f"{name}/bias"))

    def forward(self, x: Tensor, memory: Tensor | None = None, causal: bool = False) -> tuple[Tensor, Tensor]:
        b, n, d = x.shape
        h = self.heads
        if self.cross:
            assert memory is not None
            q = self._linear(x, "linear_0")
            k, v = self._linear(memory, "linear_1").chunk(2, dim=-1)
            out_name = "linear_2"
        else:
            q, k, v = self._linear(x, "linear_0").chunk(3, dim=-1)
            out_name = "linear_1"

        def split(t: Tensor) -> Tensor:
            return t.view(b, t.shape[1], h, d // h).transpose(1, 2)

        q, k, v = split(q), split(k), split(v)
        scores = (q @ k.transpose(-1, -2)) / (d // h) ** 0.5
        if causal:
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        weights = scores.float().softmax(dim=-1).to(q.dtype)
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self._linear(out, out_name), weights


class TorchWhisper(nn.Module):
    """The Whisper network, its weights taken from a CTranslate2 model file."""

    def __init__(self, model: CT2Model, device: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.w = {
            name: torch.from_numpy(np.array(value, dtype=np.float32)).to(device=device, dtype=dtype)
            for name, value in model.variables.items()
            if value.dtype in (np.float16, np.float32)
        }
        self.heads = int(model.variables["encoder/num_heads"])
        self.encoder_layers = _count_layers(self.w, "encoder")
        self.decoder_layers = _count_layers(self.w, "decoder")
        self.attn = {}
        for i in range(self.encoder_layers):
            self.attn[f"e{i}"] = _Attention(self.w, f"encoder/layer_{i}/self_attention/", self.heads, False)
        for i in range(self.decoder_layers):
            self.attn[f"d{i}"] = _Attention(self.w, f"decoder/layer_{i}/self_attention/", self.heads, False)
            self.attn[f"c{i}"] = _Attention(self.w, f"decoder/layer_{i}/attention/", self.heads, True)

    def _ln(self, x: Tensor, name: str) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}/gamma"], self.w[f"{name}/beta"], eps=1e-5)

    def _ffn(self, x: Tensor, name: str) -> Tensor:
        hidden = F.gelu(F.linear(x, self.w[f"{name}/linear_0/weight"], self.w[f"{name}/linear_0/bias"]))
        return F.linear(hidden, self.w[f"{name}/linear_1/weight"], self.w[f"{name}/linear_1/bias"])

    def encode(self, mel: Tensor) -> Tensor:
        w = self.w
        x = F.gelu(F.conv1d(mel, w["encoder/conv1/weight"], w["encoder/conv1/bias"], padding=1))
        x = F.gelu(F.conv1d(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], stride=2, padding=1))
        x = x.transpose(1, 2)
        x = x + w["encoder/position_encodings/encodings"][: x.shape[1]]
        for i in range(self.encoder_layers):
            p = f"encoder/layer_{i}"
            x = x + self.attn[f"e{i}"](self._ln(x, f"{p}/self_attention/layer_norm"))[0]
            x = x + self._ffn(self._ln(x, f"{p}/ffn/layer_norm"), f"{p}/ffn")
        return self._ln(x, "encoder/layer_norm")

    def decode(self, tokens: Tensor, memory: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits for every position, and the cross-attention weights of each layer."""
        w = self.w
        x = (
            F.embedding(tokens, w["decoder/embeddings/weight"])
            + w["decoder/position_encodings/encodings"][: tokens.shape[1]]
        )
        cross = []
        for i in range(self.decoder_layers):
            p = f"decoder/layer_{i}"
            x = x + self.attn[f"d{i}"](self._ln(x, f"{p}/self_attention/layer_norm"), causal=True)[0]
            out, weights = self.attn[f"c{i}"](self._ln(x, f"{p}/attention/layer_norm"), memory)
            x = x + out
            cross.append(weights)
            x = x + self._ffn(self._ln(x, f"{p}/ffn/layer_norm"), f"{p}/ffn")
        x = self._ln(x, "decoder/layer_norm")
        return x @ w["decoder/embeddings/weight"].T, cross


class WhisperTorchEngine:
    """The same contract as ``WhisperCT2Engine``, computed by torch (CPU or CUDA).

    Requests are decoded one after the other for now (``batching=False``): the scheduler then takes one at
    a time. Batched greedy decoding (padded prompts, a KV cache) is the next step for GPU throughput.
    """

    capabilities = EngineCapabilities(streaming=False, interim_results=True, word_timestamps=True, batching=False)

    def __init__(self, model: str | None = None, device: str = "cpu", dtype: str = "float32") -> None:
        path, description = resolve_model(model)
        self.name = f"{description} (torch)"
        self.device = device
        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        self.net = TorchWhisper(read_ct2_model(path), device, torch_dtype).eval()
        self.dtype = torch_dtype
        config = json.loads((Path(path) / "config.json").read_text())
        self.suppress = [t for t in config.get("suppress_ids", []) if t >= 0]
        self.features = FeatureExtractor(feature_size=80)
        hf = HFTokenizer.from_file(str(Path(path) / "tokenizer.json"))
        self.tokenizer = Tokenizer(hf, multilingual=False, task=None, language=None)
        self._space = self.tokenizer.encode(" ")[0]

    @torch.inference_mode()
    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        return [self._decode(request) for request in requests]

    def _decode(self, request: DecodeRequest, window: int | None = None) -> Hypothesis:
        tok = self.tokenizer
        mel = self.features(request.audio)[..., :-1]
        frames = int(mel.shape[-1])
        duration = request.audio.size / MODEL_SAMPLE_RATE
        if window is None:
            window = next((w for w in WINDOWS if frames + WINDOW_MARGIN_FRAMES <= w), WINDOWS[-1])
        x = torch.from_numpy(_fit(mel, window)[None]).to(self.device, self.dtype)
        memory = self.net.encode(x)
        prompt = [*tok.sot_sequence, tok.no_timestamps]
        if request.hotwords or request.prompt:
            context = tok.encode(" " + " ".join([*request.hotwords, request.prompt or ""]).strip())[-120:]
            prompt = [tok.sot_prev, *context, *prompt]
        if request.prefix:
            prompt += tok.encode(" " + request.prefix.strip())
        budget = _token_budget(duration)
        tokens = torch.tensor([prompt], device=self.device)
        probs: list[float] = []
        generated: list[int] = []
        no_speech = 0.0
        for step in range(budget + 1):
            all_logits = self.net.decode(tokens, memory)[0][0]
            if step == 0:
                sot = prompt.index(tok.sot)
                no_speech = float(all_logits[sot].float().softmax(-1)[tok.no_speech])
            logits = all_logits[-1].float()
            logits[self.suppress] = float("-inf")
            logits[tok.timestamp_begin :] = float("-inf")
            if step == 0:
                logits[[self._space, tok.eot]] = float("-inf")
            p = logits.softmax(-1)
            nxt = int(p.argmax())
            if nxt == tok.eot:
                break
            generated.append(nxt)
            probs.append(float(p[nxt]))
            tokens = torch.cat([tokens, torch.tensor([[nxt]], device=self.device)], dim=1)
        prefix = tok.encode(" " + request.prefix.strip()) if request.prefix else []
        text_tokens = _trim_loop(prefix + generated)[: budget + len(prefix)]
        text = tok.decode(text_tokens).strip()
        suspicious = len(generated) > budget or _compression_ratio(text) > 2.4
        if suspicious and window < 3000:
            return self._decode(request, 3000)
        avg_logprob = float(np.mean(np.log(np.maximum(probs, 1e-9)))) if probs else 0.0
        if not text_tokens or (no_speech > 0.6 and avg_logprob < -1.0):
            return Hypothesis(text="")
        words = self._align(text_tokens, prompt, memory, frames, [1.0] * len(prefix) + probs, duration)
        return Hypothesis(text=text, words=words)

    def _align(
        self, text: list[int], prompt: list[int], memory: Tensor, frames: int, probs: list[float], duration: float
    ) -> tuple[Word, ...]:
        tok = self.tokenizer
        tokens = torch.tensor([[*prompt, *text, tok.eot]])
        _, cross = self.net.decode(tokens.to(self.device), memory)
        layers = cross[len(cross) // 2 :]
        weights = torch.cat([c[0] for c in layers], dim=0).float()  # [heads, tokens, audio]
        first = len(prompt) - 1  # the position whose output is the first text token
        weights = weights[:, first : first + len(text) + 1, : max(1, frames // 2)]
        weights = (weights - weights.mean(dim=-2, keepdim=True)) / (weights.std(dim=-2, keepdim=True) + 1e-6)
        matrix = _median_filter(weights, 7).mean(dim=0).cpu().numpy()
        text_idx, time_idx = _dtw(-matrix)
        words, word_tokens = tok.split_to_word_tokens([*text, tok.eot])
        boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        jump_times = time_idx[jumps] / 50.0
        alignment = []
        for i, word in enumerate(words[:-1]):
            a, b = boundaries[i], boundaries[i + 1]
            s = float(jump_times[min(a, len(jump_times) - 1)])
            e = float(jump_times[min(b, len(jump_times) - 1)])
            conf = float(np.mean(probs[a:b])) if b > a and b <= len(probs) else 0.5
            alignment.append(
                {"word": word, "tokens": word_tokens[i], "start": s, "end": max(e, s), "probability": conf}
            )
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        return tuple(
            Word(
                w["word"].strip(),
                round(min(w["start"], duration), 3),
                round(min(w["end"], duration), 3),
                round(w["probability"], 4),
            )
            for w in alignment
            if w["word"].strip()
        )


def _count_layers(weights: dict[str, Tensor], stack: str) -> int:
    return len({name.split("/")[1] for name in weights if re.match(rf"{stack}/layer_\d+/", name)})


def _median_filter(x: Tensor, width: int) -> Tensor:
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = F.pad(x[None], (pad, pad, 0, 0), mode="reflect")[0]
    return padded.unfold(-1, width, 1).median(dim=-1).values


def _dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    trace = np.zeros((n + 1, m + 1), dtype=np.int8)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
            k = int(np.argmin(options))
            acc[i, j] = cost[i - 1, j - 1] + options[k]
            trace[i, j] = k
    i, j = n, m
    path = []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(trace[i, j])
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    arr = np.array(path)
    return arr[:, 0], arr[:, 1]
