"""Deepgram's live streaming API, ``wss://HOST/v1/listen``: ``options.py`` reads the query, ``audio.py`` the
binary frames, ``messages.py`` writes Deepgram's messages, ``session.py`` runs one stream (one call); and its
pre-recorded API, ``POST /v1/listen`` (``prerecorded.py``: a whole file, one answer)."""

from fastapi import APIRouter

from media_server.ingest.deepgram.prerecorded import router as prerecorded_router
from media_server.ingest.deepgram.session import router as live_router
from media_server.ingest.protocol import IngestProtocol

router = APIRouter()
router.include_router(live_router)
router.include_router(prerecorded_router)

PROTOCOL = IngestProtocol("deepgram", router=router)
