"""Keyterm boosting: recall of rare names on a scripted call, with and without boosting.

    .venv/bin/python benchmarks/keyterms.py

Ten sentences full of made-up product and competitor names (tests/synth.py), spoken by four flite
voices and passed through an 8 kHz telephone channel, are decoded by the engine once plainly and
once with the names as keyterms. Recall: share of the names' occurrences that appear, spelled
exactly, in the transcript. Also reports the WER of the rest of the words. Prints one JSON document.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

from models.asr.engine import DecodeRequest  # noqa: E402
from models.asr.whisper_ct2 import WhisperCT2Engine  # noqa: E402
from models.audio import int16_to_float32, resample  # noqa: E402
from tests.speech import wer  # noqa: E402
from tests.synth import KEYTERMS, SCRIPT, VOICES, flite_available, speak  # noqa: E402


def recall(sentences: list[str], hypotheses: list[str]) -> tuple[int, int]:
    hits = total = 0
    for sentence, hypothesis in zip(sentences, hypotheses, strict=True):
        said = re.findall(r"[A-Za-z]+", hypothesis.lower())
        for term in KEYTERMS:
            n = sentence.count(term)
            total += n
            hits += min(n, said.count(term.lower()))
    return hits, total


def main() -> int:
    if not flite_available():
        print("flite is not installed: run `make system-deps`", file=sys.stderr)
        return 2
    threadpool_limits(1)
    engine = WhisperCT2Engine(cpu_threads=2)
    sentences, requests = [], []
    for voice in VOICES:
        for sentence in SCRIPT:
            pcm, rate = speak(sentence, voice)
            phone = resample(int16_to_float32(pcm), rate, 8000)  # a telephone channel's bandwidth
            sentences.append(sentence)
            requests.append(resample(phone, 8000, 16000))
    results = {}
    for name, hotwords in (("without", ()), ("with", KEYTERMS)):
        started = time.monotonic()
        hyps = [h.text for h in engine.decode_batch([DecodeRequest(a, True, hotwords=hotwords) for a in requests])]
        hits, total = recall(sentences, hyps)
        results[name] = {
            "keyterm_recall": round(hits / total, 3),
            "keyterms_found": hits,
            "keyterms_said": total,
            "wer": round(wer(sentences, hyps), 3),
            "decode_seconds": round(time.monotonic() - started, 2),
        }
    print(
        json.dumps(
            {"utterances": len(sentences), "voices": list(VOICES), "keyterms": list(KEYTERMS), **results}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
