"""The websocket jambonz ``listen`` and FreeSWITCH mod_audio_fork / mod_audio_stream connect to."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from media_server.ingest.l16.parser import L16Parser
from media_server.ingest.websocket import WebsocketIngest, WebsocketProtocol, services_of

router = APIRouter(tags=["ingest"])

# The subprotocols jambonz and the FreeSWITCH modules ask for; a normal close ends their calls.
L16 = WebsocketProtocol(
    "l16",
    subprotocols=("audio.jambonz.org", "audio.drachtio.org", "audiostream.drachtio.org"),
    close_ends_call=True,
)


@router.websocket("/v1/ingest/l16")
async def l16(ws: WebSocket) -> None:
    services = services_of(ws)
    parser = L16Parser(max_frame_bytes=services.settings.ingest.max_frame_bytes)
    await WebsocketIngest(ws, parser, services, L16).run()
