"""Examples operators can run (``python -m examples.<name>``)."""
