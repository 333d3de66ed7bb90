"""Asterisk AudioSocket over TCP: ``AudioSocket(${UUID()},host:9092)`` in the dialplan, or ARI externalMedia.

``parser.py`` reads and writes the messages, ``session.py`` runs one connection (one call), ``server.py``
listens and checks sources.
"""

from media_server.ingest.audiosocket.server import AudioSocketServer
from media_server.ingest.protocol import IngestProtocol

PROTOCOL = IngestProtocol(
    "audiosocket", listener=AudioSocketServer.start, enabled=lambda settings: settings.audiosocket.enabled
)
