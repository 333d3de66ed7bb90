"""Twilio Media Streams and Telnyx media streaming: JSON text frames of base64 G.711 over a websocket."""

from media_server.ingest.protocol import IngestProtocol
from media_server.ingest.twilio.routes import router

PROTOCOL = IngestProtocol("twilio", router=router)
