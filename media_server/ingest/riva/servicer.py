"""Riva-compatible speech recognition: ``nvidia.riva.asr.RivaSpeechRecognition``, so that clients written for NVIDIA
Riva's ASR (``nvidia-riva-client``, Pipecat's and LiveKit's Riva plugins) need only a new URL.

The protos are Riva's own (``proto/media_server/riva/``, vendored from nvidia-riva/common). Each ``StreamingRecognize``
and ``Recognize`` is a call like any other (source ``riva``: the dashboard shows it, insights run, consent holds, it
is stored), its transcript events become Riva's results (``results.py``). How a ``RecognitionConfig`` is read:

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
  ``rep_consent``, ``customer_consent``, ``keyterms``...); consent the stream does not give is ``compat.consent``
  (the call's consent default).

Authentication: ``authorization: Bearer KEY`` metadata (an ingest key or above). Bad input is INVALID_ARGUMENT with
the reason; a stream that opened a call ends it first (its results still reach the client), and a client that
cancels or vanishes leaves the call ended as ``interrupted`` and stored. A server that holds all the calls it may
(``calls.max_live``) answers RESOURCE_EXHAUSTED with a ``grpc-retry-pushback-ms`` trailer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import numpy as np

from media_server.audio import Audio, Int16Array
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held
from media_server.calls.lifecycle import CallEnd, CallRefused, LiveCall, new_call_id
from media_server.calls.metadata import Consent
from media_server.ingest.riva.audio import AudioInput
from media_server.ingest.riva.config import ENCODINGS, BadRequest, RivaRequest, parse_config
from media_server.ingest.riva.results import alternative, streaming_result
from media_server.riva import riva_asr_pb2 as rasr
from media_server.riva import riva_asr_pb2_grpc as rasr_grpc
from media_server.riva.riva_common_pb2 import RequestId
from media_server.rpc.auth import abort, require_key
from media_server.rpc.refusals import refuse
from media_server.rpc.relay import first_request, relay
from media_server.rpc.slots import StreamSlots
from media_server.services import Services
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

SOURCE = "riva"


def add_to_server(server: grpc.aio.Server, services: Services, slots: StreamSlots) -> list[str]:
    rasr_grpc.add_RivaSpeechRecognitionServicer_to_server(RivaServicer(services, slots), server)  # type: ignore[no-untyped-call]
    return [rasr.DESCRIPTOR.services_by_name["RivaSpeechRecognition"].full_name]


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
        call: LiveCall | None = None
        held: Held | None = None
        try:
            request, request_id = await self._config(requests, context)
            audio = AudioInput(request.format)
            first = await self._first_audio(audio, requests, context)
            if first is None:
                return  # the client ended the stream before sending any audio: there was no call
            call = opened = await self._open(key, request, audio, context)
            held = self.services.sessions.hold(key.id, lambda: opened.end(CallEnd.KEY_REVOKED))
            push_channels(call, audio.rate, first)
            messages = _Requests(call, audio)
            idle_s = self.services.settings.ingest.idle_timeout_s
            streaming = relay(
                call, requests, messages.handle, context, idle_s=idle_s, invalid=BadRequest, at_end=messages.flush
            )
            async with contextlib.aclosing(streaming) as events:
                async for event in events:
                    result = streaming_result(event, request, call)
                    if result is not None:
                        yield rasr.StreamingRecognizeResponse(results=[result], id=request_id)
        finally:
            if held is not None:
                held.release()
            self.slots.give()
            if call is not None:
                await call.close()  # a cancelled RPC: the call ends as interrupted and is still stored

    async def _config(
        self, requests: AsyncIterator[rasr.StreamingRecognizeRequest], context: Context
    ) -> tuple[RivaRequest, RequestId | None]:
        """The first message's config, checked, and its request id (echoed in every response when given)."""
        timeout = self.services.settings.ingest.start_timeout_s
        first = await first_request(requests, timeout, context, "streaming_config")
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
    ) -> list[Int16Array] | None:
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

    async def _open(
        self, key: ApiKey, request: RivaRequest, audio: AudioInput, context: Context, batch: bool = False
    ) -> LiveCall:
        metadata = request.metadata
        if metadata.team and metadata.team != key.team:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"this key belongs to team {key.team!r}, not {metadata.team!r}",
            )
        metadata.token = None
        compat = self.services.settings.compat
        try:
            return await self.services.calls.open(
                request.call_id or new_call_id(SOURCE),
                key.team,
                SOURCE,
                metadata,
                request.channels(audio.format, audio.rate),
                consent_default=Consent(compat.consent),  # Riva clients never say; the server's setting does
                subscribe=True,
                batch=batch,
            )
        except CallRefused as exc:
            await refuse(context, exc)

    # -- Recognize -----------------------------------------------------------------------------------

    async def Recognize(self, message: rasr.RecognizeRequest, context: Context) -> rasr.RecognizeResponse:
        """The whole audio in one request: a call fed as fast as the recognizer takes it, its finals in one answer.
        It is batch work: not paced, decoded when no live call's work waits (``calls/pacing.py``)."""
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
        call: LiveCall | None = None
        try:
            call = await self._open(key, request, audio, context, batch=True)
            finals = asyncio.create_task(self._finals(call), name=f"riva-{call.id}")
            step = audio.rate  # a second at a time, yielding so that decoding overlaps with the VAD
            for offset in range(0, max(s.size for s in samples), step):
                for channel, pcm in enumerate(samples):
                    if pcm[offset : offset + step].size:
                        call.push(Audio(channel, pcm[offset : offset + step], audio.rate))
                await asyncio.sleep(0)
            call.end(CallEnd.STOP)
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
            if call is not None:
                await call.close()

    @staticmethod
    async def _finals(call: LiveCall) -> list[pb.Transcript]:
        return [e.transcript async for e in call.events() if e.type == "transcript" and e.transcript.is_final]

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
                        "encodings": ",".join(ENCODINGS.values()),
                        "max_channels": "2",
                        "word_time_offsets": "true",
                        "speaker_diarization": "true" if self.services.calls.services.diarization else "false",
                    },
                )
            )
        return response


class _Requests:
    """The audio after ``streaming_config``, into the call."""

    def __init__(self, call: LiveCall, audio: AudioInput) -> None:
        self.call = call
        self.audio = audio

    async def handle(self, message: rasr.StreamingRecognizeRequest) -> bool:
        """Never the client's stop (Riva's is the end of the request stream); raises ``BadRequest``."""
        kind = message.WhichOneof("streaming_request")
        if kind == "audio_content":
            push_channels(self.call, self.audio.rate, self.audio.feed(message.audio_content))
        elif kind == "streaming_config":
            raise BadRequest("streaming_config may come only once, first")
        # a message with neither (runtime_config alone) changes nothing here
        return False

    def flush(self) -> None:
        """The end of the audio: what the resamplers still hold."""
        push_channels(self.call, self.audio.rate, self.audio.flush())


def push_channels(call: LiveCall, rate: int, channels: list[Int16Array]) -> None:
    """Samples per channel (index = channel), as decoded from one message."""
    for channel, pcm in enumerate(channels):
        if pcm.size:
            call.push(Audio(channel, pcm, rate))
