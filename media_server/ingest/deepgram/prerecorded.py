"""Deepgram's pre-recorded API, ``POST /v1/listen``: a whole recording in one request, its transcript in one answer,
for clients written for Deepgram (``client.listen.v1.media.transcribe_file`` / ``transcribe_url`` of deepgram-sdk).

The audio is the body (any ``Content-Type``: ``audio/wav``, ``audio/mpeg``, ``application/octet-stream``...): a
file FFmpeg reads (WAV, MP3, FLAC, OGG/Vorbis, Opus, M4A: decoded with PyAV), or raw samples when the query names
``encoding`` (linear16, mulaw, alaw) and ``sample_rate``. Or the body is JSON ``{"url": "..."}``: the server fetches
the file, only from the hosts ``compat.fetch_allow`` lists (none by default; a listed host may be private, nothing
else is fetched: ``webhooks/destinations.py``'s checks, the connection pinned to the checked address).

The query is the streaming ``/v1/listen``'s (``options.py``: ``multichannel``, ``diarize``, ``punctuate``,
``keyterm``/``keywords``, ``redact``, ``call_id``, the call's metadata and consent...), plus ``utterances``. The
recording is a call like any other (source ``deepgram``, stored, analysed, under the consent rules: a channel whose
speakers did not consent gets no words, and the answer's ``metadata.warnings`` says why), fed as batch work: not
paced, decoded when no live call's work waits. The answer is Deepgram's ``ListenV1Response``: ``metadata``
(``request_id`` = the call id, ``sha256`` of the body, ``duration``, ``channels``, ``models``...), ``results.channels``
(one per channel with ``multichannel``, else one), ``results.utterances`` with ``utterances=true``.

Errors are Deepgram's: 400 ``{"err_code", "err_msg", "request_id"}`` for audio or parameters it cannot use, 401/403
for the key, 403 for a URL whose host is not allowed, 409 for a call id in use, 413 over ``ingest.max_file_mb``, 503
when the server holds all the calls it may or its recogniser finished nothing for a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO, Any

import httpx
import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from media_server.audio import Int16Array, call_rate
from media_server.audio_files import AudioFile, AudioFileError, open_audio
from media_server.auth.http import presented_key
from media_server.calls.lifecycle import CallRefused, LiveCall, new_call_id
from media_server.calls.metadata import Consent, MetadataError, parse_metadata
from media_server.config import CompatSettings, WebhookSettings
from media_server.ingest.deepgram.audio import AudioDecoder, AudioError
from media_server.ingest.deepgram.messages import ModelInfo, plain, results_message, speaker_number
from media_server.ingest.deepgram.options import ListenError, ListenOptions, parse_listen_query
from media_server.ingest.deepgram.refusals import Refused, refusal
from media_server.ingest.recording import Played, RecogniserStuck, TooLarge, play, spool, spool_request
from media_server.services import Services
from media_server.v1 import events_pb2 as pb
from media_server.webhooks.destinations import RefusedDestination, resolve

log = logging.getLogger(__name__)

router = APIRouter(tags=["deepgram"])

RAW_BLOCK_S = 2.0


class DeepgramWord(BaseModel):
    word: str = Field(description="the word, lower case, without punctuation")
    start: float = Field(description="seconds from the start of the audio")
    end: float
    confidence: float
    punctuated_word: str = Field(description="as written, with punctuation and case when punctuate=true")
    speaker: int | None = Field(None, description="diarize=true: the speaker, from 0")


class DeepgramAlternative(BaseModel):
    transcript: str
    confidence: float
    words: list[DeepgramWord]


class DeepgramChannel(BaseModel):
    alternatives: list[DeepgramAlternative]


class DeepgramUtterance(BaseModel):
    start: float
    end: float
    confidence: float
    channel: int
    transcript: str
    words: list[DeepgramWord]
    speaker: int | None = None
    id: str


class DeepgramResults(BaseModel):
    channels: list[DeepgramChannel] = Field(description="one per channel with multichannel=true, else one")
    utterances: list[DeepgramUtterance] | None = Field(None, description="utterances=true: each utterance, in order")


class DeepgramMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    transaction_key: str
    request_id: str = Field(description="the call's id (call_id= names it)")
    sha256: str = Field(description="of the request's audio")
    created: str
    duration: float = Field(description="seconds of audio")
    channels: int
    models: list[str]
    model_info: dict[str, dict[str, str]]
    warnings: list[dict[str, str]] | None = Field(None, description="e.g. a channel not transcribed without consent")


class DeepgramTranscription(BaseModel):
    """Deepgram's pre-recorded answer (``ListenV1Response`` of deepgram-sdk)."""

    metadata: DeepgramMetadata
    results: DeepgramResults


