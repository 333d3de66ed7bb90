"""The JSON messages Deepgram sends (``Results``, ``SpeechStarted``, ``UtteranceEnd``, ``Metadata``, ``Error``), in
the shapes of Deepgram's API reference and of the deepgram-sdk response types, built from the call's events."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from media_server.ingest.deepgram.options import ListenOptions
from media_server.v1 import events_pb2 as pb


@dataclass(frozen=True)
class ModelInfo:
    """What ``model_info`` says: the engine that really transcribes, under a stable UUID derived from its name."""

    name: str
    version: str = "1"
    arch: str = "whisper"

    @property
    def uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"media-server:{self.name}:{self.version}"))

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "arch": self.arch}


_EDGE_PUNCT = '.,?!;:"“”‘’()…¿¡-—'
_PLACEHOLDER = re.compile(r"^\[[A-Z_]+\]")


def plain(text: str) -> str:
    """A transcript without punctuation and casing, as Deepgram's ``punctuate=false``: punctuation at the edges of
    each word goes ("Hello," -> "hello"), inside it stays ("don't", "3.5"); redaction placeholders stay as they are."""
    return " ".join(w for w in (plain_word(t) for t in text.split()) if w)


def plain_word(word: str) -> str:
    word = word.strip()
    placeholder = _PLACEHOLDER.match(word)
    if placeholder:
        return placeholder.group()
    return word.strip(_EDGE_PUNCT).lower()


def speaker_number(label: str) -> int | None:
    """ "speaker 2" -> 1 (Deepgram counts from 0); None when the word has no diarized speaker."""
    head, _, number = label.rpartition(" ")
    if head == "speaker" and number.isdigit():
        return max(0, int(number) - 1)
    return None


def results_message(
    transcript: pb.Transcript,
    options: ListenOptions,
    channels: int,
    request_id: str,
    model: ModelInfo,
    *,
    from_finalize: bool = False,
    default_speaker: int = 0,
) -> dict[str, Any]:
    """A ``Results`` message. ``default_speaker``: the diarized speaker of words that have none yet (interims)."""
    words = []
    for w in transcript.words:
        entry: dict[str, Any] = {
            "word": plain_word(w.word),
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "confidence": round(w.confidence, 4),
            "punctuated_word": w.word.strip() if options.punctuate else plain_word(w.word),
        }
        if options.diarize:
            number = speaker_number(w.speaker)
            entry["speaker"] = default_speaker if number is None else number
        words.append(entry)
    text = transcript.text.strip() if options.punctuate else plain(transcript.text)
    final = transcript.is_final
    return {
        "type": "Results",
        "channel_index": [transcript.channel, channels],
        "duration": round(max(0.0, transcript.end - transcript.start), 3),
        "start": round(transcript.start, 3),
        "is_final": final,
        "speech_final": final and transcript.speech_final and options.speech_final and not from_finalize,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [{"transcript": text, "confidence": round(transcript.confidence, 4), "words": words}]
        },
        "metadata": {"request_id": request_id, "model_info": model.as_json(), "model_uuid": model.uuid},
    }


def speech_started_message(event: pb.SpeechStarted, channels: int) -> dict[str, Any]:
    return {"type": "SpeechStarted", "channel": [event.channel, channels], "timestamp": round(event.start, 3)}


def utterance_end_message(event: pb.UtteranceEnd, channels: int) -> dict[str, Any]:
    return {
        "type": "UtteranceEnd",
        "channel": [event.channel, channels],
        "last_word_end": round(event.last_word_end, 3),
    }


def metadata_message(
    request_id: str,
    created: datetime,
    duration: float,
    channels: int,
    sha256: str,
    model: ModelInfo,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The summary sent last, before the server closes the stream (after CloseStream)."""
    message: dict[str, Any] = {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": channels,
        "models": [model.uuid],
        "model_info": {model.uuid: model.as_json()},
    }
    if warnings:
        message["warnings"] = [{"type": "warning", "message": w} for w in warnings]
    return message


ErrorVariant = Literal["SchemaError", "ProtocolError", "DataError"]


def error_message(
    description: str, variant: ErrorVariant = "ProtocolError", message: str | None = None
) -> dict[str, Any]:
    """An ``Error`` message: the stream goes on (a control message it could not use, audio after CloseStream)."""
    out: dict[str, Any] = {"type": "Error", "variant": variant, "description": description}
    if message is not None:
        out["message"] = message[:256]
    return out
