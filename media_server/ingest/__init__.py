"""Ingest adapters, one per protocol: parse, authenticate, decode. Nothing after ingest knows the protocol."""
