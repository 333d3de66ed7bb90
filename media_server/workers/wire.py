"""Decode work and its results as ``worker.proto`` messages, both ways; pure functions."""

from __future__ import annotations

from typing import Literal

import numpy as np

from media_server.v1 import worker_pb2 as pb
from models.asr.engine import DecodeRequest, Hypothesis, Word

KEY_HEADER = "x-worker-key"  # the metadata that carries the shared key

WireFormat = Literal["s16", "f32"]


def job_of(request: DecodeRequest, wire_format: WireFormat = "f32") -> pb.DecodeJob:
    """``request`` as a job (its ``id`` is set per attempt). ``f32`` sends the samples as they are; ``s16`` rounds
    them to 16 bits (the telephony audio was 16-bit, but resampled since): half the bytes, slightly other words."""
    audio = np.asarray(request.audio, dtype=np.float32)
    job = pb.DecodeJob(
        final=request.final,
        hotwords=list(request.hotwords),
        segmented=request.segmented,
        fairness_key=request.fairness_key,
        batch=request.batch,
    )
    if wire_format == "s16":
        job.pcm_s16 = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype("<i2").tobytes()
    else:
        job.pcm_f32 = audio.astype("<f4").tobytes()
    if request.prompt is not None:
        job.prompt = request.prompt
    if request.prefix is not None:
        job.prefix = request.prefix
    return job


def request_of(job: pb.DecodeJob) -> DecodeRequest:
    """The decode request a job carries; ``ValueError`` for audio that is not whole samples."""
    kind = job.WhichOneof("audio")
    if kind == "pcm_s16":
        if len(job.pcm_s16) % 2:
            raise ValueError("pcm_s16 is not a whole number of 16-bit samples")
        audio = np.frombuffer(job.pcm_s16, dtype="<i2").astype(np.float32) / 32768.0
    elif kind == "pcm_f32":
        if len(job.pcm_f32) % 4:
            raise ValueError("pcm_f32 is not a whole number of 32-bit samples")
        audio = np.frombuffer(job.pcm_f32, dtype="<f4").astype(np.float32)
    else:
        audio = np.zeros(0, dtype=np.float32)
    return DecodeRequest(
        audio=audio,
        final=job.final,
        prompt=job.prompt if job.HasField("prompt") else None,
        hotwords=tuple(job.hotwords),
        prefix=job.prefix if job.HasField("prefix") else None,
        segmented=job.segmented,
        fairness_key=job.fairness_key,
        batch=job.batch,
    )


def hypothesis_pb(hypothesis: Hypothesis) -> pb.WorkerHypothesis:
    return pb.WorkerHypothesis(
        text=hypothesis.text,
        words=[pb.WorkerWord(word=w.word, start=w.start, end=w.end, confidence=w.confidence) for w in hypothesis.words],
        segments=list(hypothesis.segments),
    )


def hypothesis_of(message: pb.WorkerHypothesis) -> Hypothesis:
    return Hypothesis(
        text=message.text,
        words=tuple(Word(w.word, w.start, w.end, w.confidence) for w in message.words),
        segments=tuple(message.segments),
    )
