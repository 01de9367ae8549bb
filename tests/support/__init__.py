"""Modules that test proxies load by dotted path (custom auth, recording callbacks)."""
