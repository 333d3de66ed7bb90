"""The call's transcript events as Riva's results: one alternative each, punctuation only when asked for, words
(with ``speaker_tag``) in finals when word time offsets or diarization are asked for."""

from __future__ import annotations

import re

from media_server.calls.lifecycle import LiveCall
from media_server.ingest.riva.config import RivaRequest
from media_server.riva import riva_asr_pb2 as rasr
from media_server.v1 import events_pb2 as pb

_CHANNEL_TAGS = {"rep": 1, "customer": 2}

# Punctuation Whisper writes that Riva leaves out without its punctuation model; inside a word ("3.5", "U.S")
# it stays, and so do apostrophes and symbols that carry meaning ("$", "%").
_PUNCTUATION = re.compile(r"""(?<![\w])[.,!?;:"“”«»()\[\]{}…–—-]+|[.,!?;:"“”«»()\[\]{}…–—-]+(?![\w])""")


def strip_punctuation(text: str) -> str:
    return " ".join(_PUNCTUATION.sub("", text).split())


def streaming_result(event: pb.Event, request: RivaRequest, call: LiveCall) -> rasr.StreamingRecognitionResult | None:
    """A transcript event as Riva's streaming result (interims only when asked for); None for other events."""
    if event.type != "transcript":
        return None
    t = event.transcript
    if not t.is_final and not request.interim_results:
        return None
    alt = alternative(t, request)
    if alt is None:
        return None
    return rasr.StreamingRecognitionResult(
        alternatives=[alt],
        is_final=t.is_final,
        stability=0.0 if t.is_final else t.stability,  # Riva: set on interims only
        channel_tag=t.channel + 1,
        audio_processed=call.position(t.channel),
    )


def speaker_tag(word: pb.Word, channel_speaker: str) -> int:
    """Riva's ``speaker_tag``: the diarizer's "speaker N" on a mixed channel, else 1 for the rep, 2 the customer."""
    match = re.search(r"(\d+)$", word.speaker)
    if match:
        return int(match.group(1))
    return _CHANNEL_TAGS.get(channel_speaker, 0)


def alternative(t: pb.Transcript, request: RivaRequest) -> rasr.SpeechRecognitionAlternative | None:
    """The one alternative of a transcript event; None when nothing was said. Finals carry their words when word
    time offsets or diarization are asked for (Riva gives words in finals only)."""
    text = t.text if request.punctuation else strip_punctuation(t.text)
    if not text:
        return None
    alt = rasr.SpeechRecognitionAlternative(transcript=text, confidence=t.confidence)
    if t.is_final and (request.word_time_offsets or request.diarization):
        for w in t.words:
            word = w.word.strip() if request.punctuation else strip_punctuation(w.word)
            if not word:
                continue
            alt.words.append(
                rasr.WordInfo(
                    start_time=round(w.start * 1000),
                    end_time=round(w.end * 1000),
                    word=word,
                    confidence=w.confidence,
                    speaker_tag=speaker_tag(w, t.speaker) if request.diarization else 0,
                )
            )
    return alt
