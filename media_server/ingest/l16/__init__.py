"""Raw L16 over a websocket: jambonz ``listen``, FreeSWITCH mod_audio_fork and mod_audio_stream."""

from media_server.ingest.l16.routes import router
from media_server.ingest.protocol import IngestProtocol

PROTOCOL = IngestProtocol("l16", router=router)
