"""Play a call into the server in real time, as Twilio or jambonz / FreeSWITCH would.

Stereo recordings: left = rep, right = customer. Mono recordings carry one party (``speaker``), or both
parties mixed (``speaker="mixed"``, L16 only).
Frames are 20 ms, paced against the wall clock (``speed`` > 1 plays faster, for tests).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media_server.audio import call_rate
from media_server.client.wav import Recording
from media_server.codecs.g711 import ulaw_encode

FRAME_S = 0.02


@dataclass
class StreamResult:
    call_id: str
    started: float  # wall clock (time.time()) when the first frame was sent
    frames_sent: int = 0
    send_times: list[float] = field(default_factory=list)  # wall clock of each 20 ms frame
    close_code: int | None = None
    close_reason: str = ""

    def sent_at(self, call_time: float) -> float:
        """Wall-clock time at which the audio at ``call_time`` (seconds) had been sent."""
        if not self.send_times:
            return self.started
        index = min(len(self.send_times) - 1, max(0, int(np.ceil(call_time / FRAME_S)) - 1))
        return self.send_times[index]


def ingest_url(base: str, protocol: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    if "/v1/ingest/" in base:
        return base
    return f"{base}/v1/ingest/{'twilio' if protocol == 'twilio' else 'l16'}"


async def stream_call(
    recording: Recording,
    url: str,
    protocol: str,
    token: str | None,
    call_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    speed: float = 1.0,
    speaker: str = "customer",
    token_in_header: bool = False,
    send_stop: bool = True,
    on_frame: Callable[[int], None] | None = None,
) -> StreamResult:
    """Stream ``recording`` and return when it has been sent (and the server closed, after ``stop``)."""
    if protocol not in ("twilio", "l16"):
        raise ValueError("protocol must be twilio or l16")
    call_id = call_id or ("CA" + uuid.uuid4().hex)
    headers = {"Authorization": f"Bearer {token}"} if token and token_in_header else None
    meta: dict[str, Any] = dict(metadata or {})
    if token and not token_in_header:
        meta["token"] = token
    if protocol == "twilio":
        recording = recording.at_rate(8000)
    else:
        recording = recording.at_rate(call_rate(recording.sample_rate))
    result = StreamResult(call_id=call_id, started=time.time())
    async with connect(ingest_url(url, protocol), additional_headers=headers, max_size=2**22) as ws:
        try:
            if protocol == "twilio":
                await _twilio(ws, recording, call_id, meta, speed, speaker, result, send_stop, on_frame)
            else:
                await _l16(ws, recording, call_id, meta, speed, speaker, result, send_stop, on_frame)
        except ConnectionClosed:
            pass  # the server ended the stream: its close code and reason say why
        if send_stop:
            try:
                await asyncio.wait_for(ws.wait_closed(), 30)
            except TimeoutError:
                pass
        result.close_code = ws.close_code
        result.close_reason = ws.close_reason or ""
    return result


async def _pace(result: StreamResult, index: int, speed: float) -> None:
    target = result.started + index * FRAME_S / speed
    delay = target - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


def _tracks(recording: Recording, speaker: str) -> list[tuple[str, npt.NDArray[np.int16]]]:
    if len(recording.channels) == 2:
        return [("outbound", recording.channels[0]), ("inbound", recording.channels[1])]
    return [("outbound" if speaker == "rep" else "inbound", recording.channels[0])]


async def _twilio(
    ws: ClientConnection,
    recording: Recording,
    call_id: str,
    meta: dict[str, Any],
    speed: float,
    speaker: str,
    result: StreamResult,
    send_stop: bool,
    on_frame: Callable[[int], None] | None,
) -> None:
    stream_sid = "MZ" + uuid.uuid4().hex
    seq = 0

    def nxt() -> str:
        nonlocal seq
        seq += 1
        return str(seq)

    tracks = _tracks(recording, speaker)
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await ws.send(
        json.dumps(
            {
                "event": "start",
                "sequenceNumber": nxt(),
                "start": {
                    "accountSid": "AC" + uuid.uuid4().hex,
                    "streamSid": stream_sid,
                    "callSid": call_id,
                    "tracks": [name for name, _ in tracks],
                    "customParameters": {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": stream_sid,
            }
        )
    )
    step = int(FRAME_S * 8000)
    n = len(recording.channels[0])
    result.started = time.time()
    for i, offset in enumerate(range(0, n, step)):
        await _pace(result, i, speed)
        for name, pcm in tracks:
            payload = base64.b64encode(ulaw_encode(pcm[offset : offset + step])).decode()
            media = {"track": name, "chunk": str(i + 1), "timestamp": str(offset // 8), "payload": payload}
            await ws.send(
                json.dumps({"event": "media", "sequenceNumber": nxt(), "media": media, "streamSid": stream_sid})
            )
        result.send_times.append(time.time())
        result.frames_sent += 1
        if on_frame:
            on_frame(i)
    if send_stop:
        stop = {"accountSid": "", "callSid": call_id}
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": nxt(), "stop": stop, "streamSid": stream_sid}))


async def _l16(
    ws: ClientConnection,
    recording: Recording,
    call_id: str,
    meta: dict[str, Any],
    speed: float,
    speaker: str,
    result: StreamResult,
    send_stop: bool,
    on_frame: Callable[[int], None] | None,
) -> None:
    stereo = len(recording.channels) == 2
    rate = recording.sample_rate
    first = {"callSid": call_id, "sampleRate": rate, "mixType": "stereo" if stereo else "mono", **meta}
    if not stereo and speaker == "mixed":  # both parties on the one channel
        first["mixType"] = "mixed"
    elif not stereo:
        first["speaker"] = speaker
    await ws.send(json.dumps(first))
    interleaved = np.stack(recording.channels, axis=1).astype("<i2") if stereo else recording.channels[0].astype("<i2")
    step = int(FRAME_S * rate)
    n = len(recording.channels[0])
    result.started = time.time()
    for i, offset in enumerate(range(0, n, step)):
        await _pace(result, i, speed)
        await ws.send(interleaved[offset : offset + step].tobytes())
        result.send_times.append(time.time())
        result.frames_sent += 1
        if on_frame:
            on_frame(i)
    if send_stop:
        await ws.send(json.dumps({"event": "stop"}))


async def print_events(url: str, call_id: str, token: str, out: Callable[[str], None] = print) -> None:
    """Print the call's final transcripts as they arrive (used by ``media-server stream``)."""
    base = url.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    base = base.split("/v1/ingest/")[0]
    try:
        async with connect(
            f"{base}/v1/calls/{call_id}/events?after=0",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            async for raw in ws:
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "transcript" and event["transcript"].get("isFinal"):
                    t = event["transcript"]
                    out(f"[{t['start']:7.2f}s] {t['speaker']:>8}: {t['text']}")
                elif kind == "error":
                    out(f"error: {event['error'].get('message')}")
                elif kind == "call_ended":
                    out(f"call ended: {event['callEnded'].get('status')} ({event['callEnded'].get('reason')})")
                    return
    except (ConnectionClosed, OSError):
        return
