"""The call-intelligence media server: ingest, calls, events, APIs and storage."""

__version__ = "0.1.0"
