"""Every ingest protocol the server speaks, one line each; ``app.py`` starts what each declares."""

from __future__ import annotations

from media_server.ingest.protocol import IngestProtocol

PROTOCOLS: tuple[IngestProtocol, ...] = ()
