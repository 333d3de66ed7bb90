"""Audio codecs used by the ingest adapters."""
