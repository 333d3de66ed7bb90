"""A whole recording through the live pipeline, as batch work: the shared part of Deepgram's pre-recorded
``POST /v1/listen`` (``ingest/deepgram/prerecorded.py``) and the upload of a call recording (``POST /v1/calls``,
``api/upload.py``).

The call was opened with ``batch=True`` (not paced to real time; its decodes wait for no live call's). The audio is
fed a chunk at a time and no further ahead of the decoder than :data:`MAX_QUEUED` decodes, so a long recording is
neither held whole in memory nor queued whole for decoding. The request's body is spooled to a temporary file
(:func:`spool`), at most ``limit`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import IO

from starlette.requests import ClientDisconnect, Request

from media_server.audio import Audio, Int16Array
from media_server.audio_files import AudioFileError
from media_server.calls.lifecycle import CallEnd, LiveCall
from media_server.store.records import CallRecord
from media_server.v1 import events_pb2 as pb
from models.asr.scheduler import DecodeScheduler

#: Decodes waiting in the scheduler's queue beyond which the feed waits (bounded memory, live calls first).
MAX_QUEUED = 16
STUCK_S = 60.0  # a decoder that finishes no batch for this long while requests wait is stuck
SPOOL_IN_MEMORY = 4 << 20  # bodies up to this stay in memory; larger ones go to a temporary file


class TooLarge(ValueError):
    """A body over the size limit."""


@dataclass
class Played:
    finals: list[pb.Transcript]
    record: CallRecord
    duration: float  # seconds of audio fed (the longest channel)


async def spool(chunks: AsyncIterator[bytes], limit: int, what: str = "the audio") -> IO[bytes]:
    """A body, streamed into a temporary file (in memory while small); ``TooLarge`` past ``limit`` bytes."""
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise TooLarge(_too_large(what, limit))
            out.write(chunk)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


async def spool_request(request: Request, limit: int) -> IO[bytes]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(_too_large("the audio", limit))
    try:
        return await spool(request.stream(), limit)
    except ClientDisconnect:
        raise TooLarge("the client went away before the whole body arrived") from None


def _too_large(what: str, limit: int) -> str:
    if limit >= 1 << 20:
        return f"{what} is larger than {limit >> 20} MiB, this server's limit (ingest.max_file_mb)"
    return f"{what} is larger than {limit >> 10} KiB"


class RecogniserStuck(Exception):
    """Decodes wait and none has finished for :data:`STUCK_S`: the recording is not fed on."""


async def play(
    call: LiveCall,
    blocks: Iterable[Int16Array],
    rate: int,
    scheduler: DecodeScheduler | None = None,
    max_s: float | None = None,
) -> Played:
    """Feed ``blocks`` (int16, shape (channels, n), at ``rate``) into ``call``, end it and wait until it is stored.
    Its finals come back in call order (the call was opened with ``subscribe=True``). Whatever goes wrong, the
    call ends (``interrupted``) and is stored. ``max_s``: audio beyond it is refused (:class:`AudioFileError`; a
    container may say less than it holds)."""
    finals = asyncio.create_task(_finals(call), name=f"finals-{call.id}")
    fed = 0
    try:
        for block in blocks:
            for channel in range(block.shape[0]):
                call.push(Audio(channel, block[channel], rate))
            fed += block.shape[1]
            if max_s is not None and fed > max_s * rate:
                raise AudioFileError(f"the recording runs longer than {max_s / 60:g} minutes (ingest.max_file_minutes)")
            await asyncio.sleep(0)  # decoding overlaps with the VAD; other requests go on
            await _backlog(scheduler, call)
            if not call.live:
                break  # ended by the server (shutdown, storage failure, revoked key)
        record = await asyncio.shield(call.end(CallEnd.STOP))
        heard = await asyncio.wait_for(finals, 60)
    except BaseException:
        finals.cancel()
        await call.close(CallEnd.INTERNAL_ERROR)
        raise
    await call.close()
    heard.sort(key=lambda t: (t.start, t.channel))
    return Played(heard, record, fed / rate)


async def _backlog(scheduler: DecodeScheduler | None, call: LiveCall) -> None:
    """Wait while the decoder has more than :data:`MAX_QUEUED` requests waiting (polled: the queue is a thread's),
    however long live calls keep it busy (a recording's decodes yield to theirs, and feeding on would only grow the
    queue); a decoder that finishes no batch for :data:`STUCK_S` fails the recording instead of holding it."""
    if scheduler is None:
        return
    stats = scheduler.stats()
    progress, since = stats.batches, time.monotonic()
    while stats.queue_depth > MAX_QUEUED and call.live:
        if stats.batches != progress:
            progress, since = stats.batches, time.monotonic()
        elif time.monotonic() - since > STUCK_S:
            raise RecogniserStuck(f"the recogniser finished no decode for {STUCK_S:g} s")
        await asyncio.sleep(0.02)
        stats = scheduler.stats()


async def _finals(call: LiveCall) -> list[pb.Transcript]:
    out: list[pb.Transcript] = []
    with contextlib.suppress(Exception):
        async for event in call.events():
            if event.type == "transcript" and event.transcript.is_final and event.transcript.text.strip():
                out.append(event.transcript)
    return out
