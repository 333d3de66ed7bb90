"""The websockets Twilio Media Streams and Telnyx media streaming connect to: one parser for both."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from media_server.ingest.twilio.parser import TwilioParser
from media_server.ingest.websocket import WebsocketIngest, WebsocketProtocol, services_of

router = APIRouter(tags=["ingest"])

#: The call's source is the variant the start message shows ("twilio" or "telnyx"), whichever route it came to.
TWILIO = WebsocketProtocol("twilio")


@router.websocket("/v1/ingest/twilio")
async def twilio(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings.ingest
    parser = TwilioParser(max_payload_bytes=settings.max_frame_bytes, reorder_window=settings.reorder_window)
    await WebsocketIngest(ws, parser, services, TWILIO).run()


@router.websocket("/v1/ingest/telnyx")
async def telnyx(ws: WebSocket) -> None:
    await twilio(ws)
