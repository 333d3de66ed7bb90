"""Deepgram's live streaming API, ``wss://HOST/v1/listen``: ``options.py`` reads the query, ``audio.py`` the
binary frames, ``messages.py`` writes Deepgram's messages, ``session.py`` runs one stream (one call)."""

from media_server.ingest.deepgram.session import router
from media_server.ingest.protocol import IngestProtocol

PROTOCOL = IngestProtocol("deepgram", router=router)
