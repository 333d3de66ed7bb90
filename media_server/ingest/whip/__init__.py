"""WHIP (RFC 9725): browsers and WebRTC softphones publish a call leg's audio over WebRTC.

``routes.py`` is the HTTP face (``/v1/ingest/whip`` and its session URLs), ``manager.py`` the sessions, their peer
connections and the calls they feed.
"""

from media_server.ingest.protocol import IngestProtocol
from media_server.ingest.whip.routes import router

PROTOCOL = IngestProtocol("whip", router=router)
