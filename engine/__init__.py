"""Talking to and supervising inference engines (knows nothing of homes)."""
