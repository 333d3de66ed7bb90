"""SIPREC (RFC 7866): SBCs and PBXs fork calls to our recording server over SIP, with the media as RTP.

``server.py`` runs the SIP transports and dialogs, ``session.py`` one recording session's media and its call;
``body.py``, ``metadata.py``, ``offer.py``, ``participants.py``, ``validate.py`` and ``transport.py`` are what
SIPREC adds on top of aiosipua's SIP stack. RTP itself is ``media_server/rtp``.
"""

from media_server.ingest.protocol import IngestProtocol
from media_server.ingest.siprec.server import RecordingServer

PROTOCOL = IngestProtocol("siprec", listener=RecordingServer.start, enabled=lambda settings: settings.sip.enabled)
