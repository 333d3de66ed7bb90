"""Conversation intelligence: redaction, trackers, coaching cues, call metrics."""
