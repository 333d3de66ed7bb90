"""API keys: teams and roles."""
