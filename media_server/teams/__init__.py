"""Per-team configuration: trackers, battlecards, coaching thresholds, redaction policy."""