def _error(description: str) -> dict[str, Any]:
    """Deepgram's error body, which also carries ``detail`` (the REST API's ``Problem``)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("audio or a parameter it cannot use: {err_code, err_msg, request_id, detail}"),
    401: _error("missing or invalid API key (Authorization: Token KEY or Bearer KEY)"),
    403: _error("the key may not ingest, or the url's host is not in compat.fetch_allow"),
    409: _error("the call id is in use"),
    413: _error("the audio is larger than ingest.max_file_mb"),
    503: _error("the server holds all the calls it may, or its recogniser is stuck: try again after Retry-After"),
}


@router.post(
    "/v1/listen",
    response_model=DeepgramTranscription,
    response_model_exclude_none=True,
    responses=_ERRORS,
    summary='Deepgram\'s pre-recorded transcription: the audio as the body, or {"url"} from an allowed host',
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
async def transcribe(request: Request) -> JSONResponse:
    request_id = new_call_id("dg")
    try:
        return await _Transcription(request, request.app.state.services, request_id).run()
    except Refused as exc:
        log.warning("deepgram pre-recorded request refused: %d %s", exc.status, exc.message)
        body = {**exc.body(request_id), "detail": exc.message}
        return JSONResponse(body, exc.status, headers=exc.response_headers(request_id))


class _Transcription:
    def __init__(self, request: Request, services: Services, request_id: str) -> None:
        self.request = request
        self.services = services
        self.request_id = request_id
        self.sha256 = hashlib.sha256()
        self.model = ModelInfo(services.scheduler.engine.name)
        self.warnings: list[str] = []

    async def run(self) -> JSONResponse:
        key = await self.services.authenticate(presented_key(self.request))
        if key is None:
            raise Refused(401, "INVALID_AUTH", "missing or invalid API key: send Authorization: Token KEY")
        if not key.can("ingest"):
            raise Refused(403, "INSUFFICIENT_PERMISSIONS", f"a {key.role.value} key may not transcribe audio")
        items = self.request.query_params.multi_items()
        utterances = _flag(next((v for k, v in reversed(items) if k == "utterances"), None))
        items = [(k, v) for k, v in items if k not in ("utterances", "utt_split")]
        container = not any(k == "encoding" for k, _ in items)
        if container:  # (the file says; parse_listen_query wants them for raw audio)
            items += [("encoding", "linear16"), ("sample_rate", "16000")]
        try:
            options = parse_listen_query(items)
            metadata = parse_metadata(options.metadata)
        except (ListenError, MetadataError) as exc:
            raise Refused(400, "Bad Request", str(exc)) from None
        metadata.token = None
        if metadata.team and metadata.team != key.team:
            raise Refused(
                403, "INSUFFICIENT_PERMISSIONS", f"this key belongs to team {key.team!r}, not {metadata.team!r}"
            )
        if options.call_id:
            self.request_id = options.call_id
        limit = self.services.settings.ingest.max_file_mb << 20
        body = await self._body(limit)
        opened: AudioFile | None = None  # (closed with the body: FFmpeg's decoder and its buffers)
        limit_s = self.services.settings.ingest.max_file_minutes * 60
        try:
            digest(body, self.sha256)
            if container or _is_container(body):  # (a file sent with encoding=: the file says, as Deepgram reads it)
                audio = opened = _open(body)
                if audio.duration > limit_s:
                    raise Refused(
                        413,
                        "PAYLOAD_TOO_LARGE",
                        f"the recording lasts {audio.duration / 60:.0f} "
                        f"minutes; at most {limit_s / 60:g} (ingest.max_file_minutes)",
                    )
                rate = call_rate(audio.sample_rate)
                channels = 2 if options.multichannel and audio.channels >= 2 else 1
                options = replace(options, sample_rate=rate, channels=channels)
                blocks: Iterator[Int16Array] = audio.chunks(rate, channels)
            else:
                blocks = _raw_blocks(body, options)
            call = await self._open(key.team, options, metadata)
            try:
                played = await play(call, blocks, options.call_rate, self.services.scheduler, limit_s)
            except (AudioFileError, AudioError) as exc:
                raise Refused(400, "Bad Request", f"DATA-0000: {exc}") from None
            except RecogniserStuck as exc:
                raise Refused(503, "SERVICE_UNAVAILABLE", f"try again later: {exc}", {"Retry-After": "60"}) from None
        finally:
            if opened is not None:
                opened.close()
            body.close()
        return JSONResponse(self._response(options, played, utterances))

    async def _body(self, limit: int) -> IO[bytes]:
        content_type = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json" or content_type.endswith("+json"):
                request = await spool(self.request.stream(), 64 << 10, 'the JSON body ({"url"})')
                with request:
                    return await self._fetch(request.read(), limit)
            body = await spool_request(self.request, limit)
        except TooLarge as exc:
            raise Refused(413, "PAYLOAD_TOO_LARGE", str(exc)) from None
        if not _size(body):
            raise Refused(400, "Bad Request", 'the request has no audio: send the file as the body, or {"url"}')
        return body

    async def _fetch(self, raw: bytes, limit: int) -> IO[bytes]:
        try:
            request = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(400, "Bad Request", 'the JSON body must be {"url": "..."}') from None
        url = request.get("url") if isinstance(request, dict) else None
        if not isinstance(url, str) or not url:
            raise Refused(400, "Bad Request", 'the JSON body must be {"url": "..."}')
        compat = self.services.settings.compat
        try:
            destination = await fetchable(url, compat)
        except RefusedDestination as exc:
            raise Refused(403, "INSUFFICIENT_PERMISSIONS", f"url refused: {exc}") from None
        extensions = {"sni_hostname": destination.url.host} if destination.url.scheme == "https" else {}
        headers = {"Host": destination.url.netloc.decode()}
        try:
            # trust_env=False: no proxy from the environment (it would connect by the name, not the checked
            # address) and no .netrc; the whole fetch within fetch_timeout_s (httpx's timeout is per step).
            async with (
                asyncio.timeout(compat.fetch_timeout_s),
                httpx.AsyncClient(timeout=compat.fetch_timeout_s, follow_redirects=False, trust_env=False) as client,
                client.stream("GET", destination.pinned, headers=headers, extensions=extensions) as response,
            ):
                if response.status_code != 200:
                    raise Refused(400, "Bad Request", f"the url answered HTTP {response.status_code}, not the audio")
                body = await spool(response.aiter_bytes(), limit)
        except TimeoutError:
            raise Refused(400, "Bad Request", f"the url was not fetched within {compat.fetch_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise Refused(400, "Bad Request", f"the url could not be fetched ({exc.__class__.__name__})") from None
        except TooLarge as exc:
            raise Refused(413, "PAYLOAD_TOO_LARGE", str(exc)) from None
        if not _size(body):
            raise Refused(400, "Bad Request", "the url gave an empty body")
        return body

    async def _open(self, team: str, options: ListenOptions, metadata: Any) -> LiveCall:
        compat = self.services.settings.compat
        try:
            call = await self.services.calls.open(
                self.request_id,
                team,
                "deepgram",
                metadata,
                options.channel_specs(compat),
                consent_default=Consent(compat.consent),
                subscribe=True,
                batch=True,
            )
        except CallRefused as exc:
            raise refusal(exc) from None
        for index, spec in call.channels.items():
            if not call.transcribing(index):
                self.warnings.append(
                    f"channel {index} ({spec.speaker}) is not transcribed: its speakers have not consented "
                    f"(consent policy {self.services.settings.consent_policy.value}); set rep_consent and "
                    "customer_consent"
                )
        return call

    def _response(self, options: ListenOptions, played: Played, utterances: bool) -> dict[str, Any]:
        return response(
            options,
            played.finals,
            self.request_id,
            self.sha256.hexdigest(),
            played.duration,
            self.model,
            utterances=utterances,
            warnings=self.warnings,
        )


def response(
    options: ListenOptions,
    finals: list[pb.Transcript],
    request_id: str,
    sha256: str,
    duration: float,
    model: ModelInfo,
    *,
    created: datetime | None = None,
    utterances: bool = False,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Deepgram's pre-recorded answer (``ListenV1Response``) from a call's finals."""
    channels = options.channels if options.multichannel else 1
    per_channel: list[list[pb.Transcript]] = [[] for _ in range(channels)]
    for t in finals:
        per_channel[min(t.channel, channels - 1)].append(t)
    out_channels = []
    for finals_of in per_channel:
        words: list[dict[str, Any]] = []
        texts: list[str] = []
        for t in sorted(finals_of, key=lambda t: t.start):
            words += _words(t, options)
            texts.append(t.text.strip() if options.punctuate else plain(t.text))
        confidence = float(np.mean([w["confidence"] for w in words])) if words else 0.0
        alternative = {
            "transcript": " ".join(x for x in texts if x),
            "confidence": round(confidence, 4),
            "words": words,
        }
        out_channels.append({"alternatives": [alternative]})
    results: dict[str, Any] = {"channels": out_channels}
    if utterances:
        results["utterances"] = [_utterance(t, options, request_id, i) for i, t in enumerate(finals)]
    metadata: dict[str, Any] = {
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": sha256,
        "created": (created or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": channels,
        "models": [model.uuid],
        "model_info": {model.uuid: model.as_json()},
    }
    if warnings:
        metadata["warnings"] = [{"type": "warning", "message": w} for w in warnings]
    return {"metadata": metadata, "results": results}


def _words(t: pb.Transcript, options: ListenOptions) -> list[dict[str, Any]]:
    message = results_message(t, options, 1, "", ModelInfo(""), default_speaker=t.channel)
    words: list[dict[str, Any]] = message["channel"]["alternatives"][0]["words"]
    return words


def _utterance(t: pb.Transcript, options: ListenOptions, request_id: str, index: int) -> dict[str, Any]:
    words = _words(t, options)
    out: dict[str, Any] = {
        "start": round(t.start, 3),
        "end": round(t.end, 3),
        "confidence": round(t.confidence, 4),
        "channel": t.channel,
        "transcript": t.text.strip() if options.punctuate else plain(t.text),
        "words": words,
        "id": f"{request_id}-{index}",
    }
    if options.diarize:
        number = speaker_number(t.speaker_label)
        out["speaker"] = t.channel if number is None else number
    return out


async def fetchable(url: str, compat: CompatSettings) -> Any:
    """The checked destination of ``url``: its host named in ``compat.fetch_allow``, or every address it resolves to
    in one of its CIDRs; ``RefusedDestination`` otherwise (and when nothing may be fetched)."""
    if not compat.fetch_allow:
        raise RefusedDestination(
            "this server fetches no urls (compat.fetch_allow is empty): send the audio as the body"
        )
    destination = await resolve(url, WebhookSettings(allow=compat.fetch_allow))
    host = destination.url.host.lower()
    if host in compat.fetch_allow:
        return destination
    address = ipaddress.ip_address(destination.address)
    for entry in compat.fetch_allow:
        with contextlib.suppress(ValueError):
            if "/" in entry and address in ipaddress.ip_network(entry, strict=False):
                return destination
    raise RefusedDestination(f"{host} is not a host this server fetches from (compat.fetch_allow)")


def _open(body: IO[bytes]) -> AudioFile:
    try:
        return open_audio(body, "the audio")
    except AudioFileError as exc:
        raise Refused(400, "Bad Request", f"DATA-0000: {exc}") from None


def _raw_blocks(body: IO[bytes], options: ListenOptions) -> Iterator[Int16Array]:
    """Raw samples (``encoding`` and ``sample_rate`` given), a few seconds at a time, at the call's rate."""
    decoder = AudioDecoder(options)
    width = 1 if options.encoding in ("mulaw", "alaw") else 2
    step = int(options.sample_rate * RAW_BLOCK_S) * width * options.channels
    while data := body.read(step):
        try:
            channels = decoder.decode(data)
        except AudioError as exc:
            raise Refused(400, "Bad Request", f"DATA-0000: {exc}") from None
        yield np.stack(channels)
    tail = decoder.flush()
    if tail and tail[0].size:
        yield np.stack(tail)


_MAGIC = (b"RIFF", b"ID3", b"fLaC", b"OggS", b"\x1aE\xdf\xa3")


def _is_container(body: IO[bytes]) -> bool:
    """Whether the body starts as an audio file does (WAV, MP3 with ID3, FLAC, OGG, WebM/Matroska, MP4/M4A)."""
    head = body.read(12)
    body.seek(0)
    return head.startswith(_MAGIC) or head[4:8] == b"ftyp"


def digest(body: IO[bytes], sha: Any) -> None:
    while block := body.read(1 << 20):
        sha.update(block)
    body.seek(0)


def _size(body: IO[bytes]) -> int:
    body.seek(0, 2)
    size = body.tell()
    body.seek(0)
    return size


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1", "")
