"""Exceptions of the agent package (defined in :mod:`proxy_ext.exceptions`, re-exported here)."""

from __future__ import annotations

from proxy_ext.exceptions import ModelCallError, RequestError

__all__ = ["AgentRequestError", "ModelCallError", "quoted"]

AgentRequestError = RequestError
"""The /agent/run request cannot be run as asked; ``status`` is the 4xx to answer with."""


def quoted(name: str, limit: int = 80) -> str:
    """``name`` as an error message shows it: ``repr``, cut after ``limit`` characters (a 100,000-character
    model name would make the message that long)."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name)} characters)"
