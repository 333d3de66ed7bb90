"""Riva-compatible speech recognition: ``nvidia.riva.asr.RivaSpeechRecognition``, so that clients written for NVIDIA
Riva's ASR (``nvidia-riva-client``, Pipecat's and LiveKit's Riva plugins) need only a new URL.

The protos are Riva's own (``proto/media_server/riva/``, vendored from nvidia-riva/common). Each ``StreamingRecognize``
and ``Recognize`` is a call like any other (source ``riva``: the dashboard shows it, insights run, consent holds, it
is stored), fed through ``CallFeed``; its transcript events become Riva's results. How a ``RecognitionConfig`` is read:

- ``encoding`` LINEAR_PCM (unset too), MULAW or ALAW, at any ``sample_rate_hertz`` (8 and 16 kHz go to the
  recognizer as they are, other rates are resampled to 16 kHz). Audio that starts with a WAV header (Riva's client
  sends files as they are, header included) is described by the header, which is skipped.
- ``audio_channel_count`` 1: one channel, whose voice is ``custom_configuration``'s ``speaker`` (``mixed``: both
  parties, diarized), else ``mixed`` and diarized when diarization is asked for, else one voice of the role
  ``compat.speaker`` assumes, not diarized; 2: interleaved, channel 1 the rep and channel 2 the customer, each
  recognised on its own (``channel_tag``).
- ``enable_word_time_offsets``: finals carry their words (ms from the start of the audio); ``diarization_config``:
  words carry ``speaker_tag`` (the diarizer's "speaker N" on a mixed channel, else 1 for the rep, 2 the customer).
- ``enable_automatic_punctuation`` false (Riva's default): punctuation is taken out of what Whisper wrote.
- ``speech_contexts`` phrases are the call's keyterms (``boost`` is accepted: the keyterm prompt is the boost);
  ``endpointing_config.stop_history`` is the silence (ms) that ends an utterance; the other endpointing fields,
  ``model``, ``max_alternatives`` (one alternative), ``profanity_filter`` and ``verbatim_transcripts`` are accepted.
- ``custom_configuration`` is the call's metadata, as the websockets take it (``call_id``, ``rep_id``,
  ``rep_consent``, ``customer_consent``, ``keyterms``...); consent the stream does not give is ``compat.consent``.

Authentication: ``authorization: Bearer KEY`` metadata (an ingest key or above). Bad input is INVALID_ARGUMENT with
the reason; a stream that opened a call ends it first (its results still reach the client), and a client that
cancels or vanishes leaves the call ended as ``interrupted`` and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import numpy as np
import numpy.typing as npt

from media_server.auth.keys import ApiKey
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallConflict
from media_server.calls.metadata import CallMetadata, Consent, MetadataError, parse_metadata
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.config import CompatSettings
from media_server.ingest.feed import CallFeed, new_call_id
from media_server.riva import riva_asr_pb2 as rasr
from media_server.riva import riva_asr_pb2_grpc as rasr_grpc
from media_server.riva import riva_audio_pb2 as raudio
from media_server.riva.riva_common_pb2 import RequestId
from media_server.rpc.auth import abort, require_key
from media_server.rpc.relay import relay, requests_ended
from media_server.rpc.slots import StreamSlots
from media_server.services import Services
from media_server.v1 import events_pb2 as pb
from models.audio import StreamResampler, float32_to_int16, int16_to_float32

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Int16: TypeAlias = npt.NDArray[np.int16]

SOURCE = "riva"
MIN_RATE, MAX_RATE = 4000, 192000
#: Rates the recognizer takes as they are; audio at any other rate is resampled to 16 kHz.
NATIVE_RATES = (8000, 16000)
MAX_WAV_HEADER = 64 * 1024
MAX_KEYTERMS = 100
_ENCODINGS = {raudio.LINEAR_PCM: "LINEAR_PCM", raudio.MULAW: "MULAW", raudio.ALAW: "ALAW"}
_WAV_FORMATS = {(1, 16): raudio.LINEAR_PCM, (6, 8): raudio.ALAW, (7, 8): raudio.MULAW}
_CHANNEL_TAGS = {"rep": 1, "customer": 2}


def add_to_server(server: grpc.aio.Server, services: Services, slots: StreamSlots) -> list[str]:
    rasr_grpc.add_RivaSpeechRecognitionServicer_to_server(RivaServicer(services, slots), server)  # type: ignore[no-untyped-call]
    return [rasr.DESCRIPTOR.services_by_name["RivaSpeechRecognition"].full_name]


class BadRequest(Exception):
    """Input the service cannot take; the message says what to send instead (INVALID_ARGUMENT)."""


# -- the request ------------------------------------------------------------------------------------


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
    if encoding not in _ENCODINGS:
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
    for participant in metadata.participants:
        if participant.consent is Consent.UNKNOWN:
            participant.consent = Consent(compat.consent)  # Riva clients never say; the server's setting does
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


# -- audio ------------------------------------------------------------------------------------------


def parse_wav_header(data: bytes) -> tuple[AudioFormat, int] | None:
    """The format of a WAV file starting ``data`` and where its samples start; None while the header is incomplete.
    Raises ``BadRequest`` for a RIFF that is not a WAV of 16-bit PCM, A-law or mu-law."""
    if len(data) < 12:
        return None
    if data[8:12] != b"WAVE":
        raise BadRequest("the audio starts with a RIFF header but is not a WAV file")
    fmt: AudioFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"data":
            if fmt is None:
                raise BadRequest("WAV audio: the data chunk comes before the fmt chunk")
            return fmt, body
        if chunk == b"fmt ":
            if body + 16 > len(data):
                return None
            code, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if code == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                if body + 26 > len(data):
                    return None
                code = struct.unpack_from("<H", data, body + 24)[0]
            encoding = _WAV_FORMATS.get((code, bits))
            if encoding is None:
                raise BadRequest(
                    f"WAV audio in format {code} with {bits}-bit samples is not supported: "
                    "send 16-bit PCM, A-law or mu-law"
                )
            fmt = AudioFormat(encoding, rate, channels)
        pos = body + size + (size & 1)
    return None


class AudioInput:
    """The client's audio bytes as int16 samples per channel at the channels' rate. A WAV header at the start is
    read (it says what the audio is) and skipped; a partial frame of interleaved audio waits for the next message."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self.ready = False  # the format is known (after a WAV header, if one starts the audio)
        self._head = b""
        self._rest = b""
        self._resamplers: list[StreamResampler] = []

    @property
    def rate(self) -> int:
        """The channels' rate: the audio's own at 8 and 16 kHz, else 16 kHz."""
        return self.format.sample_rate if self.format.sample_rate in NATIVE_RATES else 16000

    def feed(self, data: bytes) -> list[Int16]:
        """Samples per channel (none while a WAV header is still arriving). Raises ``BadRequest``."""
        if not self.ready:
            self._head += data
            if self._head[:4] == b"RIFF"[: len(self._head)]:
                parsed = parse_wav_header(self._head)
                if parsed is None:
                    if len(self._head) > MAX_WAV_HEADER:
                        raise BadRequest(f"a WAV header without a data chunk in its first {MAX_WAV_HEADER} bytes")
                    return []
                self.format, start = parsed
                if not 1 <= self.format.channels <= 2:
                    raise BadRequest(f"WAV audio with {self.format.channels} channels: send 1 or 2")
                if not MIN_RATE <= self.format.sample_rate <= MAX_RATE:
                    raise BadRequest(f"WAV audio at {self.format.sample_rate} Hz: {MIN_RATE} to {MAX_RATE} Hz")
                data = self._head[start:]
            else:
                data = self._head
            if not self.format.sample_rate:
                raise BadRequest("sample_rate_hertz is required (LINEAR_PCM audio without a WAV header)")
            self.ready = True
            self._head = b""
            if self.format.sample_rate != self.rate:
                self._resamplers = [
                    StreamResampler(self.format.sample_rate, self.rate) for _ in range(self.format.channels)
                ]
        return self._decode(data)

    def flush(self) -> list[Int16]:
        """What the resamplers still hold, at the end of the audio."""
        if not self._resamplers:
            return []
        empty = np.zeros(0, dtype=np.float32)
        return [float32_to_int16(r.process(empty, last=True)) for r in self._resamplers]

    def _decode(self, data: bytes) -> list[Int16]:
        fmt = self.format
        if fmt.encoding == raudio.LINEAR_PCM and len(data) % 2:
            raise BadRequest(f"LINEAR_PCM audio is 16-bit samples: a message of {len(data)} bytes is not whole samples")
        data = self._rest + data
        frame = fmt.sample_bytes * fmt.channels
        whole = len(data) - len(data) % frame
        data, self._rest = data[:whole], data[whole:]
        if fmt.encoding == raudio.MULAW:
            samples = ulaw_decode(data)
        elif fmt.encoding == raudio.ALAW:
            samples = alaw_decode(data)
        else:
            samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        channels = [samples[i :: fmt.channels] for i in range(fmt.channels)]
        if self._resamplers:
            channels = [
                float32_to_int16(r.process(int16_to_float32(c)))
                for r, c in zip(self._resamplers, channels, strict=True)
            ]
        return channels


