"""Whisper through faster-whisper / CTranslate2: int8 on the CPU, float16 on CUDA."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from faster_whisper import WhisperModel

from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis, Word
from models.asr.loader import resolve_model

log = logging.getLogger(__name__)

# Greedy decoding; finals may retry at higher temperatures when the text looks like a decoder loop.
INTERIM_TEMPERATURES = (0.0,)
FINAL_TEMPERATURES = (0.0, 0.4)


class FasterWhisperEngine:
    """One Whisper model on one device. Called only from the scheduler's worker thread."""

    capabilities = EngineCapabilities(streaming=False, interim_results=True, word_timestamps=True)

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        download_root: str | None = None,
        language: str = "en",
        workers: int = 1,
    ) -> None:
        path, description = resolve_model(model, download_root)
        self.model = WhisperModel(
            path, device=device, compute_type=compute_type, cpu_threads=cpu_threads, num_workers=max(1, workers)
        )
        self.name = description
        self.device = device
        # English-only checkpoints (tiny.en) take no language token.
        self.language: str | None = language if self.model.model.is_multilingual else None
        log.info("loaded Whisper %s on %s (%s)", description, device, compute_type)

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        return [self._decode(request) for request in requests]

    def _decode(self, request: DecodeRequest) -> Hypothesis:
        segments, _info = self.model.transcribe(
            request.audio,
            language=self.language,
            beam_size=1,
            best_of=1,
            temperature=list(FINAL_TEMPERATURES if request.final else INTERIM_TEMPERATURES),
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
            initial_prompt=request.prompt,
            hotwords=" ".join(request.hotwords) or None,
        )
        words: list[Word] = []
        texts: list[str] = []
        for segment in segments:
            texts.append(segment.text.strip())
            for w in segment.words or ():
                words.append(
                    Word(
                        word=w.word.strip(),
                        start=float(w.start),
                        end=float(w.end),
                        confidence=float(w.probability),
                    )
                )
        return Hypothesis(text=" ".join(t for t in texts if t), words=tuple(w for w in words if w.word))
