"""Exceptions of the agent package (defined in :mod:`proxy_ext.exceptions`, re-exported here)."""

from __future__ import annotations

from proxy_ext.exceptions import ModelCallError, RequestError

__all__ = ["AgentRequestError", "ModelCallError"]

AgentRequestError = RequestError
"""The /agent/run request cannot be run as asked; ``status`` is the 4xx to answer with."""
