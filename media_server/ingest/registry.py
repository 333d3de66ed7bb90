"""Every ingest protocol the server speaks, one line each; ``app.py`` starts what each declares."""

from __future__ import annotations

from media_server.ingest.audiosocket import PROTOCOL as AUDIOSOCKET
from media_server.ingest.deepgram import PROTOCOL as DEEPGRAM
from media_server.ingest.l16 import PROTOCOL as L16
from media_server.ingest.protocol import IngestProtocol
from media_server.ingest.riva import PROTOCOL as RIVA
from media_server.ingest.siprec import PROTOCOL as SIPREC
from media_server.ingest.twilio import PROTOCOL as TWILIO
from media_server.ingest.whip import PROTOCOL as WHIP

PROTOCOLS: tuple[IngestProtocol, ...] = (
    TWILIO,
    L16,
    AUDIOSOCKET,
    SIPREC,
    WHIP,
    DEEPGRAM,
    RIVA,
)
