"""What a Riva ``RecognitionConfig`` asks for, checked and mapped onto a call (``parse_config``); a
:class:`BadRequest` says what to send instead. Pure: no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from media_server.calls.call import ChannelSpec
from media_server.calls.metadata import CallMetadata, MetadataError, parse_metadata
from media_server.config import CompatSettings
from media_server.riva import riva_asr_pb2 as rasr
from media_server.riva import riva_audio_pb2 as raudio

MIN_RATE, MAX_RATE = 4000, 192000
MAX_KEYTERMS = 100
ENCODINGS = {raudio.LINEAR_PCM: "LINEAR_PCM", raudio.MULAW: "MULAW", raudio.ALAW: "ALAW"}


class BadRequest(Exception):
    """Input the service cannot take; the message says what to send instead (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class AudioFormat:
    encoding: int  # raudio.LINEAR_PCM, MULAW or ALAW
    sample_rate: int  # 0: not given (a WAV header must say)
    channels: int

    @property
    def sample_bytes(self) -> int:
        return 2 if self.encoding == raudio.LINEAR_PCM else 1


@dataclass(frozen=True)
class RivaRequest:
    """What a ``RecognitionConfig`` asks for, checked."""

    format: AudioFormat
    call_id: str | None
    metadata: CallMetadata
    speaker: str  # whose voice a mono stream carries
    interim_results: bool = False
    word_time_offsets: bool = False
    punctuation: bool = False
    diarization: bool = False  # words carry speaker_tag
    diarized: bool = False  # a mono stream's speakers are told apart (diarization asked for, or speaker=mixed)

    def channels(self, fmt: AudioFormat, rate: int) -> list[ChannelSpec]:
        if fmt.channels == 2:
            return [ChannelSpec(0, "rep", rate), ChannelSpec(1, "customer", rate)]
        return [ChannelSpec(0, self.speaker, rate, diarize=self.diarized)]


def parse_config(config: rasr.RecognitionConfig, interim_results: bool, compat: CompatSettings) -> RivaRequest:
    """Check a ``RecognitionConfig`` and map it onto a call; raises ``BadRequest``."""
    encoding = config.encoding or raudio.LINEAR_PCM
    if encoding not in ENCODINGS:
        name = raudio.AudioEncoding.Name(encoding) if encoding in raudio.AudioEncoding.values() else str(encoding)
        raise BadRequest(f"encoding {name} is not supported: send LINEAR_PCM, MULAW or ALAW")
    rate = config.sample_rate_hertz or (8000 if encoding != raudio.LINEAR_PCM else 0)
    if rate and not MIN_RATE <= rate <= MAX_RATE:
        raise BadRequest(f"sample_rate_hertz must be {MIN_RATE} to {MAX_RATE}, not {config.sample_rate_hertz}")
    channels = config.audio_channel_count or 1
    if channels not in (1, 2):
        raise BadRequest(
            f"audio_channel_count must be 1 or 2 (2: channel 1 the rep, channel 2 the customer), not {channels}"
        )
    language = config.language_code.strip().lower()
    if language and not re.fullmatch(r"en([-_][a-z0-9]+)*", language):
        raise BadRequest(f"language_code {config.language_code!r}: this server transcribes English (en-US)")

    custom = dict(config.custom_configuration)
    call_id = (custom.pop("call_id", "") or custom.pop("callId", "")).strip() or None
    if call_id is not None and len(call_id) > 128:
        raise BadRequest("custom_configuration call_id: at most 128 characters")
    declared = custom.pop("speaker", "").strip().lower()
    if declared and declared not in ("rep", "customer", "mixed"):
        raise BadRequest(f"custom_configuration speaker must be rep, customer or mixed, not {declared!r}")
    try:
        metadata = parse_metadata(custom)
    except MetadataError as exc:
        raise BadRequest(f"custom_configuration: {exc}") from None
    options = metadata.recognition
    phrases = [p.strip()[:64] for context in config.speech_contexts for p in context.phrases if p.strip()]
    options.keyterms = tuple(dict.fromkeys((*options.keyterms, *phrases)))
    if len(options.keyterms) > MAX_KEYTERMS:
        raise BadRequest(f"speech_contexts: at most {MAX_KEYTERMS} phrases")
    if config.HasField("endpointing_config") and config.endpointing_config.stop_history > 0:
        options.endpointing_ms = min(5000, max(100, config.endpointing_config.stop_history))
    options.interim_results = interim_results
    diarization = config.diarization_config.enable_speaker_diarization
    # A mono stream is who the client says it is; asking for diarization says both parties are on it; a stream
    # that says neither is one voice, of the role compat.speaker assumes, and is not diarized (nobody asked).
    speaker = declared or ("mixed" if diarization else compat.speaker)
    return RivaRequest(
        format=AudioFormat(encoding, rate, channels),
        call_id=call_id,
        metadata=metadata,
        speaker=speaker,
        interim_results=interim_results,
        word_time_offsets=config.enable_word_time_offsets,
        punctuation=config.enable_automatic_punctuation,
        diarization=diarization,
        diarized=speaker == "mixed" and (diarization or declared == "mixed"),
    )
