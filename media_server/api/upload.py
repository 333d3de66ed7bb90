"""The upload of a call recording, ``POST /v1/calls``: a call that already happened, stored, searched and analysed
like a live one (transcript, speakers, metrics, trackers, cues, aggregates, webhooks), under the same consent rules.

The file is the body, as it is (``curl --data-binary @call.wav``; any ``Content-Type``): WAV, MP3, FLAC, OGG/Vorbis,
Opus, M4A, decoded with PyAV. Stereo: the left channel is the rep, the right the customer (as telephony platforms
record); mono: both parties on one channel, diarized (``speaker=rep`` or ``customer``: one voice, that party's).
The call's metadata and consent are query parameters, as every ingest takes them (``call_id``, ``rep_id``,
``rep_name``, ``customer_phone``, ``rep_consent``, ``customer_consent``, ``keyterms``...), or one ``metadata``
parameter holding them as a JSON object (for ``participants`` and other nested values)::

    curl -H "Authorization: Bearer $KEY" --data-binary @call.wav \\
      "http://localhost:8000/v1/calls?call_id=c-42&rep_id=alice&rep_consent=granted&customer_consent=granted"

A party that did not consent (as the team's consent policy reads it) is neither transcribed nor kept. The
recording is fed as batch work (not paced to real time, decoded when no live call's work waits); the answer, 201,
is the stored call as ``GET /v1/calls/{call_id}`` gives it. A file that cannot be decoded is 400 with the reason;
one over ``ingest.max_file_mb`` is 413; a call id the team has already is 409.
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse

from media_server.api import models
from media_server.api.auth import require_key, services_of
from media_server.audio import call_rate
from media_server.audio_files import AudioFile, AudioFileError, open_audio
from media_server.calls.call import ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallRefused, CallsFull, new_call_id
from media_server.calls.metadata import MetadataError, parse_metadata
from media_server.ingest.recording import RecogniserStuck, TooLarge, play, spool_request

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/calls", tags=["calls"], responses=models.AUTH)

SOURCE = "upload"
SPEAKERS = ("mixed", "rep", "customer")
_NOT_METADATA = {"token", "metadata", "speaker"}


@router.post(
    "",
    status_code=201,
    response_model=models.CallDetail,
    response_model_exclude_unset=True,
    summary="Upload a call recording (the file as the body, metadata and consent as query parameters)",
    responses=models.errors(400, 409, 503, _400="the file is not audio this server reads, or a parameter is wrong"),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the recording as it is: WAV, MP3, FLAC, OGG, Opus or M4A; stereo = rep left, customer "
            "right; mono = both parties (diarized)",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_call(request: Request) -> JSONResponse:
    key = await require_key(request, "ingest")
    services = services_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/"):
        raise HTTPException(
            400, "send the file itself as the body (curl --data-binary @call.wav) and the metadata as query parameters"
        )
    raw = _query_metadata(request)
    call_id = str(raw.pop("call_id", "") or raw.pop("callId", "") or new_call_id(SOURCE))
    speaker = request.query_params.get("speaker", "mixed")
    if speaker not in SPEAKERS:
        raise HTTPException(400, f"speaker={speaker}: use mixed, rep or customer (for a mono file)")
    try:
        metadata = parse_metadata(raw)
    except MetadataError as exc:
        raise HTTPException(400, str(exc)) from None
    metadata.token = None
    if metadata.team and metadata.team != key.team:
        raise HTTPException(403, f"this key belongs to team {key.team!r}, not {metadata.team!r}")
    try:
        body = await spool_request(request, services.settings.ingest.max_file_mb << 20)
    except TooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    audio: AudioFile | None = None
    try:
        audio = _open(body)
        limit_s = services.settings.ingest.max_file_minutes * 60
        if audio.duration > limit_s:
            raise HTTPException(
                413,
                f"the recording lasts {audio.duration / 60:.0f} minutes; at most "
                f"{limit_s / 60:g} (ingest.max_file_minutes)",
            )
        rate = call_rate(audio.sample_rate)
        channels = 2 if audio.channels >= 2 else 1
        if channels == 2:
            specs = [ChannelSpec(0, "rep", rate), ChannelSpec(1, "customer", rate)]
        else:
            specs = [ChannelSpec(0, speaker, rate)]
        try:
            call = await services.calls.open(call_id, key.team, SOURCE, metadata, specs, subscribe=True, batch=True)
        except CallConflict as exc:
            raise HTTPException(409, exc.message) from None
        except CallsFull as exc:
            raise HTTPException(503, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None
        except CallRefused as exc:
            raise HTTPException(403, exc.message) from None
        try:
            played = await play(call, audio.chunks(rate, channels), rate, services.scheduler, limit_s)
        except AudioFileError as exc:  # (what was fed is stored, interrupted: say so, and how to upload again)
            why = f"{exc}; what came before is stored as call {call_id!r} (interrupted): DELETE it to upload again"
            raise HTTPException(400, why) from None
        except RecogniserStuck as exc:
            why = f"{exc}; what came before is stored as call {call_id!r} (interrupted): DELETE it to upload again"
            raise HTTPException(503, why, headers={"Retry-After": "60"}) from None
    finally:
        if audio is not None:
            audio.close()  # (FFmpeg's decoder and its buffers, now rather than at garbage collection)
        body.close()
    log.info("call %s uploaded: %.1f s of audio, %d finals", call_id, played.duration, len(played.finals))
    return JSONResponse(
        models.CallDetail.model_validate(played.record.detail()).model_dump(
            mode="json", by_alias=True, exclude_unset=True
        ),
        201,
        headers={"Location": f"/v1/calls/{call_id}"},
    )


def _query_metadata(request: Request) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    given = request.query_params.get("metadata")
    if given:
        try:
            parsed = json.loads(given)
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"metadata: not JSON ({exc.msg})") from None
        if not isinstance(parsed, dict):
            raise HTTPException(400, "metadata: expected a JSON object")
        raw.update(parsed)
    for name, value in request.query_params.multi_items():
        if name in _NOT_METADATA:
            continue
        if name in ("keyterm", "keyterms", "keywords"):
            raw.setdefault("keyterms", []).append(value)
            continue
        raw[name] = value
    return raw


def _open(body: IO[bytes]) -> AudioFile:
    body.seek(0, 2)
    empty = body.tell() == 0
    body.seek(0)
    if empty:
        raise HTTPException(400, "the request is empty: send the recording as the body (curl --data-binary @call.wav)")
    try:
        return open_audio(body, "the file")
    except AudioFileError as exc:
        raise HTTPException(400, str(exc)) from None
