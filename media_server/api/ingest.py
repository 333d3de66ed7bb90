"""Telephony ingest websockets. Each route pairs a protocol parser with the shared session runner."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from media_server.api.auth import services_of
from media_server.ingest.l16 import L16Parser
from media_server.ingest.session import IngestSession
from media_server.ingest.twilio import TwilioParser

router = APIRouter(tags=["ingest"])

# Subprotocols that jambonz and the FreeSWITCH modules ask for.
L16_SUBPROTOCOLS = ("audio.jambonz.org", "audio.drachtio.org", "audiostream.drachtio.org")


@router.websocket("/v1/ingest/twilio")
async def twilio(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings.ingest
    parser = TwilioParser(max_payload_bytes=settings.max_frame_bytes, reorder_window=settings.reorder_window)
    await IngestSession(ws, parser, services, "twilio").run()


@router.websocket("/v1/ingest/telnyx")
async def telnyx(ws: WebSocket) -> None:
    await twilio(ws)  # one parser for both: the start message tells the variant


@router.websocket("/v1/ingest/l16")
async def l16(ws: WebSocket) -> None:
    services = services_of(ws)
    parser = L16Parser(max_frame_bytes=services.settings.ingest.max_frame_bytes)
    await IngestSession(ws, parser, services, "l16", L16_SUBPROTOCOLS).run()