# -- results ----------------------------------------------------------------------------------------

# Punctuation Whisper writes that Riva leaves out without its punctuation model; inside a word ("3.5", "U.S")
# it stays, and so do apostrophes and symbols that carry meaning ("$", "%").
_PUNCTUATION = re.compile(r"""(?<![\w])[.,!?;:"“”«»()\[\]{}…–—-]+|[.,!?;:"“”«»()\[\]{}…–—-]+(?![\w])""")


def strip_punctuation(text: str) -> str:
    return " ".join(_PUNCTUATION.sub("", text).split())


def streaming_result(event: pb.Event, request: RivaRequest, feed: CallFeed) -> rasr.StreamingRecognitionResult | None:
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
        audio_processed=feed.call.channels[t.channel].position,
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


# -- the service ------------------------------------------------------------------------------------


class RivaServicer(rasr_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, services: Services, slots: StreamSlots) -> None:
        self.services = services
        self.slots = slots

    # -- StreamingRecognize --------------------------------------------------------------------------

    async def StreamingRecognize(
        self, requests: AsyncIterator[rasr.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[rasr.StreamingRecognizeResponse]:
        key = await require_key(self.services, context, "ingest")
        await self.slots.take(context)
        feed: CallFeed | None = None
        try:
            request, request_id = await self._config(requests, context)
            audio = AudioInput(request.format)
            first = await self._first_audio(audio, requests, context)
            if first is None:
                return  # the client ended the stream before sending any audio: there was no call
            feed = await self._open(key, request, audio, context)
            for channel, pcm in enumerate(first):
                feed.push(channel, pcm)
            problem: list[str] = []
            reader = self._read(feed, audio, requests, problem)
            async with contextlib.aclosing(relay(feed, reader, context, problem)) as events:
                async for event in events:
                    result = streaming_result(event, request, feed)
                    if result is not None:
                        yield rasr.StreamingRecognizeResponse(results=[result], id=request_id)
        finally:
            self.slots.give()
            if feed is not None:
                await feed.close()  # a cancelled RPC: the call ends as interrupted and is still stored

    async def _config(
        self, requests: AsyncIterator[rasr.StreamingRecognizeRequest], context: Context
    ) -> tuple[RivaRequest, RequestId | None]:
        """The first message's config, checked, and its request id (echoed in every response when given)."""
        timeout = self.services.settings.ingest.start_timeout_s
        try:
            first = await asyncio.wait_for(anext(requests), timeout)
        except StopAsyncIteration:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "the stream ended before its streaming_config")
        except TimeoutError:
            await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"no streaming_config within {timeout:g} s")
        if first.WhichOneof("streaming_request") != "streaming_config":
            await abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first message must carry streaming_config (then audio_content messages)",
            )
        streaming = first.streaming_config
        try:
            request = parse_config(streaming.config, streaming.interim_results, self.services.settings.compat)
        except BadRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return request, first.id if first.HasField("id") else None

    async def _first_audio(
        self, audio: AudioInput, requests: AsyncIterator[rasr.StreamingRecognizeRequest], context: Context
    ) -> list[Int16] | None:
        """Read until the audio's format is known (a WAV header may span messages); None: the stream ended first."""
        idle = self.services.settings.ingest.idle_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(anext(requests), idle)
            except StopAsyncIteration:
                return None
            except TimeoutError:
                await abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"no audio within {idle:g} s")
            kind = message.WhichOneof("streaming_request")
            if kind == "streaming_config":
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "streaming_config may come only once, first")
            if kind != "audio_content":
                continue
            try:
                samples = audio.feed(message.audio_content)
            except BadRequest as exc:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            if audio.ready:
                return samples

    async def _open(self, key: ApiKey, request: RivaRequest, audio: AudioInput, context: Context) -> CallFeed:
        metadata = request.metadata
        if metadata.team and metadata.team != key.team:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"this key belongs to team {key.team!r}, not {metadata.team!r}",
            )
        metadata.token = None
        call_id = request.call_id or new_call_id(SOURCE)
        try:
            return await CallFeed.open(
                self.services, key, call_id, SOURCE, metadata, request.channels(audio.format, audio.rate)
            )
        except CallConflict as exc:
            await abort(context, grpc.StatusCode.ALREADY_EXISTS, str(exc))

    async def _read(
        self,
        feed: CallFeed,
        audio: AudioInput,
        requests: AsyncIterator[rasr.StreamingRecognizeRequest],
        problem: list[str],
    ) -> None:
        """Push the client's audio into the call until it stops; end the call however the stream ends."""
        idle = self.services.settings.ingest.idle_timeout_s
        status, reason = "interrupted", "disconnected"
        try:
            while True:
                try:
                    message = await asyncio.wait_for(anext(requests), idle)
                except StopAsyncIteration:
                    self._push(feed, audio.flush())
                    await requests_ended()  # a half-close, not a cancel: all audio is in
                    status, reason = "completed", "stop"
                    return
                except TimeoutError:
                    status, reason = "interrupted", "idle_timeout"
                    await feed.call.error("idle_timeout", f"no audio for {idle:g} s")
                    return
                kind = message.WhichOneof("streaming_request")
                if kind == "audio_content":
                    self._push(feed, audio.feed(message.audio_content))
                elif kind == "streaming_config":
                    raise BadRequest("streaming_config may come only once, first")
                # a message with neither (runtime_config alone) changes nothing here
        except BadRequest as exc:
            problem.append(str(exc))
            status, reason = "interrupted", "protocol_error"
            await feed.call.error("invalid_argument", str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # the RPC went away under us (cancelled, connection lost)
            log.debug("StreamingRecognize %s: request stream failed", feed.id, exc_info=True)
        finally:
            feed.end(status, reason)

    @staticmethod
    def _push(feed: CallFeed, channels: list[Int16]) -> None:
        for channel, pcm in enumerate(channels):
            if pcm.size:
                feed.push(channel, pcm)

    # -- Recognize -----------------------------------------------------------------------------------

    async def Recognize(self, message: rasr.RecognizeRequest, context: Context) -> rasr.RecognizeResponse:
        """The whole audio in one request: a call fed as fast as the recognizer takes it, its finals in one answer."""
        key = await require_key(self.services, context, "ingest")
        try:
            request = parse_config(message.config, False, self.services.settings.compat)
            audio = AudioInput(request.format)
            samples = audio.feed(message.audio)
            if not audio.ready:
                raise BadRequest("the audio is a WAV header without samples")
            tail = audio.flush()
        except BadRequest as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if tail:
            samples = [np.concatenate([s, t]) for s, t in zip(samples, tail, strict=True)]
        await self.slots.take(context)
        feed: CallFeed | None = None
        try:
            feed = await self._open(key, request, audio, context)
            finals = asyncio.create_task(self._finals(feed), name=f"riva-{feed.id}")
            step = audio.rate  # a second at a time, yielding so that decoding overlaps with the VAD
            for offset in range(0, max(s.size for s in samples), step):
                for channel, pcm in enumerate(samples):
                    if pcm[offset : offset + step].size:
                        feed.push(channel, pcm[offset : offset + step])
                await asyncio.sleep(0)
            feed.end("completed", "stop")
            transcripts = await finals
            response = rasr.RecognizeResponse()
            if message.HasField("id"):
                response.id.CopyFrom(message.id)  # echoed, as Riva does
            duration = max(s.size for s in samples) / audio.rate
            for t in sorted(transcripts, key=lambda t: (t.start, t.channel)):
                alt = alternative(t, request)
                if alt is not None:
                    result = rasr.SpeechRecognitionResult(
                        alternatives=[alt], channel_tag=t.channel + 1, audio_processed=duration
                    )
                    response.results.append(result)
            return response
        finally:
            self.slots.give()
            if feed is not None:
                await feed.close()

    @staticmethod
    async def _finals(feed: CallFeed) -> list[pb.Transcript]:
        return [e.transcript async for e in feed.events() if e.type == "transcript" and e.transcript.is_final]

    # -- GetRivaSpeechRecognitionConfig --------------------------------------------------------------

    async def GetRivaSpeechRecognitionConfig(
        self, message: rasr.RivaSpeechRecognitionConfigRequest, context: Context
    ) -> rasr.RivaSpeechRecognitionConfigResponse:
        """The one model this server runs, for streaming ("online") and whole-file ("offline") recognition."""
        await require_key(self.services, context, "ingest")
        name = self.services.scheduler.engine.name
        response = rasr.RivaSpeechRecognitionConfigResponse()
        if message.model_name and message.model_name != name:
            return response
        for kind in ("online", "offline"):
            response.model_config.append(
                rasr.RivaSpeechRecognitionConfigResponse.Config(
                    model_name=name,
                    parameters={
                        "type": kind,
                        "language_code": "en-US",
                        "streaming": "true" if kind == "online" else "false",
                        "sample_rate": "16000",
                        "encodings": ",".join(_ENCODINGS.values()),
                        "max_channels": "2",
                        "word_time_offsets": "true",
                        "speaker_diarization": "true" if self.services.calls.services.diarization else "false",
                    },
                )
            )
        return response
