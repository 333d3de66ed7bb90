"""Calls: participants, channels and consent; the registry of live calls."""
